"""Validation errors in the words a user acts on: the field's path, then what is wrong."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def _line(err: ErrorDetails) -> str:
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def field_error(exc: ValidationError) -> str:
    """The first error, e.g. ``spec.resources.nodes: Input should be greater than 0``."""
    return _line(exc.errors()[0])


def field_errors(exc: ValidationError) -> str:
    """Every error, joined by ``; ``."""
    return "; ".join(_line(e) for e in exc.errors())
