"""Model -> CustomResourceDefinition.

The pydantic models are the single source of truth. Their JSON Schema is rewritten into a
Kubernetes *structural* schema: references inlined, optional ``null`` branches dropped (an unset
field is simply absent), ``int | "auto"`` turned into ``x-kubernetes-int-or-string``, draft-2020
exclusive bounds turned into OpenAPI v3 booleans, and map-key patterns into CEL rules, which the
structural schema has no other way to say. ``make crds`` writes the result; ``make verify`` and a
unit test fail when the files on disk drift from it.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .v1alpha1 import GROUP, RESOURCES, VERSION, Resource

Schema = dict[str, Any]

# Keys of JSON Schema that a structural schema does not accept, or that only add noise.
_DROPPED = {"title", "examples", "$defs", "propertyNames", "patternProperties"}


class SchemaError(ValueError):
    """A model uses a construct that has no structural-schema equivalent."""


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    # Siblings of $ref (a field's own description or default) win over the referenced type's.
    target.update({k: v for k, v in node.items() if k != "$ref"})
    return _resolve(target, defs)


def _merge_optional(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    branches = [_resolve(b, defs) for b in node["anyOf"] if b != {"type": "null"}]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(branches) == 1:
        return {**branches[0], **rest}
    by_type = {str(b.get("type")): b for b in branches}
    if sorted(by_type) == ["integer", "string"]:
        # The API server takes int-or-string only bare, so each branch's bounds become CEL.
        rule = _int_or_string_rule(by_type["integer"], by_type["string"])
        rules = [*rest.pop("x-kubernetes-validations", []), rule]
        return {**rest, "x-kubernetes-int-or-string": True, "x-kubernetes-validations": rules}
    raise SchemaError(f"{path}: unions other than int-or-string are not structural")


def _int_or_string_rule(integer: Schema, string: Schema) -> dict[str, str]:
    low, high = integer.get("minimum"), integer.get("maximum")
    int_checks = [f"self >= {low}"] * (low is not None) + [f"self <= {high}"] * (high is not None)
    int_said = (
        f"an integer from {low} to {high}" if low is not None and high is not None else "an integer"
    )
    words = string.get("enum") or ([string["const"]] if "const" in string else [])
    str_check = " || ".join(f"self == '{w}'" for w in words) or "true"
    str_said = " or ".join(f"'{w}'" for w in words) or "a string"
    return {
        "rule": f"type(self) == int ? ({' && '.join(int_checks) or 'true'}) : ({str_check})",
        "message": f"must be {int_said} or {str_said}",
    }


def _map_key_rule(pattern: str | None, max_length: int | None) -> dict[str, str]:
    checks, said = [], []
    if max_length is not None:
        checks.append(f"size(k) <= {max_length}")
        said.append(f"have at most {max_length} characters")
    if pattern is not None:
        checks.append(f"k.matches('{pattern}')")
        said.append(f"match {pattern}")
    return {
        "rule": f"self.all(k, {' && '.join(checks)})",
        "message": "keys must " + " and ".join(said),
    }


def _nested_defaults(node: Schema) -> dict[str, Any]:
    """The object an omitted field stands for. Spelled out, not ``{}``: the API server checks a
    default against the object's CEL rules before it fills nested defaults."""
    return {
        name: child["default"]
        for name, child in node.get("properties", {}).items()
        if "default" in child
    }


