"""The gauntlet tests: langid's model takes seconds to load, so it loads once, before any
test's 2 s timeout starts; so do the harness's modules and its TLS context (the CA bundle)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dayzero.gauntlet.command  # noqa: F401 - imported here for its import cost, before the timeouts
from dayzero.gauntlet.client import _tls
from dayzero.gauntlet.language import warm

HERE = Path(__file__).resolve().parent


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(HERE in item.path.parents for item in session.items):
        warm()
        _tls()
