"""Serve a fake Hub from a folder of config.json files until interrupted.

    PYTHONPATH=e2e python -m fakes --configs tests/planner/fixtures --port 8765

Each ``NAME.json`` (or ``NAME/config.json``) becomes the repo ``ORG/NAME``; point ``HF_ENDPOINT``
at the printed URL. For the demo and for trying ``dayzero plan`` without the real Hub.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from dataclasses import replace
from pathlib import Path

from .hub import FakeHub, models_from_config_dir


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fakes", description=__doc__)
    parser.add_argument("--configs", type=Path, required=True, help="folder of config.json files")
    parser.add_argument("--org", default="dayzero-fake", help="organization of the repos")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--parameters", type=Path, help="JSON file: {NAME: {dtype: count}} safetensors counts"
    )
    parser.add_argument("--gated", action="append", default=[], help="NAME to serve as gated")
    args = parser.parse_args()
    counts = json.loads(args.parameters.read_text()) if args.parameters else None
    models = [
        replace(m, gated="manual") if m.repo.split("/")[1] in args.gated else m
        for m in models_from_config_dir(args.configs, org=args.org, parameters=counts)
    ]
    with FakeHub(models, port=args.port) as hub:
        print(f"fake Hub on {hub.url} serving {len(models)} repos:", flush=True)
        for model in models:
            print(f"  {model.repo}  {model.sha}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
