"""The one error the renderers raise: a spec the manifests cannot express, naming the field.

The controller turns it into a condition and an event on the ModelDeployment (a malformed object
is reported, not crash-looped), so the message is written for the person who owns the spec.
"""

from __future__ import annotations


class RenderError(ValueError):
    """The spec asks for something the manifests cannot express; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        """Dotted path of the offending field, e.g. spec.engine."""
        self.message = message
        """What is wrong, without the field prefix."""
