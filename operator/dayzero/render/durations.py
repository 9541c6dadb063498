"""Go-style durations (30s, 90m, 1h30m, 500ms), as Kubernetes users write them in specs.

The API validates the syntax; this turns it into whole seconds for fields such as a Job's
activeDeadlineSeconds.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}


def parse_duration(text: str) -> Decimal:
    """Seconds in ``text``, exactly (Decimal, so 0.1s adds up); ValueError if malformed."""
    total = Decimal(0)
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += Decimal(match.group(1)) * _UNIT[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"not a duration like 90s, 30m or 1h30m: {text!r}")
    return total


def whole_seconds(text: str) -> int:
    """``text`` rounded up to whole seconds, at least 1 (Kubernetes rejects a 0 deadline)."""
    return max(1, math.ceil(parse_duration(text)))
