"""Circuit breakers, one per backend host.

A host that times out or refuses connections N times in a row is skipped at once for a cool-down,
so one dead Ollama box costs a lane nothing but a dictionary lookup. After the cool-down exactly one
request probes it (half-open); its outcome closes or re-opens the circuit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass
class Breaker:
    """The circuit of one host."""

    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    last_error: str | None = None
    opens: int = field(default=0)

    def allow(self, open_seconds: float) -> bool:
        """Whether a request may go to the host now; the first after a cool-down is the probe."""
        if self.state == "closed":
            return True
        if self.probing:
            return False
        if self.state == "open" and self.clock() - self.opened_at < open_seconds:
            return False
        self.state = "half_open"
        self.probing = True
        return True

    def success(self) -> None:
        """The host answered (any HTTP answer counts: it is alive)."""
        self.state = "closed"
        self.failures = 0
        self.probing = False

    def failure(self, threshold: int, error: str, *, probe: bool = False) -> None:
        """A timeout or connection error; ``probe`` when it was the half-open probe's."""
        self.last_error = error
        self.failures += 1
        if probe or self.failures >= threshold:
            if self.state != "open":
                self.opens += 1
            self.state = "open"
            self.opened_at = self.clock()
        if probe:
            self.probing = False

    def abandon(self) -> None:
        """The request ended without telling (client gone): let another request probe."""
        self.probing = False


class Breakers:
    """Breakers by host, kept across config reloads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_host: dict[str, Breaker] = {}

    def get(self, host: str) -> Breaker:
        """The breaker of ``host`` (``scheme://netloc``)."""
        breaker = self._by_host.get(host)
        if breaker is None:
            breaker = self._by_host[host] = Breaker(clock=self._clock)
        return breaker