def _properties(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    required = set(node.get("required", []))
    out: Schema = {}
    for name, child in node["properties"].items():
        converted = structural(child, defs, f"{path}.{name}")
        # pydantic leaves default_factory out of the schema (a `= None` field says
        # `default: null`), so an omitted object field gets its nested defaults here.
        if (
            name not in required
            and "default" not in child
            and converted.get("type") == "object"
            and "properties" in converted
        ):
            converted["default"] = _nested_defaults(converted)
        out[name] = converted
    return out


def _map_rules(node: Schema, out: Schema, defs: dict[str, Schema], path: str) -> None:
    """Map values from patternProperties, and key constraints as a CEL rule."""
    patterns = node.get("patternProperties", {})
    if len(patterns) > 1:
        raise SchemaError(f"{path}: a map may constrain its keys with one pattern only")
    for values in patterns.values():
        out["additionalProperties"] = structural(values, defs, f"{path}[*]")
    names = _resolve(node.get("propertyNames", {}), defs)
    key_pattern = next(iter(patterns), None) or names.get("pattern")
    if key_pattern is not None or "maxLength" in names:
        rules = out.setdefault("x-kubernetes-validations", [])
        rules.append(_map_key_rule(key_pattern, names.get("maxLength")))


def _scalar_keyword(key: str, value: object, out: Schema) -> None:
    if key == "description":
        # Docstrings wrap at the source's line width; kubectl explain re-wraps on its own.
        out["description"] = " ".join(str(value).split())
    elif key == "const":
        out["enum"] = [value]
    elif key == "default":
        # List and object literals would only add noise; objects get their nested defaults.
        if value is not None and not isinstance(value, dict | list):
            out["default"] = value
    elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
        # Draft 2020 puts the bound in the keyword; OpenAPI v3 wants a bound plus a flag.
        out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
        out[key] = True
    else:
        out[key] = copy.deepcopy(value)


def structural(node: Schema, defs: dict[str, Schema], path: str = "") -> Schema:
    """Rewrite one JSON Schema node (and its children) into structural form."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _merge_optional(node, defs, path)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out["properties"] = _properties(node, defs, path)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = structural(value, defs, f"{path}[*]")
        elif key == "items":
            out["items"] = structural(value, defs, f"{path}[*]")
        else:
            _scalar_keyword(key, value, out)
    _map_rules(node, out, defs, path)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def openapi_schema(resource: Resource) -> Schema:
    """The structural openAPIV3Schema of one resource."""
    raw = resource.model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema = structural(raw, defs)
    schema["properties"]["metadata"] = {"type": "object"}
    for name in ("apiVersion", "kind"):
        prop = schema["properties"][name]
        prop.pop("enum", None)
        prop.pop("default", None)
    schema["required"] = ["spec"]
    return schema


def custom_resource_definition(resource: Resource) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource, ready for server-side apply."""
    subresources: dict[str, Any] = {"status": {}}
    if resource.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    columns = []
    for column in resource.columns:
        entry: dict[str, Any] = {
            "name": column.name,
            "type": column.type,
            "jsonPath": column.json_path,
            "description": column.description,
        }
        if column.priority:
            entry["priority"] = column.priority
        columns.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": list(resource.short_names),
                "categories": list(resource.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(resource)},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """Every dayzero CRD, in a stable order."""
    return [custom_resource_definition(r) for r in RESOURCES]


def to_yaml(obj: object) -> str:
    """Deterministic YAML: the same models always give the same bytes."""
    return str(yaml.safe_dump(obj, sort_keys=True, width=100, allow_unicode=True))


def crd_file_name(crd: dict[str, Any]) -> str:
    """File name of a CRD under crds/, e.g. ``dayzero.dev_lanes.yaml``."""
    return f"{GROUP}_{crd['spec']['names']['plural']}.yaml"


HEADER = "# GENERATED by `make crds` from operator/dayzero/api/v1alpha1. Do not edit.\n"

CHART_GUARD_OPEN = """{{- if .Values.crds.enabled }}
"""
CHART_GUARD_CLOSE = "{{- end }}\n"
CHART_KEEP = """  annotations:
    {{- if .Values.crds.keep }}
    helm.sh/resource-policy: keep
    {{- end }}
"""


def chart_template(crd: dict[str, Any]) -> str:
    """The chart's copy of a CRD, behind crds.enabled, kept on uninstall when crds.keep."""
    body = to_yaml(crd)
    if "{{" in body:
        raise SchemaError(f"{crd['metadata']['name']}: text would be read as a Helm template")
    name_line = f"  name: {crd['metadata']['name']}\n"
    body = body.replace(name_line, CHART_KEEP + name_line, 1)
    return HEADER + CHART_GUARD_OPEN + body + CHART_GUARD_CLOSE


def rendered_files() -> dict[str, str]:
    """Every generated CRD file, keyed by its path relative to the repository root."""
    files: dict[str, str] = {}
    for crd in all_crds():
        name = crd_file_name(crd)
        files[f"crds/{name}"] = HEADER + to_yaml(crd)
        files[f"charts/dayzero/templates/crds/{name}"] = chart_template(crd)
    return files
