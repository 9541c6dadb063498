"""The typed API: pydantic models that are the single source of the CRDs and their docs."""
