"""The generated CRDs are structural, documented, and identical to the files on disk."""

from pathlib import Path
from typing import Any

import pytest

from dayzero.api.crd import all_crds, openapi_schema
from dayzero.api.v1alpha1 import RESOURCES
from dayzero.cli import generated_files

ROOT = Path(__file__).resolve().parents[2]


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource):
    for path, node in walk(openapi_schema(resource)):
        assert "$ref" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert "anyOf" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert "type(self) == int" in node["x-kubernetes-validations"][-1]["rule"], path
        else:
            assert "type" in node, path


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_every_spec_and_status_field_is_documented(resource):
    schema = openapi_schema(resource)
    undocumented = [
        path
        for part in ("spec", "status")
        for path, node in walk(schema["properties"][part], part)
        if path.count(".") and not path.endswith(("[]", "{}")) and not node.get("description")
    ]
    assert undocumented == []


def test_names_and_subresources():
    by_kind = {c["spec"]["names"]["kind"]: c for c in all_crds()}
    assert set(by_kind) == {"ModelDeployment", "Lane", "Gauntlet"}
    assert by_kind["ModelDeployment"]["spec"]["names"]["shortNames"] == ["mdep"]
    assert by_kind["Gauntlet"]["spec"]["names"]["shortNames"] == ["gnt"]
    version = by_kind["ModelDeployment"]["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert [c["name"] for c in version["additionalPrinterColumns"][:5]] == [
        "Ready",
        "Engine",
        "GPUs",
        "Endpoint",
        "Age",
    ]
    assert "scale" not in by_kind["Lane"]["spec"]["versions"][0]["subresources"]


def test_cross_field_rules_are_attached():
    schema = openapi_schema(RESOURCES[0])
    source = schema["properties"]["spec"]["properties"]["source"]
    assert "exactly one of" in source["x-kubernetes-validations"][0]["message"]
    resources = schema["properties"]["spec"]["properties"]["resources"]
    assert any(
        "tensorParallel x pipelineParallel" in r["message"]
        for r in resources["x-kubernetes-validations"]
    )


def test_generated_files_do_not_drift():
    drifted = [
        path
        for path, text in generated_files().items()
        if not (ROOT / path).is_file() or (ROOT / path).read_text() != text
    ]
    assert drifted == [], "run `make crds`"


def test_chart_copies_sit_behind_enabled_and_keep():
    chart = {p: t for p, t in generated_files().items() if p.startswith("charts/")}
    assert len(chart) == 3
    for text in chart.values():
        assert "{{- if .Values.crds.enabled }}" in text
        assert "helm.sh/resource-policy: keep" in text
        assert "{{- if .Values.crds.keep }}" in text
