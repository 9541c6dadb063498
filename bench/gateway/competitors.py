"""The pinned tools the gateway benchmark runs beside dayzero, installed outside the clone.

Why a cache keyed by version and not the project's lock: LiteLLM's proxy alone pulls in a few
hundred packages the project must never depend on, and Portkey's gateway is a Node program. Each
lives in its own directory under ``~/.cache/dayzero/bench`` whose name carries its version, so a
changed pin installs beside the old one and a finished install is never redone.

    python3 bench/gateway/setup_competitors.py [--only litellm,portkey,tools]

LiteLLM 1.82.7 and 1.82.8 (and 1.107.0, by the registry's own advisories) were compromised
releases on PyPI; the pin below is none of them, and ``setup`` refuses them. It is also the
newest release whose ``[proxy]`` extra installs from the registry reachable here: from 1.108 on
the extra pins ``litellm-proxy-extras`` post-releases, and from 1.109 a ``litellm-proxy`` package,
that it does not carry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LITELLM_VERSION = "1.106.12"
PORTKEY_VERSION = "1.15.2"
# Portkey's package.json allows @hono/node-server ^1.3.3, which npm resolves to 1.19.x. From 1.14
# on, its lightweight Response keeps the headers of a fetch() response, which are immutable, and
# Portkey then fails every stream with HTTP 500 "TypeError: immutable" when it appends its
# x-portkey-* headers. 1.13.8, inside the declared range, is the newest release verified to stream.
PORTKEY_HONO_NODE_SERVER = "1.13.8"
# The plot and the profiler run from their own venv too: neither belongs in the project's lock.
MATPLOTLIB_VERSION = "3.11.2"
PYSPY_VERSION = "0.4.3"
COMPROMISED_LITELLM = frozenset({"1.82.7", "1.82.8", "1.107.0"})

CACHE = Path(os.environ.get("DAYZERO_BENCH_CACHE", Path.home() / ".cache" / "dayzero" / "bench"))
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Paths:
    """Where each pinned tool lives once installed."""

    litellm_dir: Path = CACHE / f"litellm-{LITELLM_VERSION}"
    portkey_dir: Path = (
        CACHE / f"portkey-{PORTKEY_VERSION}-hono-node-server-{PORTKEY_HONO_NODE_SERVER}"
    )
    tools_dir: Path = CACHE / f"tools-matplotlib-{MATPLOTLIB_VERSION}-pyspy-{PYSPY_VERSION}"

    @property
    def litellm(self) -> Path:
        return self.litellm_dir / "bin" / "litellm"

    @property
    def litellm_python(self) -> Path:
        return self.litellm_dir / "bin" / "python"

    @property
    def portkey_entry(self) -> Path:
        return (
            self.portkey_dir
            / "node_modules"
            / "@portkey-ai"
            / "gateway"
            / "build"
            / "start-server.js"
        )

    @property
    def tools_python(self) -> Path:
        return self.tools_dir / "bin" / "python"

    @property
    def py_spy(self) -> Path:
        return self.tools_dir / "bin" / "py-spy"


PATHS = Paths()


def _done(directory: Path) -> bool:
    return (directory / ".installed").exists()


def _run(argv: list[str], **kwargs: object) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, timeout=INSTALL_TIMEOUT_S, **kwargs)  # type: ignore[call-overload]


def _venv(directory: Path, packages: list[str]) -> None:
    if _done(directory):
        print(f"{directory}: installed")
        return
    shutil.rmtree(directory, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(directory)])
    python = str(directory / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages])
    (directory / ".installed").write_text(" ".join(packages) + "\n")


def setup_litellm() -> None:
    """LiteLLM's proxy, exactly pinned, in its own venv."""
    if LITELLM_VERSION in COMPROMISED_LITELLM:
        raise SystemExit(f"litellm {LITELLM_VERSION} was a compromised release; pick another")
    _venv(PATHS.litellm_dir, [f"litellm[proxy]=={LITELLM_VERSION}"])


def setup_portkey() -> None:
    """Portkey's gateway from npm, exactly pinned, in its own node_modules."""
    directory = PATHS.portkey_dir
    if _done(directory):
        print(f"{directory}: installed")
        return
    if shutil.which("npm") is None:
        raise SystemExit("npm is not installed; Portkey's gateway is a Node program")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    package = {
        "name": "dayzero-bench-portkey",
        "private": True,
        "overrides": {"@hono/node-server": PORTKEY_HONO_NODE_SERVER},
    }
    (directory / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    _run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            f"@portkey-ai/gateway@{PORTKEY_VERSION}",
        ],
        cwd=directory,
    )
    if not PATHS.portkey_entry.exists():
        raise SystemExit(f"{PATHS.portkey_entry} is missing: the package layout changed")
    (directory / ".installed").write_text(f"@portkey-ai/gateway@{PORTKEY_VERSION}\n")


def setup_tools() -> None:
    """matplotlib for the plot and py-spy for the profile."""
    _venv(PATHS.tools_dir, [f"matplotlib=={MATPLOTLIB_VERSION}", f"py-spy=={PYSPY_VERSION}"])


SETUPS = {"litellm": setup_litellm, "portkey": setup_portkey, "tools": setup_tools}
