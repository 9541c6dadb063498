"""The evaluation harness that gates promotion."""
