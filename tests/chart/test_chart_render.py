"""The Helm chart, rendered with the pinned helm: security, RBAC, the operator's shape, the schema.

Skipped (with the reason) when helm is not built: `make cluster` builds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_check import CHART, CheckError, helm, helm_binary, kube_version, template, validate

from dayzero.cli import build_parser

pytestmark = pytest.mark.skipif(
    helm_binary() is None, reason="helm is not built: run `make cluster` (or set $HELM)"
)

ALL_VALUES = CHART / "ci" / "all-values.yaml"
NS = "dayzero-system"


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return template()


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return template(ALL_VALUES)


def kinds(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    found = [o for o in kinds(objs, kind) if o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def pod_specs(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for o in objs:
        if o["kind"] == "Deployment":
            out[o["metadata"]["name"]] = o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            out[o["metadata"]["name"]] = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return out


def rejected(*sets: str) -> str:
    """helm's error output for values that must not render."""
    args = ["template", "x", str(CHART), "--kube-version", kube_version()]
    for s in sets:
        args += ["--set", s]
    result = helm(*args, check=False)
    assert result.returncode != 0, f"{sets} rendered"
    return result.stderr


# -- what is installed


def test_defaults_install_crds_operator_gateway_watcher(default: list[dict[str, Any]]) -> None:
    crds = {o["metadata"]["name"] for o in kinds(default, "CustomResourceDefinition")}
    assert crds == {"modeldeployments.dayzero.dev", "lanes.dayzero.dev", "gauntlets.dayzero.dev"}
    deployments = {o["metadata"]["name"] for o in kinds(default, "Deployment")}
    assert deployments == {"dayzero-operator", "dayzero-gateway"}
    assert one(default, "CronJob", "watcher")["spec"]["schedule"] == "*/10 * * * *"
    # Optional parts are off by default.
    for kind in ("HorizontalPodAutoscaler", "NetworkPolicy", "PriorityClass", "ServiceMonitor"):
        assert not kinds(default, kind), kind


