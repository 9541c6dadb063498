"""The gateway tests run each scenario on a fresh event loop (no pytest-asyncio needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
def run() -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine to completion on a fresh event loop."""

    def runner(coro: Awaitable[Any]) -> Any:
        async def main() -> Any:
            return await coro

        return asyncio.run(main())

    return runner
