"""Fixtures of the watcher tests: every fake server is on loopback.

Nothing here can reach a real service: huggingface-hub's default endpoint is a closed loopback
port, and resolving any host but loopback fails.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from huggingface_hub import constants
from watcher_fakes import Receiver

import dayzero.watcher.poll  # noqa: F401 - pays the imports at collection, not in a timed test

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve = socket.getaddrinfo

    def only_loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            raise OSError(f"tests dial loopback only; refused to resolve {host!r}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", only_loopback)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    for name in ("HF_TOKEN", "HF_ENDPOINT", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
