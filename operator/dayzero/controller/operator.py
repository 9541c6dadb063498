"""The operator process: kopf watch streams feeding the work queue.

kopf handlers here are triggers only (habit 1): a ModelDeployment event, or an event on one of its
pods, StatefulSets or Jobs, enqueues the ModelDeployment's key; the queue runs the one idempotent
``reconcile``. Shared clients are created at start-up and kept in kopf's memo.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import kopf

from ..hub import fetch_model_facts
from ..kube import Kube
from ..kube.gather import MDEP_LABEL
from ..planner import ModelFacts
from ..render.modeldeployment import Images
from ..render.routing import DEFAULT_PROVIDER_URLS
from . import gauntlet, lane, modeldeployment
from .queue import Key, WorkQueue

log = logging.getLogger(__name__)

GROUP, VERSION = "dayzero.dev", "v1alpha1"
# The routing document is one object for every Lane: one key reconciles it.
ROUTING_KEY: Key = ("Routing", "", "routing")
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "dayzero.dev/component"
# Pinned images; images/ holds their Dockerfiles and a test keeps the two in step.
DEFAULT_IMAGES = Images(
    vllm="vllm/vllm-openai:v0.33.0",
    transformers="ghcr.io/dayzero-dev/transformers-serve:0.1.0",
    dayzero="ghcr.io/dayzero-dev/dayzero:0.1.0",
)


@dataclass(frozen=True)
class OperatorConfig:
    """Command-line settings of the operator process."""

    kubeconfig: str | None = None
    hub_endpoint: str | None = None
    workers: int = 8
    images: Images = DEFAULT_IMAGES
    # Explicit overrides of the providers' API URLs (a proxy, or loopback in tests and the demo).
    provider_urls: tuple[tuple[str, str], ...] = ()
    # The routing ConfigMap the gateway mounts ("namespace/name"), its document-wide settings,
    # and the gateways whose loaded config hash and metrics the Lane controller reads back.
    routing_configmap: str = "dayzero-system/dayzero-routing"
    routing_base: str | None = None
    gateways: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    # The image of evaluation Jobs (default: the dayzero image) and where their pods may run.
    gauntlet_image: str | None = None
    gauntlet_node_selector: tuple[tuple[str, str], ...] = ()


def http_get(url: str) -> str | None:
    """A gateway's /ready or /metrics, or None when it does not answer 200 in time."""
    try:
        resp = httpx.get(url, timeout=2.0, follow_redirects=False)
    except httpx.HTTPError:
        return None
    return resp.text if resp.status_code == 200 else None


def images_from_env(base: Images = DEFAULT_IMAGES) -> Images:
    """Image overrides for air-gapped registries: DAYZERO_{VLLM,TRANSFORMERS,DAYZERO}_IMAGE."""
    return Images(
        vllm=os.environ.get("DAYZERO_VLLM_IMAGE", base.vllm),
        transformers=os.environ.get("DAYZERO_TRANSFORMERS_IMAGE", base.transformers),
        dayzero=os.environ.get("DAYZERO_DAYZERO_IMAGE", base.dayzero),
    )


def make_fetcher(endpoint: str | None) -> modeldeployment.HubFetcher:
    def fetch(repo: str, revision: str, token: str | None) -> tuple[str, ModelFacts]:
        model = fetch_model_facts(repo, revision, token=token, endpoint=endpoint)
        return model.sha, model.facts

    return fetch


