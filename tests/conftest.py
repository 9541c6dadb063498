"""Fixtures every test folder may use. This folder is on sys.path, so ``redis_server.py`` is
importable as ``redis_server`` from any test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_server import RedisServer, running_redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """An empty redis-server of the test's own on a free 127.0.0.1 port (``.url``)."""
    with running_redis() as server:
        yield server
