"""`make chart-check`: lint the Helm chart and validate what it renders, offline.

Why a script and not only tests: `make verify` runs it beside the other generators' checks, and it
prints what it covered. For the chart's default values and every `charts/dayzero/ci/*-values.yaml`:

1. `helm lint --strict` (warnings fail);
2. `helm template` for the pinned Kubernetes version, then every object against that version's
   OpenAPI schemas, strictly (unknown fields fail), with kubernetes-validate, which ships them;
3. prometheus-operator kinds (ServiceMonitor, PodMonitor), which no Kubernetes schema covers, get
   a shape check of the fields the chart sets.

The helm binary is the pinned one `make cluster` builds (e2e/cluster/build.sh), or $HELM.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dayzero"
VERSIONS = ROOT / "e2e" / "cluster" / "versions.env"
PROMETHEUS_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "endpoints",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podMetricsEndpoints",
}


class CheckError(Exception):
    """A check failed; the message says which and why."""


def pinned_versions() -> dict[str, str]:
    """KEY=VALUE lines of e2e/cluster/versions.env (the same parse as e2e.cluster)."""
    out: dict[str, str] = {}
    for line in VERSIONS.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            out[key] = value
    return out


def kube_version() -> str:
    """The pinned Kubernetes version without the v: 1.36.3."""
    return pinned_versions()["K8S_VERSION"].removeprefix("v")


def helm_binary() -> Path | None:
    """$HELM, else the helm `make cluster` built into the cache; None when there is none."""
    if os.environ.get("HELM"):
        return Path(os.environ["HELM"])
    v = pinned_versions()
    key = (
        f"k8s-{v['K8S_VERSION']}_etcd-{v['ETCD_VERSION']}_kwok-{v['KWOK_VERSION']}"
        f"_helm-{v['HELM_VERSION']}"
    )
    cache = Path(os.environ.get("DAYZERO_CACHE", Path.home() / ".cache" / "dayzero"))
    helm = cache / "k8s" / key / "bin" / "helm"
    return helm if helm.is_file() else None


def value_sets() -> list[Path | None]:
    """None (the defaults), then every ci/*-values.yaml."""
    return [None, *sorted((CHART / "ci").glob("*-values.yaml"))]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm; raise CheckError with its output when it fails and check is set."""
    binary = helm_binary()
    if binary is None:
        raise CheckError("no helm binary: run `make cluster` (or set $HELM)")
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if check and result.returncode != 0:
        raise CheckError(f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}")
    return result


def template(
    values: Path | None = None, *, sets: tuple[str, ...] = (), namespace: str = "dayzero-system"
) -> list[dict[str, Any]]:
    """The chart rendered for the pinned Kubernetes version: its objects, in order."""
    args = ["template", "dayzero", str(CHART), "-n", namespace, "--kube-version", kube_version()]
    if values is not None:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    # libyaml when present: the CRDs are large and the unit tests have 2 s each.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(helm(*args).stdout, Loader=loader) if d]


def _prometheus_shape(obj: dict[str, Any], endpoints_key: str) -> None:
    spec = obj.get("spec") or {}
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    if not (spec.get("selector") or {}).get("matchLabels"):
        raise CheckError(f"{where}: spec.selector.matchLabels is empty")
    endpoints = spec.get(endpoints_key) or []
    if not endpoints or not all(e.get("port") for e in endpoints):
        raise CheckError(f"{where}: spec.{endpoints_key} needs named ports")


def validate(objects: list[dict[str, Any]]) -> Iterator[str]:
    """Validate each object; yield `kind/name` for each one that passed."""
    version = kube_version()
    for obj in objects:
        where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        shape = PROMETHEUS_KINDS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if shape is not None:
            _prometheus_shape(obj, shape)
        else:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                raise CheckError(f"{where}: {path}: {e.message}") from None
            except kubernetes_validate.SchemaNotFoundError as e:
                raise CheckError(f"{where}: no Kubernetes {version} schema: {e}") from None
        yield where


def say(line: str) -> None:
    sys.stdout.write(f"chart-check: {line}\n")


def main() -> int:
    total = 0
    try:
        for values in value_sets():
            name = values.name if values else "default values"
            lint = ["lint", "--strict", str(CHART), "--kube-version", kube_version()]
            helm(*lint, *(["-f", str(values)] if values else []))
            checked = list(validate(template(values)))
            total += len(checked)
            say(f"{name}: helm lint --strict clean; {len(checked)} objects valid")
    except CheckError as e:
        sys.stderr.write(f"chart-check: FAILED: {e}\n")
        return 1
    say(
        f"{total} objects valid against Kubernetes {kube_version()} schemas (strict); "
        "ServiceMonitor/PodMonitor shape-checked"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
