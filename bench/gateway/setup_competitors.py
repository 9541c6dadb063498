"""Install LiteLLM's proxy, Portkey's gateway and the plot/profile tools, pinned, outside the clone.

    python3 bench/gateway/setup_competitors.py [--only litellm,portkey,tools]

Each goes to ``~/.cache/dayzero/bench/<name>-<version>/`` (``$DAYZERO_BENCH_CACHE`` overrides
the root) and is skipped when already there. It needs the package registries (PyPI and npm) and
nothing else; the benchmark itself then runs with no network.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from competitors import CACHE, SETUPS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", default=",".join(SETUPS), help=f"comma-separated subset of {','.join(SETUPS)}"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        try:
            SETUPS[name]()
        except (SystemExit, Exception) as e:  # noqa: BLE001 - report each and try the rest
            print(f"{name}: setup failed: {e}", file=sys.stderr)
            failed.append(name)
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed (Debian/Ubuntu: apt-get install -y wrk); the benchmark then "
            "falls back to its slower Python load generator",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