def test_crds_kept_on_uninstall_by_default(default: list[dict[str, Any]]) -> None:
    for crd in kinds(default, "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_crds_not_kept_when_told() -> None:
    off = template(sets=("crds.keep=false",))
    crds = kinds(off, "CustomResourceDefinition")
    assert len(crds) == 3
    for crd in crds:
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_crds_left_out_when_disabled() -> None:
    assert not kinds(template(sets=("crds.enabled=false",)), "CustomResourceDefinition")


def test_every_optional_part_renders(everything: list[dict[str, Any]]) -> None:
    present = {o["kind"] for o in everything}
    for kind in (
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PriorityClass",
        "ServiceMonitor",
        "PodMonitor",
    ):
        assert kind in present, kind
    assert one(everything, "Deployment", "redis")


# -- the operator


def test_operator_is_one_replica_recreated(default: list[dict[str, Any]]) -> None:
    op = one(default, "Deployment", "operator")
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"] == {"type": "Recreate"}


def test_operator_args_match_its_cli(default: list[dict[str, Any]]) -> None:
    args = one(default, "Deployment", "operator")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert args[0] == "operator"
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--routing-configmap"] == f"{NS}/dayzero-routing"
    assert flags["--gateway"] == f"http://dayzero-gateway.{NS}.svc:8080"
    assert flags["--metrics-port"] == "9090"
    assert flags["--liveness"] == "http://0.0.0.0:8080/healthz"
    # `dayzero operator` itself parses them (argparse exits on an unknown flag).
    parsed = build_parser().parse_args(args)
    assert parsed.routing_configmap == f"{NS}/dayzero-routing"
    assert parsed.metrics_port == 9090


def test_operator_watch_namespaces_bind_per_namespace(everything: list[dict[str, Any]]) -> None:
    op = one(everything, "Deployment", "operator")["spec"]["template"]["spec"]
    args = op["containers"][0]["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == ["team-a", "team-b"]
    bindings = [
        b for b in kinds(everything, "RoleBinding") if b["metadata"]["name"] == "dayzero-operator"
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    # No cluster-wide binding of the namespaced rules.
    assert not [
        b
        for b in kinds(everything, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "dayzero-operator"
    ]


# -- the gateway


def test_gateway_mounts_the_routing_configmap_the_operator_writes(
    default: list[dict[str, Any]],
) -> None:
    spec = one(default, "Deployment", "gateway")["spec"]["template"]["spec"]
    gateway = spec["containers"][0]
    config = gateway["args"][gateway["args"].index("--config") + 1]
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == "routing")
    assert config == f"{mount['mountPath']}/routing.yaml"
    assert "subPath" not in mount  # a subPath never sees the kubelet's updates
    volume = next(v for v in spec["volumes"] if v["name"] == "routing")
    assert volume["configMap"] == {"name": "dayzero-routing", "optional": True}
    # Helm never owns it: an upgrade must not reset what the operator wrote.
    assert not [
        c for c in kinds(default, "ConfigMap") if c["metadata"]["name"] == "dayzero-routing"
    ]


def test_gateway_has_no_api_access_unless_waking_from_zero(
    default: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    spec = one(default, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    subjects = [
        s["name"]
        for b in kinds(default, "RoleBinding") + kinds(default, "ClusterRoleBinding")
        for s in b["subjects"]
    ]
    assert "dayzero-gateway" not in subjects
    woke = one(everything, "ClusterRole", "gateway")
    assert woke["rules"] == [
        {
            "apiGroups": ["dayzero.dev"],
            "resources": ["modeldeployments"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["dayzero.dev"],
            "resources": ["modeldeployments/status"],
            "verbs": ["patch"],
        },
        # a request for a deployment at replicas 0 asks the scale subresource for one
        {
            "apiGroups": ["dayzero.dev"],
            "resources": ["modeldeployments/scale"],
            "verbs": ["get", "patch"],
        },
    ]


def test_several_gateway_replicas_need_redis() -> None:
    err = rejected("gateway.replicas=3")
    assert "redis.enabled" in err
    assert "gateway.redisUrl" in err
    assert "redis.enabled" in rejected("gateway.autoscaling.enabled=true")


def test_several_gateway_replicas_with_an_external_redis() -> None:
    ok = template(sets=("gateway.replicas=3", "gateway.redisUrl=redis://r.example:6379/0"))
    gateway = one(ok, "Deployment", "gateway")
    env = {
        e["name"]: e.get("value")
        for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DAYZERO_REDIS_URL"] == "redis://r.example:6379/0"


# -- security


def test_pods_are_non_root_read_only_without_escalation(everything: list[dict[str, Any]]) -> None:
    specs = pod_specs(everything)
    assert set(specs) >= {"dayzero-operator", "dayzero-gateway", "dayzero-watcher"}
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert c["resources"]["requests"], (name, c["name"])
            assert c["resources"]["limits"], (name, c["name"])


def rules_of(objs: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (o["kind"], o["metadata"]["name"], r)
        for o in objs
        if o["kind"] in ("ClusterRole", "Role")
        for r in o["rules"]
    ]


@pytest.mark.parametrize("values", [None, ALL_VALUES], ids=["default", "all"])
def test_rbac_is_least_privilege(values: Path | None) -> None:
    objs = template(values)
    for kind, name, rule in rules_of(objs):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), (kind, name, rule)
        assert "escalate" not in rule["verbs"]
        assert "bind" not in rule["verbs"]
        assert "impersonate" not in rule["verbs"]
        if "secrets" in rule["resources"]:
            # Secrets only by name, read only.
            assert rule.get("resourceNames"), (kind, name, rule)
            assert rule["verbs"] == ["get"], (kind, name, rule)
    for binding in kinds(objs, "ClusterRoleBinding") + kinds(objs, "RoleBinding"):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_no_secret_is_readable_by_default(default: list[dict[str, Any]]) -> None:
    assert not [r for _, _, r in rules_of(default) if "secrets" in r["resources"]]


def test_named_secrets_only_for_the_operator(everything: list[dict[str, Any]]) -> None:
    secret_rules = [(k, n, r) for k, n, r in rules_of(everything) if "secrets" in r["resources"]]
    assert secret_rules == [
        (
            "ClusterRole",
            "dayzero-operator",
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["hf-token"],
                "verbs": ["get"],
            },
        )
    ]


def test_watcher_creates_deployments_and_keeps_its_state(default: list[dict[str, Any]]) -> None:
    role = one(default, "Role", "watcher")
    assert role["metadata"]["namespace"] == NS
    by_resource = {tuple(r["resources"]): r for r in role["rules"]}
    assert "create" in by_resource[("modeldeployments", "gauntlets")]["verbs"]
    state = next(r for r in role["rules"] if r.get("resourceNames"))
    assert state["resourceNames"] == ["dayzero-watcher-state"]
    job = one(default, "CronJob", "watcher")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = job["containers"][0]["args"]
    assert args == ["watcher", "poll", "--config", "/etc/dayzero/watcher/watcher.yaml"]
    config = yaml.safe_load(one(default, "ConfigMap", "watcher")["data"]["watcher.yaml"])
    assert config["namespace"] == NS
    assert config["hub"]["orgs"]


# -- the values schema


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ("gateway.replicas=0", "/gateway/replicas"),
        ("containerSecurityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("operator.bogus=1", "'bogus' not allowed"),
        ("image.digest=latest", "/image/digest"),
        ("watcher.schedule=every ten minutes", "/watcher/schedule"),
        ("watcher.config.mode=yolo", "/watcher/config/mode"),
        ("operator.secretNames[0]=Not_A_Name", "/operator/secretNames/0"),
        ("priorityClass.value=2000000000", "/priorityClass/value"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(bad: str, field: str) -> None:
    assert field in rejected(bad)


# -- the dashboard and the offline validation


def test_dashboard_queries_the_real_metrics(default: list[dict[str, Any]]) -> None:
    dashboard = json.loads(one(default, "ConfigMap", "dashboard")["data"]["dayzero.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "dayzero_gateway_requests_total",
        "dayzero_gateway_request_duration_seconds_bucket",
        "dayzero_gateway_backend_failures_total",
        "dayzero_gateway_cost_usd_total",
        "kube_customresource_modeldeployment_ready",
        "dayzero_reconcile_errors_total",
    ):
        assert metric in exprs, metric


def test_strict_schema_validation_catches_a_typo(default: list[dict[str, Any]]) -> None:
    # The whole render is validated by `make chart-check`; loading every schema takes seconds.
    gateway = one(default, "Deployment", "gateway")
    assert list(validate([gateway])) == ["Deployment/dayzero-gateway"]
    broken = json.loads(json.dumps(gateway))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(CheckError, match="imagePullPolicyy"):
        list(validate([broken]))


@pytest.mark.parametrize("values", [None, ALL_VALUES], ids=["default", "all"])
def test_watcher_config_and_args_are_the_watchers_own(values: Path | None) -> None:
    """The rendered config parses with the watcher's own model; its args with its own CLI."""
    config_module = pytest.importorskip("dayzero.watcher.config", reason="the watcher is not here")
    objs = template(values)
    config = yaml.safe_load(one(objs, "ConfigMap", "watcher")["data"]["watcher.yaml"])
    parsed = config_module.parse_config(config)
    assert parsed.namespace == NS
    job = one(objs, "CronJob", "watcher")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = build_parser().parse_args(job["containers"][0]["args"])
    assert args.config == "/etc/dayzero/watcher/watcher.yaml"
    role = one(objs, "Role", "watcher")
    state = next(r for r in role["rules"] if r.get("resourceNames"))
    assert state["resourceNames"] == [parsed.state_config_map]


def test_network_policies_keep_the_operator_reaching_the_gateway(
    everything: list[dict[str, Any]],
) -> None:
    gateway = one(everything, "NetworkPolicy", "gateway")
    [rule] = gateway["spec"]["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"dayzero.dev/clients": "true"}}} in rule["from"]
    assert {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "dayzero",
                "app.kubernetes.io/instance": "dayzero",
                "app.kubernetes.io/component": "operator",
            }
        }
    } in rule["from"]
    operator = one(everything, "NetworkPolicy", "operator")
    ports = [p["port"] for r in operator["spec"]["ingress"] for p in r["ports"]]
    assert ports == [9090, 8080]
    redis = one(everything, "NetworkPolicy", "redis")
    [from_gateway] = redis["spec"]["ingress"][0]["from"]
    assert from_gateway["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
