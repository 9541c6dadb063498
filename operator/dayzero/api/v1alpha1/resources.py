"""How each API type is exposed as a Kubernetes resource: names, columns, subresources."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Model
from .gauntlet import Gauntlet
from .lane import Lane
from .modeldeployment import ModelDeployment

READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class PrinterColumn:
    """One additionalPrinterColumn of ``kubectl get``."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0


@dataclass(frozen=True)
class Resource:
    """A dayzero resource: its model and how the API server names and shows it."""

    model: type[Model]
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    scale: bool = False
    categories: tuple[str, ...] = field(default=("dayzero",))


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

MODEL_DEPLOYMENT = Resource(
    model=ModelDeployment,
    kind="ModelDeployment",
    plural="modeldeployments",
    singular="modeldeployment",
    short_names=("mdep",),
    scale=True,
    columns=(
        PrinterColumn("Ready", "string", READY, "Whether the model serves."),
        PrinterColumn("Engine", "string", ".status.engine", "Engine in use."),
        PrinterColumn("GPUs", "integer", ".status.plan.gpus", "GPUs per replica group."),
        PrinterColumn("Endpoint", "string", ".status.endpoint", "URL the gateway routes to."),
        AGE,
        PrinterColumn("Phase", "string", ".status.phase", "Lifecycle phase.", priority=1),
        PrinterColumn("Repo", "string", ".spec.source.hub.repo", "Hub repository.", priority=1),
        PrinterColumn(
            "Revision", "string", ".status.resolvedRevision", "Resolved commit.", priority=1
        ),
    ),
)

LANE = Resource(
    model=Lane,
    kind="Lane",
    plural="lanes",
    singular="lane",
    short_names=("lane",),
    columns=(
        PrinterColumn("Ready", "string", READY, "Whether the lane is rendered and applied."),
        PrinterColumn("Model", "string", ".spec.model", "Model name clients ask for."),
        PrinterColumn("Tag", "string", ".spec.tag", "Tag the lane serves."),
        PrinterColumn("Mode", "string", ".spec.mode", "sync, async or shadow."),
        PrinterColumn("Preview", "string", ".status.tags.preview", "Where preview points."),
        AGE,
    ),
)

GAUNTLET = Resource(
    model=Gauntlet,
    kind="Gauntlet",
    plural="gauntlets",
    singular="gauntlet",
    short_names=("gnt",),
    columns=(
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Running, Succeeded, Failed."),
        PrinterColumn("Verdict", "string", ".status.verdict", "Overall verdict."),
        PrinterColumn("Winner", "string", ".status.winner", "Best passing target."),
        PrinterColumn("Promoted", "boolean", ".status.promoted", "Whether a tag moved."),
        AGE,
    ),
)

RESOURCES: tuple[Resource, ...] = (MODEL_DEPLOYMENT, LANE, GAUNTLET)
