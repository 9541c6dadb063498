"""The watcher's memory between runs: which repo commits it judged, and the GitHub ETags.

Newness is decided by this seen-set, never by a timestamp: a repo made public at launch carries
the creation date of its private life. The state lives in a ConfigMap (one JSON key), written
with the resourceVersion it was read at, so two overlapping runs merge instead of overwriting
each other; a local file serves runs without a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dayzero.kube import Kube, KubeError

STATE_KEY = "state.json"
_SAVE_ATTEMPTS = 5


@dataclass
class SeenModel:
    """The last judgement of one repository."""

    sha: str
    verdict: str
    reason: str = ""
    name: str | None = None
    """The ModelDeployment (or gitops file) made for it, if any."""
    judged_at: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {"sha": self.sha, "verdict": self.verdict, "reason": self.reason}
        if self.name:
            out["name"] = self.name
        if self.judged_at:
            out["judgedAt"] = self.judged_at
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeenModel:
        return cls(
            sha=str(data.get("sha", "")),
            verdict=str(data.get("verdict", "")),
            reason=str(data.get("reason", "")),
            name=data.get("name"),
            judged_at=str(data.get("judgedAt", "")),
        )


@dataclass
class SeenReleases:
    """A watched GitHub repo: the ETag of its last releases page and the tags on it."""

    etag: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class State:
    models: dict[str, SeenModel] = field(default_factory=dict)
    github: dict[str, SeenReleases] = field(default_factory=dict)
    announced: dict[str, str] = field(default_factory=dict)
    """Architectures announced by vLLM releases newer than the pinned one -> release tag."""

    def to_json(self) -> str:
        data = {
            "models": {k: v.to_json() for k, v in sorted(self.models.items())},
            "github": {k: {"etag": v.etag, "tags": v.tags} for k, v in sorted(self.github.items())},
            "announced": dict(sorted(self.announced.items())),
        }
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> State:
        """Parse; a corrupt or missing document is an empty state (everything is judged anew,
        and creation conflicts still keep that from duplicating anything)."""
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        models = _mapping(data.get("models"))
        github = _mapping(data.get("github"))
        announced = _mapping(data.get("announced"))
        return cls(
            models={k: SeenModel.from_json(v) for k, v in models.items() if isinstance(v, dict)},
            github={
                k: SeenReleases(v.get("etag"), [str(t) for t in v.get("tags", [])])
                for k, v in github.items()
                if isinstance(v, dict)
            },
            announced={str(k): str(v) for k, v in announced.items()},
        )

    def merged_over(self, other: State) -> State:
        """This state with ``other``'s entries that this one lacks (a concurrent run's)."""
        return State(
            models=other.models | self.models,
            github=other.github | self.github,
            announced=other.announced | self.announced,
        )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class StateStore(Protocol):
    def load(self) -> State: ...

    def save(self, state: State) -> None: ...


class FileStore:
    """State in a local JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> State:
        try:
            return State.from_json(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return State()

    def save(self, state: State) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(state.to_json(), encoding="utf-8")
        tmp.replace(self.path)


class ConfigMapStore:
    """State in one key of a ConfigMap, written under optimistic concurrency."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self._version: str | None = None

    def load(self) -> State:
        obj = self.kube.get("ConfigMap", self.namespace, self.name)
        if obj is None:
            self._version = None
            return State()
        self._version = obj["metadata"].get("resourceVersion")
        return State.from_json((obj.get("data") or {}).get(STATE_KEY))

    def save(self, state: State) -> None:
        """Write ``state``; on a conflict with a concurrent run, merge its entries and retry."""
        for _ in range(_SAVE_ATTEMPTS):
            try:
                self._write(state)
            except KubeError as e:
                if not e.conflict:
                    raise
                state = state.merged_over(self.load())
                continue
            return
        raise KubeError(409, "Conflict", f"{self.namespace}/{self.name}: kept changing")

    def _write(self, state: State) -> None:
        data = {STATE_KEY: state.to_json()}
        if self._version is None:
            obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "dayzero-watcher"},
                },
                "data": data,
            }
            created = self.kube.create(obj)
        else:
            patch = {"metadata": {"resourceVersion": self._version}, "data": data}
            created = self.kube.patch("ConfigMap", self.namespace, self.name, patch)
        self._version = created.get("metadata", {}).get("resourceVersion")
