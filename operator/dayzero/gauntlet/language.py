"""Language identification for the sanity suite, by langid (its model ships inside the wheel).

Loading langid's model takes seconds, so one identifier is built on first use and kept: it is
read-only after loading, and every run in the process shares it.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _identifier() -> Any:  # noqa: ANN401 - langid is untyped
    from langid.langid import LanguageIdentifier, model  # noqa: PLC0415 - seconds to load

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def warm() -> None:
    """Load the model now (tests do this outside their per-test timeout)."""
    _identifier()


def identify(text: str) -> tuple[str, float]:
    """The most likely language of ``text`` and its normalized probability."""
    language, probability = _identifier().classify(text)
    return str(language), float(probability)
