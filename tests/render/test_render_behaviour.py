"""What the rendered manifests promise, checked property by property."""

from __future__ import annotations

import re

import pytest
from render_cases import (
    IMAGES,
    NAMESPACE,
    OTHER_SHA,
    PLAN_8B,
    PLAN_70B_TP4,
    PLAN_405B_2X8,
    SHA,
    UID,
    engine_container,
    env_of,
    hub_spec,
    make_inputs,
    make_plan,
    model_deployment,
    of_kind,
    render,
    to_yaml,
    walk,
)

from dayzero.render import (
    Group,
    RenderError,
    cache_key,
    desired_cache,
    desired_serving,
    endpoint,
    labels,
    names,
    serving_hash,
)
from dayzero.render.durations import parse_duration, whole_seconds
from dayzero.render.modeldeployment import (
    STARTUP_BASE_S,
    STARTUP_PERIOD_S,
    STARTUP_S_PER_GIB,
    startup_failure_threshold,
)

REPO_8B = "meta-llama/Llama-3.1-8B-Instruct"
REPO_405B = "meta-llama/Llama-3.1-405B-Instruct"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def mdep_8b(name: str = "llama-3-1-8b", **fields):
    return model_deployment(name, hub_spec(REPO_8B, **fields))


def mdep_405b(backend: str = "native", **fields):
    return model_deployment(
        "llama-3-1-405b", hub_spec(REPO_405B, engine={"distributedBackend": backend}, **fields)
    )


def statefulsets(mdep, plan, **inputs):
    return of_kind(desired_serving(mdep, plan, make_inputs(mdep, plan, **inputs)), "StatefulSet")


def flag(args: list[str], name: str) -> str:
    """The value following a command-line flag."""
    return args[args.index(name) + 1]


# --- secrets -------------------------------------------------------------------------------------


def test_hf_token_is_only_ever_a_secret_key_reference():
    mdep = mdep_405b(weightCache={"hfTokenSecretRef": {"name": "hf-gated-token", "key": "hf"}})
    manifests = render(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8))

    mentions = [path for m in manifests for path, v in walk(m) if v == "hf-gated-token"]
    assert mentions, "the download Job must reference the token's Secret"
    assert all(path[-2:] == ("secretKeyRef", "name") for path in mentions), mentions
    assert to_yaml(manifests).count("hf-gated-token") == len(mentions)
    job = of_kind(manifests, "Job")[0]
    token = env_of(job["spec"]["template"]["spec"]["containers"][0])["HF_TOKEN"]
    assert token == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-gated-token", "key": "hf"}},
    }
    # Serving pods are offline: they never get the token at all.
    for sts in of_kind(manifests, "StatefulSet"):
        assert "HF_TOKEN" not in env_of(engine_container(sts))
        assert env_of(engine_container(sts))["HF_HUB_OFFLINE"]["value"] == "1"


def test_no_token_reference_without_a_token():
    mdep = mdep_8b()
    job = of_kind(desired_cache(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B)), "Job")[0]
    assert "HF_TOKEN" not in env_of(job["spec"]["template"]["spec"]["containers"][0])


# --- engine flags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plan", [PLAN_8B, PLAN_70B_TP4, PLAN_405B_2X8], ids=["tp1", "tp4", "tp8pp2"]
)
def test_parallelism_flags_and_gpus_match_the_plan(plan):
    mdep = mdep_405b()
    (sts,) = statefulsets(mdep, plan)
    engine = engine_container(sts)
    assert flag(engine["args"], "--tensor-parallel-size") == str(plan.tensor_parallel)
    assert flag(engine["args"], "--pipeline-parallel-size") == str(plan.pipeline_parallel)
    assert flag(engine["args"], "--max-model-len") == str(plan.max_model_len)
    assert flag(engine["args"], "--gpu-memory-utilization") == str(plan.gpu_memory_utilization)
    gpus = str(plan.gpus_per_node)
    assert engine["resources"] == {
        "requests": {"nvidia.com/gpu": gpus},
        "limits": {"nvidia.com/gpu": gpus},
    }
    assert sts["spec"]["replicas"] == plan.nodes
    assert sts["spec"]["template"]["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.product": plan.gpu_product
    }