def probe(url: str) -> str | None:
    """Cheap reachability check of a provider: any HTTP answer counts, even 401 or 404."""
    try:
        httpx.get(url, timeout=5.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:  # noqa: PLR0915 - one handler per watched kind, side by side
    """The kopf handlers, bound to one registry so that tests can run several operators."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry has no default login handlers: in-cluster or $KUBECONFIG.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.enabled = False  # we post our own Events, one per transition
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="reconcile")
        )
        kube = Kube.from_config(config.kubeconfig)
        provider_urls = DEFAULT_PROVIDER_URLS | dict(config.provider_urls)
        deps = modeldeployment.Deps(
            kube=kube,
            images=config.images,
            fetch=make_fetcher(config.hub_endpoint),
            probe=probe,
            provider_urls=provider_urls,
        )

        cm_namespace, _slash, cm_name = config.routing_configmap.rpartition("/")
        routing = lane.RoutingDeps(
            kube=kube,
            configmap_namespace=cm_namespace or "dayzero-system",
            configmap_name=cm_name,
            namespaces=config.namespaces,
            base=lane.load_base(config.routing_base),
            gateways=config.gateways,
            provider_urls=provider_urls,
            http_get=http_get,
        )

        evaluations = gauntlet.GauntletDeps(
            kube=kube,
            images=config.images,
            gauntlet_image=config.gauntlet_image or config.images.dayzero,
            gateway_url=config.gateways[0] if config.gateways else None,
            node_selector=dict(config.gauntlet_node_selector),
            prices=routing.base.get("prices") or {},
        )

        def work(key: Key) -> float | None:
            kind, namespace, name = key
            if kind == "Routing":
                return lane.reconcile_routing(routing)
            if kind == "Gauntlet":
                return gauntlet.reconcile(evaluations, namespace, name)
            if kind == "GauntletTemplate":
                return gauntlet.ensure_from_template(evaluations, namespace, name)
            return modeldeployment.reconcile(deps, namespace, name)

        memo.kube = kube
        memo.queue = WorkQueue(work, workers=config.workers)
        memo.queue_task = asyncio.create_task(memo.queue.run())
        memo.queue.add(ROUTING_KEY)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        task = getattr(memo, "queue_task", None)
        if task is not None:
            task.cancel()
        kube = getattr(memo, "kube", None)
        if kube is not None:
            kube.close()

    # The id names the kwarg other handlers get it by (the default is the qualified name).
    @kopf.index(GROUP, VERSION, "gauntlets", id="gauntlets_by_deployment", registry=registry)
    async def gauntlets_by_deployment(
        *, name: str, namespace: str | None, spec: Mapping[str, Any], **_: Any
    ) -> dict[tuple[str | None, str], str]:
        """Which Gauntlets name each ModelDeployment: its events wake the ones waiting on it."""
        return {(namespace, mdep): name for mdep in gauntlet.deployments_named(spec)}

    @kopf.on.event(GROUP, VERSION, "modeldeployments", registry=registry)
    async def mdep_event(
        *,
        type: str,
        name: str,
        namespace: str | None,
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        # kopf passes every index by its id; the handler protocol does not declare them. Without
        # it, waiting Gauntlets still start on their own re-check.
        waiting: Mapping[tuple[str | None, str], Any] = kwargs.get("gauntlets_by_deployment", {})
        if namespace is None:
            return
        key = ("ModelDeployment", namespace, name)
        template: Key = ("GauntletTemplate", namespace, name)
        if type == "DELETED":
            memo.queue.forget(key)
            memo.queue.forget(template)
        else:
            memo.queue.add(key)
            memo.queue.add(template)  # spec.gauntlet, once the deployment is Ready
        for gauntlet_name in waiting.get((namespace, name), ()):
            memo.queue.add(("Gauntlet", namespace, gauntlet_name))
        memo.queue.add(ROUTING_KEY)  # readiness and endpoints feed the routing document

    @kopf.on.event(GROUP, VERSION, "lanes", registry=registry)
    async def lane_event(*, memo: kopf.Memo, **_: Any) -> None:
        memo.queue.add(ROUTING_KEY)

    @kopf.on.event(GROUP, VERSION, "gauntlets", registry=registry)
    async def gauntlet_event(
        *, type: str, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        if namespace is None:
            return
        key = ("Gauntlet", namespace, name)
        if type == "DELETED":
            memo.queue.forget(key)
        else:
            memo.queue.add(key)

    def child(meta: Mapping[str, Any], namespace: str | None, memo: kopf.Memo) -> None:
        # Owners, not labels: a shared download Job or cache PVC has several.
        for owner in meta.get("ownerReferences", []):
            if owner.get("kind") in ("ModelDeployment", "Gauntlet") and namespace:
                memo.queue.add((owner["kind"], namespace, owner["name"]))

    selector = {MANAGED_BY: "dayzero"}

    @kopf.on.event("v1", "pods", labels=selector, registry=registry)
    async def pod_event(
        *, meta: Mapping[str, Any], namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        # A serving pod is owned by a StatefulSet, not by the ModelDeployment: map it by its
        # label, which is the ModelDeployment's name unless that is over 63 characters (then
        # the key names nothing, the reconcile is a 404, and the periodic requeue covers it).
        name = meta.get("labels", {}).get(MDEP_LABEL)
        if name and namespace:
            memo.queue.add(("ModelDeployment", namespace, name))
        child(meta, namespace, memo)

    @kopf.on.event("apps", "v1", "statefulsets", labels=selector, registry=registry)
    async def sts_event(
        *, meta: Mapping[str, Any], namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        child(meta, namespace, memo)

    @kopf.on.event("batch", "v1", "jobs", labels=selector, registry=registry)
    async def job_event(
        *, meta: Mapping[str, Any], namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        child(meta, namespace, memo)

    # The result ConfigMaps an evaluation Job writes its verdict into (and its spec's).
    evaluation = {MANAGED_BY: "dayzero", COMPONENT_LABEL: "gauntlet"}

    @kopf.on.event("v1", "configmaps", labels=evaluation, registry=registry)
    async def configmap_event(
        *, meta: Mapping[str, Any], namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        child(meta, namespace, memo)

    return registry


def run(
    config: OperatorConfig,
    namespaces: list[str],
    liveness: str | None = None,
) -> None:
    """Run the operator until interrupted. kopf is not leader-elected: run one replica."""
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig
    kopf.configure(verbose=False)
    # kopf logs every handler call of every watch event at INFO ("Handler ... succeeded"): at a
    # thousand objects that is most of the operator's output and a good share of its CPU.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        registry=build_registry(config),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
