"""Building blocks shared by the three resources.

Every model is camelCase on the wire, forbids unknown fields (so a typo is an error, not a silently
ignored setting), and takes its field docs from attribute docstrings: those docstrings become the
CRD's OpenAPI descriptions, which is what ``kubectl explain`` prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "dayzero.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# DNS-1123 label and subdomain, as Kubernetes validates object names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Go-style duration as Kubernetes users write it: 30s, 10m, 1h30m.
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL ``x-kubernetes-validations`` entry; ``fieldPath`` makes the error name the field."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` that attaches CEL rules to a model's schema."""
    return {"x-kubernetes-validations": list(rules)}


class Model(BaseModel):
    """Base of every API type: camelCase aliases, unknown fields rejected, docstrings as docs."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the referenced object."""


class SecretKeyRef(Model):
    """A key of a Secret in the same namespace. Only the reference is ever stored or rendered."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the Secret."""
    key: str = Field(default="token", min_length=1, max_length=253)
    """Key within the Secret that holds the value."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """The state of one aspect of the object, in the Kubernetes condition convention."""

    type: str = Field(max_length=316)
    """Type of the condition in PascalCase, e.g. Ready."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: str = Field(default="", max_length=1024)
    """Machine-readable reason for the last transition, in PascalCase."""
    message: str = Field(default="", max_length=32768)
    """Human-readable detail of the last transition."""
    last_transition_time: datetime | None = None
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the condition was computed from."""


class StatusBase(Model):
    """Fields every dayzero status has."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the controller last reconciled."""
    conditions: list[Condition] = Field(default_factory=list, max_length=32)
    """Current conditions of the object."""