def test_serves_the_resolved_sha_under_the_deployment_name_and_the_repo():
    mdep = mdep_8b(engine={"extraArgs": ["--enable-prefix-caching", "--max-num-seqs", "64"]})
    (sts,) = statefulsets(mdep, PLAN_8B, revision=OTHER_SHA)
    args = engine_container(sts)["args"]
    assert engine_container(sts)["command"] == ["vllm", "serve"]
    assert args[0] == REPO_8B
    assert flag(args, "--revision") == OTHER_SHA
    position = args.index("--served-model-name")
    assert args[position + 1 : position + 3] == ["llama-3-1-8b", REPO_8B]
    assert args[-3:] == ["--enable-prefix-caching", "--max-num-seqs", "64"]
    assert "--quantization" not in args  # the checkpoint's own quantization_config decides


def test_online_quantization_passes_the_method():
    plan = make_plan(quantization="fp8", online_quantization=True, weights_gib=8.0)
    (sts,) = statefulsets(mdep_8b(resources={"quantization": "fp8"}), plan)
    assert flag(engine_container(sts)["args"], "--quantization") == "fp8"


def test_vllm_transformers_rung_adds_model_impl():
    mdep = mdep_8b()
    (sts,) = statefulsets(mdep, PLAN_8B, engine="vllm-transformers")
    assert flag(engine_container(sts)["args"], "--model-impl") == "transformers"
    assert engine_container(sts)["image"] == IMAGES.vllm


def test_transformers_rung_serves_the_snapshot_with_transformers_serve():
    mdep = mdep_8b(engine={"kind": "transformers", "extraArgs": ["--continuous-batching"]})
    (sts,) = statefulsets(mdep, PLAN_8B, engine="transformers")
    engine = engine_container(sts)
    assert engine["image"] == IMAGES.transformers
    assert engine["command"] == ["transformers", "serve"]
    assert engine["args"][0] == f"{REPO_8B}@{SHA}"
    assert flag(engine["args"], "--port") == "8000"
    assert flag(engine["args"], "--host") == "0.0.0.0"  # noqa: S104 - asserted, not bound
    assert engine["args"][-1] == "--continuous-batching"  # chosen for this engine: kept


def test_image_overrides_win_over_the_pinned_images():
    mdep = mdep_8b(
        engine={
            "image": "registry.local/vllm:nightly",
            "transformersImage": "registry.local/tf:dev",
        }
    )
    (vllm,) = statefulsets(mdep, PLAN_8B)
    (transformers,) = statefulsets(mdep, PLAN_8B, engine="transformers")
    assert engine_container(vllm)["image"] == "registry.local/vllm:nightly"
    assert engine_container(transformers)["image"] == "registry.local/tf:dev"


def test_transformers_rung_on_several_nodes_is_a_render_error_naming_the_field():
    mdep = mdep_405b()
    with pytest.raises(RenderError, match="one node") as error:
        desired_serving(
            mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8, engine="transformers")
        )
    assert error.value.field == "spec.engine"
    assert isinstance(error.value, ValueError)


def test_transformers_rung_cannot_quantize_fp8_online():
    plan = make_plan(quantization="fp8", online_quantization=True)
    mdep = mdep_8b(resources={"quantization": "fp8"})
    with pytest.raises(RenderError) as error:
        desired_serving(mdep, plan, make_inputs(mdep, plan, engine="transformers"))
    assert error.value.field == "spec.resources.quantization"


def test_engine_env_may_not_redefine_the_operators_variables():
    mdep = mdep_8b(
        engine={"env": [{"name": "A", "value": "1"}, {"name": "HF_HUB_CACHE", "value": "/x"}]}
    )
    with pytest.raises(RenderError) as error:
        desired_serving(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))
    assert error.value.field == "spec.engine.env[1].name"


def test_engine_env_follows_the_operators_in_spec_order():
    mdep = mdep_8b(engine={"env": [{"name": "Z", "value": "1"}, {"name": "A", "value": "2"}]})
    (sts,) = statefulsets(mdep, PLAN_8B)
    names_in_order = [e["name"] for e in engine_container(sts)["env"]]
    assert names_in_order == ["HF_HUB_OFFLINE", "HF_HUB_CACHE", "Z", "A"]


# --- multi-node ----------------------------------------------------------------------------------


