"""The release watcher: Hub and GitHub sources, deployability judgement, sinks."""
