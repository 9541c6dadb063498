"""Hugging Face Hub metadata: resolve a revision, read config.json and counts, never weights.

The operator's second I/O boundary beside ``kube``: it turns the Hub's answers into the planner's
:class:`~dayzero.planner.ModelFacts` and its failures into one :class:`HubError` whose ``reason``
is a condition reason. See docs/planner.md.
"""

from .errors import HUB_ERROR_REASONS, HubError, HubErrorReason
from .metadata import HubMetadata, HubModel, fetch_model_facts, parse_config

__all__ = [
    "HUB_ERROR_REASONS",
    "HubError",
    "HubErrorReason",
    "HubMetadata",
    "HubModel",
    "fetch_model_facts",
    "parse_config",
]