def test_native_multi_node_leader_address_rank_and_headless_workers():
    mdep = mdep_405b()
    (sts,) = statefulsets(mdep, PLAN_405B_2X8)
    name = sts["metadata"]["name"]
    pod = sts["spec"]["template"]["spec"]
    engine = engine_container(sts)
    leader = f"{name}-0.{name}.{NAMESPACE}.svc.cluster.local"

    assert sts["spec"]["serviceName"] == name
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert flag(engine["args"], "--master-addr") == leader
    assert flag(engine["args"], "--master-port") == "29500"
    assert flag(engine["args"], "--nnodes") == "2"
    assert flag(engine["args"], "--node-rank") == "$(NODE_RANK)"
    rank = env_of(engine)["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert rank == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env_of(engine)["VLLM_HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # Rank 0 serves; every other rank runs the same command with --headless.
    shell, dash_c, script, _ = engine["command"]
    assert (shell, dash_c) == ("sh", "-c")
    assert 'if [ "$NODE_RANK" = 0 ]; then exec vllm serve "$@"; fi' in script
    assert 'exec vllm serve "$@" --headless' in script
    # Workers wait for the leader's DNS name.
    (wait,) = pod["initContainers"]
    assert wait["image"] == IMAGES.dayzero
    assert env_of(wait)["LEADER_HOST"]["value"] == leader
    assert "NODE_RANK" in env_of(wait)


def test_one_pod_per_node_and_one_zone_preferred_for_multi_node_groups():
    (sts,) = statefulsets(mdep_405b(), PLAN_405B_2X8)
    affinity = sts["spec"]["template"]["spec"]["affinity"]
    selector = sts["spec"]["selector"]
    (anti,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}
    (zone,) = affinity["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert zone["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert zone["podAffinityTerm"]["labelSelector"] == selector


def test_single_node_groups_have_no_affinity_init_container_or_rank():
    (sts,) = statefulsets(mdep_8b(), PLAN_8B)
    pod = sts["spec"]["template"]["spec"]
    assert "affinity" not in pod
    assert "initContainers" not in pod
    assert "NODE_RANK" not in env_of(engine_container(sts))
    assert engine_container(sts)["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_ray_leader_starts_the_head_and_workers_join_it():
    (sts,) = statefulsets(mdep_405b("ray"), PLAN_405B_2X8)
    engine = engine_container(sts)
    name = sts["metadata"]["name"]
    script = engine["command"][2]
    assert "ray start --head --port=6379" in script
    assert f"exec ray start --address={name}-0.{name}.{NAMESPACE}.svc.cluster.local:6379" in script
    assert "--block" in script
    assert flag(engine["args"], "--distributed-executor-backend") == "ray"
    assert "--nnodes" not in engine["args"]
    assert "--master-addr" not in engine["args"]


def test_only_the_leader_is_probed_over_http_on_multi_node_groups():
    (sts,) = statefulsets(mdep_405b(), PLAN_405B_2X8)
    engine = engine_container(sts)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = engine[probe]["exec"]["command"]
        assert command[:2] == ["python3", "-c"]
        assert "NODE_RANK') == '0'" in command[2]
        assert "127.0.0.1:8000/health" in command[2]
    assert engine["livenessProbe"]["periodSeconds"] == 20
    assert engine["readinessProbe"]["periodSeconds"] == 10


def test_startup_budget_grows_with_the_weights_each_pod_loads():
    small = startup_failure_threshold(make_plan(weights_gib=15.0))
    large = startup_failure_threshold(
        make_plan(weights_gib=150.0, gpus_per_node=4, tensor_parallel=4)
    )
    spread = startup_failure_threshold(
        make_plan(
            weights_gib=150.0, gpus_per_node=4, nodes=2, tensor_parallel=4, pipeline_parallel=2
        )
    )
    assert small < spread < large
    assert small == -(-(STARTUP_BASE_S + STARTUP_S_PER_GIB * 15) // STARTUP_PERIOD_S)
    (sts,) = statefulsets(mdep_405b(), PLAN_405B_2X8)
    probe = engine_container(sts)["startupProbe"]
    budget = probe["failureThreshold"] * probe["periodSeconds"]
    assert budget >= STARTUP_BASE_S + STARTUP_S_PER_GIB * PLAN_405B_2X8.weights_gib / 2


# --- names, labels, owners -----------------------------------------------------------------------


def test_names_fit_kubernetes_limits_for_a_very_long_name():
    long_name = "a" + ".b-c" * 60  # 241 characters: a valid ModelDeployment (DNS subdomain) name
    mdep = model_deployment(long_name, hub_spec(REPO_405B))
    inputs = make_inputs(mdep, PLAN_405B_2X8, replicas=12)
    manifests = render(mdep, PLAN_405B_2X8, inputs)
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        assert len(name) <= 63, name
        assert DNS_1035.match(name), name
        for key, value in manifest["metadata"]["labels"].items():
            assert len(value) <= 63, (key, value)
            assert LABEL_VALUE.match(value), (key, value)
    for sts in of_kind(manifests, "StatefulSet"):
        # Pods are <sts>-<ordinal>; the revision label is <sts>-<10-char hash>.
        assert len(sts["metadata"]["name"]) <= 52
        assert sts["spec"]["template"]["metadata"]["labels"] == sts["metadata"]["labels"]
    assert len({m["metadata"]["name"] for m in of_kind(manifests, "StatefulSet")}) == 12
    assert endpoint(long_name, NAMESPACE).startswith(
        f"http://{names.leader_service_name(long_name)}."
    )


def test_long_names_with_a_common_prefix_stay_distinct():
    first, second = "x" * 60 + "-one", "x" * 60 + "-two"
    assert names.leader_service_name(first) != names.leader_service_name(second)
    assert names.statefulset_name(first, "0123456789", 0) != names.statefulset_name(
        second, "0123456789", 0
    )
    assert labels.value(first) != labels.value(second)


def test_short_valid_names_are_kept_verbatim():
    assert names.leader_service_name("llama-3-1-8b") == "llama-3-1-8b"
    assert names.statefulset_name("llama-3-1-8b", "0123456789", 3) == "llama-3-1-8b-0123456789-3"
    assert endpoint("llama-3-1-8b", "models") == "http://llama-3-1-8b.models.svc:8000/v1"
    # Dots and a leading digit are not allowed in Service names: cleaned, with a hash.
    assert DNS_1035.match(names.leader_service_name("3.1-8b"))


def test_every_object_is_owned_by_the_model_deployment():
    mdep = mdep_405b(replicas=2)
    manifests = render(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8, replicas=2))
    assert {m["kind"] for m in manifests} == {
        "PersistentVolumeClaim",
        "Job",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
    }
    for manifest in manifests:
        owners = manifest["metadata"]["ownerReferences"]
        mine = [o for o in owners if o["uid"] == UID]
        assert mine == [
            {
                "apiVersion": "dayzero.dev/v1alpha1",
                "kind": "ModelDeployment",
                "name": "llama-3-1-405b",
                "uid": UID,
                "controller": mine[0]["controller"],
                "blockOwnerDeletion": mine[0]["blockOwnerDeletion"],
            }
        ]
        shared = manifest["kind"] in ("PersistentVolumeClaim", "Job")
        assert mine[0]["controller"] is not shared
        assert manifest["metadata"]["namespace"] == NAMESPACE


def test_the_shared_cache_has_one_owner_per_model_deployment_and_no_controller():
    mdep = mdep_8b()
    owners = (("zz-canary", "uid-2"), ("aa-eval", "uid-3"), ("llama-3-1-8b", UID))
    pvc, job = desired_cache(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B, cache_owners=owners))
    for obj in (pvc, job):
        refs = obj["metadata"]["ownerReferences"]
        assert [r["name"] for r in refs] == ["aa-eval", "llama-3-1-8b", "zz-canary"]
        assert not any(r["controller"] for r in refs)


def test_cache_is_keyed_by_repo_and_shared_by_a_second_deployment_of_it():
    first, second = mdep_8b("llama-a"), mdep_8b("llama-b")
    pvc_a, job_a = desired_cache(first, PLAN_8B, make_inputs(first, PLAN_8B))
    pvc_b, job_b = desired_cache(second, PLAN_8B, make_inputs(second, PLAN_8B))
    assert pvc_a["metadata"]["name"] == pvc_b["metadata"]["name"] == names.cache_pvc_name(REPO_8B)
    assert job_a["metadata"]["name"] == job_b["metadata"]["name"]
    assert cache_key(first) == cache_key(second) == f"pvc:{names.cache_pvc_name(REPO_8B)}"
    _, job_other = desired_cache(first, PLAN_8B, make_inputs(first, PLAN_8B, revision=OTHER_SHA))
    assert job_other["metadata"]["name"] != job_a["metadata"]["name"]


# --- the cache -----------------------------------------------------------------------------------


def test_no_cache_configured_means_a_default_pvc_never_an_emptydir():
    mdep = mdep_8b()
    manifests = render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))
    (pvc,) = of_kind(manifests, "PersistentVolumeClaim")
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "500Gi"}},
    }
    (sts,) = of_kind(manifests, "StatefulSet")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["weights"]["persistentVolumeClaim"] == {"claimName": pvc["metadata"]["name"]}
    mount = next(m for m in engine_container(sts)["volumeMounts"] if m["name"] == "weights")
    assert mount["mountPath"] == "/models"
    assert env_of(engine_container(sts))["HF_HUB_CACHE"]["value"] == "/models/hub"


