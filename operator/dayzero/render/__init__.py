"""Pure renderers: typed spec + plan + gathered inputs -> manifest dicts. No kopf, no I/O."""
