"""A real redis-server on a free loopback port, for the tests that need Redis.

Started as ``redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no`` (no disk,
never 6379), so every test gets an empty, private server. Use the ``redis_server`` fixture of
``tests/conftest.py`` in unit tests; e2e code imports ``RedisServer`` from this file (see
``e2e/gateway_fleet.py``). ``kill()`` and ``start()`` again on the same port let a test take
Redis away mid-run and bring it back.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; ``url`` is its ``redis://127.0.0.1:<port>/0``."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            msg = "redis-server is not on PATH: run `make redis-server` (Debian's package)"
            raise RuntimeError(msg)
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dayzero-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL to give ``--redis-url``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 5.0) -> RedisServer:
        """Start it (again, on the same port) and wait until it answers PING."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                msg = f"redis-server exited with {self.process.returncode} on port {self.port}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = f"redis-server did not answer on port {self.port} in {timeout}s"
                raise RuntimeError(msg)
            time.sleep(0.005)
        return self

    def ping(self) -> bool:
        """Whether it answers PING now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash: clients see their connections drop."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 2 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def close(self) -> None:
        """Stop it and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started server for the block, stopped after it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()