def test_download_job_runs_hf_download_on_cpu_as_non_root_with_the_spec_limits():
    mdep = mdep_8b(weightCache={"downloadTimeout": "1h30m", "downloadRetries": 5})
    job = of_kind(desired_cache(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B)), "Job")[0]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:7] == [
        "hf",
        "download",
        REPO_8B,
        "--revision",
        SHA,
        "--cache-dir",
        "/models/hub",
    ]
    assert container["image"] == IMAGES.dayzero
    assert job["spec"]["activeDeadlineSeconds"] == 5400
    assert job["spec"]["backoffLimit"] == 5
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert "nodeSelector" not in pod  # a PVC is reachable from any node


def test_shared_path_is_a_hostpath_and_downloads_on_a_gpu_node():
    mdep = mdep_8b(weightCache={"sharedPath": "/mnt/lustre/hf"})
    manifests = render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))
    assert not of_kind(manifests, "PersistentVolumeClaim")
    job = of_kind(manifests, "Job")[0]["spec"]["template"]["spec"]
    sts = of_kind(manifests, "StatefulSet")[0]["spec"]["template"]["spec"]
    for pod in (job, sts):
        weights = next(v for v in pod["volumes"] if v["name"] == "weights")
        assert weights["hostPath"] == {"path": "/mnt/lustre/hf", "type": "DirectoryOrCreate"}
    assert job["nodeSelector"] == {"nvidia.com/gpu.product": PLAN_8B.gpu_product}


