"""The planner's one error type: a bad input, named by the field that holds it.

The controller turns it into a condition whose message names the field, and the CLI into an exit
status, so it carries the field separately from the message rather than inside it.
"""

from __future__ import annotations


class PlanError(ValueError):
    """An input the planner cannot plan with: an invalid user choice or unusable metadata.

    ``field`` is the camelCase spec field (``tensorParallel``, ``maxModelLen``, ...) for a user
    choice, or the config.json key (``config.num_attention_heads``) for metadata.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