def test_existing_claim_is_mounted_and_never_created():
    mdep = mdep_8b(weightCache={"existingClaim": "team-hf-cache"})
    manifests = render(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B))
    assert not of_kind(manifests, "PersistentVolumeClaim")
    for kind in ("Job", "StatefulSet"):
        pod = of_kind(manifests, kind)[0]["spec"]["template"]["spec"]
        weights = next(v for v in pod["volumes"] if v["name"] == "weights")
        assert weights["persistentVolumeClaim"] == {"claimName": "team-hf-cache"}


def test_provider_models_render_nothing():
    mdep = model_deployment(
        "gpt",
        {
            "source": {
                "provider": {
                    "provider": "openai",
                    "model": "gpt-5",
                    "apiKeySecretRef": {"name": "k"},
                }
            }
        },
    )
    inputs = make_inputs(mdep, PLAN_8B)
    assert desired_cache(mdep, PLAN_8B, inputs) == []
    assert desired_serving(mdep, PLAN_8B, inputs) == []
    assert cache_key(mdep) is None


# --- serving hash, surge, leader, PDB ------------------------------------------------------------


def test_serving_hash_changes_with_what_pods_serve_and_not_with_replicas():
    base = mdep_8b()
    reference = serving_hash(base, PLAN_8B, SHA, "vllm", IMAGES)
    assert re.fullmatch(r"[0-9a-f]{10}", reference)
    assert serving_hash(base, PLAN_8B, SHA, "vllm", IMAGES) == reference
    assert serving_hash(mdep_8b(replicas=5), PLAN_8B, SHA, "vllm", IMAGES) == reference
    assert (
        serving_hash(mdep_8b(scaling={"maxReplicas": 9}), PLAN_8B, SHA, "vllm", IMAGES) == reference
    )
    fp8 = make_plan(quantization="fp8", online_quantization=True)
    changed = {
        "revision": serving_hash(base, PLAN_8B, OTHER_SHA, "vllm", IMAGES),
        "quantization": serving_hash(
            mdep_8b(resources={"quantization": "fp8"}), fp8, SHA, "vllm", IMAGES
        ),
        "rung": serving_hash(base, PLAN_8B, SHA, "vllm-transformers", IMAGES),
        "transformers": serving_hash(base, PLAN_8B, SHA, "transformers", IMAGES),
        "args": serving_hash(mdep_8b(engine={"extraArgs": ["--x"]}), PLAN_8B, SHA, "vllm", IMAGES),
        "layout": serving_hash(base, PLAN_70B_TP4, SHA, "vllm", IMAGES),
    }
    assert reference not in changed.values()
    assert len(set(changed.values())) == len(changed)


def test_surge_renders_the_new_groups_and_routes_to_the_old_until_ready():
    mdep = mdep_8b(replicas=2)
    old = serving_hash(mdep, PLAN_8B, OTHER_SHA, "vllm", IMAGES)
    retiring = (Group(0, old), Group(1, old))
    inputs = make_inputs(mdep, PLAN_8B, replicas=2, extra_groups=retiring, active_hash=old)
    new = serving_hash(mdep, PLAN_8B, SHA, "vllm", IMAGES)
    manifests = desired_serving(mdep, PLAN_8B, inputs)

    rendered_hashes = {
        m["metadata"]["labels"][labels.SERVING_HASH]
        for m in manifests
        if labels.SERVING_HASH in m["metadata"]["labels"]
    }
    assert rendered_hashes == {new}  # the old groups are left alone, never rewritten
    leader = next(m for m in of_kind(manifests, "Service") if m["spec"].get("type") == "ClusterIP")
    assert leader["metadata"]["name"] == "llama-3-1-8b"
    assert leader["spec"]["selector"] == {
        labels.MODEL_DEPLOYMENT: "llama-3-1-8b",
        labels.COMPONENT: "serving",
        labels.SERVING_HASH: old,
        labels.POD_INDEX: "0",
    }


def test_leader_service_exists_before_anything_is_routable():
    mdep = mdep_8b()
    for replicas in (1, 0):
        manifests = desired_serving(mdep, PLAN_8B, make_inputs(mdep, PLAN_8B, replicas=replicas))
        (leader,) = [
            s for s in of_kind(manifests, "Service") if s["spec"].get("type") == "ClusterIP"
        ]
        assert leader["spec"]["selector"][labels.SERVING_HASH] == serving_hash(
            mdep, PLAN_8B, SHA, "vllm", IMAGES
        )
    assert not of_kind(manifests, "StatefulSet")


def test_pdb_only_with_several_groups_and_one_group_of_pods_at_a_time():
    one = statefulsets(mdep_405b(), PLAN_405B_2X8)
    assert len(one) == 1
    mdep = mdep_405b()
    single = desired_serving(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8))
    assert not of_kind(single, "PodDisruptionBudget")
    several = desired_serving(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8, replicas=3))
    (pdb,) = of_kind(several, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == PLAN_405B_2X8.nodes
    assert pdb["spec"]["selector"]["matchLabels"][labels.SERVING_HASH] == serving_hash(
        mdep, PLAN_405B_2X8, SHA, "vllm", IMAGES
    )


def test_rendering_is_deterministic_and_shares_no_objects():
    mdep = mdep_405b(replicas=2)
    first = render(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8, replicas=2))
    second = render(mdep, PLAN_405B_2X8, make_inputs(mdep, PLAN_405B_2X8, replicas=2))
    assert first == second
    first[2]["metadata"]["labels"]["mutated"] = "yes"
    assert "mutated" not in first[2]["spec"]["template"]["metadata"]["labels"]
    assert "&id" not in to_yaml(second)


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 7200),
        ("90m", 5400),
        ("1h30m", 5400),
        ("45s", 45),
        ("1.5h", 5400),
        ("1500ms", 2),
        ("10ms", 1),
    ],
)
def test_go_durations_become_whole_seconds(text, seconds):
    assert whole_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "1d", "1h 30m", "-1h", "1hm"])
def test_malformed_durations_are_rejected(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
