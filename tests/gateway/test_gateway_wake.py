"""Wake-from-zero against a fake Kubernetes API server on loopback that speaks what the gateway
uses of the real one: GET a ModelDeployment, its ``scale`` subresource, and merge-patches of
``scale`` and ``status`` with a field manager. The real control plane is in
e2e/test_gateway_wake.py."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from gateway_fakes import CHAT, document, serve, upstreams

from dayzero.cli import main
from dayzero.gateway.wake import KubeError, Waker, from_kubeconfig, in_cluster

Run = Callable[[Coroutine[Any, Any, Any]], Any]
SA_TOKEN = "sa-token"  # noqa: S105 - the fake API server's own bearer token
BASE = "/apis/dayzero.dev/v1alpha1/namespaces/{ns}/modeldeployments/{name}"


@dataclass
class FakeApiServer:
    """One ModelDeployment ``team/sleepy`` at ``spec.replicas`` 0; a scale-up makes it Ready
    ``ready_after`` seconds later (what the operator and kubelet would do)."""

    ready_after: float = 0.2
    token: str = SA_TOKEN
    obj: dict[str, Any] = field(
        default_factory=lambda: {
            "apiVersion": "dayzero.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "sleepy", "namespace": "team"},
            "spec": {"replicas": 0, "source": {"hub": {"repo": "org/m"}}, "scaling": {}},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "ScaledToZero"}]
            },
        }
    )
    calls: list[tuple[str, str, str, dict[str, Any] | None, str | None]] = field(
        default_factory=list
    )
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"kind": "Status", "message": "Unauthorized"}, status=401)
        body = await request.json() if request.can_read_body else None
        sub = request.match_info["sub"]
        self.calls.append(
            (
                request.method,
                sub,
                request.headers.get("Content-Type", ""),
                body,
                request.query.get("fieldManager"),
            )
        )
        if (request.match_info["ns"], request.match_info["name"]) != ("team", "sleepy"):
            return web.json_response({"kind": "Status", "message": "not found"}, status=404)
        if request.method == "PATCH" and request.content_type != "application/merge-patch+json":
            return web.json_response({"message": "unsupported patch"}, status=415)
        if sub == "/scale":
            if request.method == "PATCH":
                self.obj["spec"]["replicas"] = body["spec"]["replicas"]
                asyncio.get_running_loop().call_later(self.ready_after, self._ready)
            replicas = self.obj["spec"]["replicas"]
            return web.json_response(
                {
                    "kind": "Scale",
                    "apiVersion": "autoscaling/v1",
                    "spec": {"replicas": replicas},
                    "status": {"replicas": 0},
                }
            )
        if sub == "/status" and request.method == "PATCH":
            self.obj["status"].update(body["status"])
        return web.json_response(self.obj)

    def _ready(self) -> None:
        self.obj["status"]["conditions"] = [
            {"type": "Ready", "status": "True", "reason": "Serving"}
        ]

    def patches(self, sub: str) -> list[dict[str, Any] | None]:
        return [c[3] for c in self.calls if c[0] == "PATCH" and c[1] == sub]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route(
            "*", BASE.format(ns="{ns}", name="{name}") + "{sub:(/scale|/status)?}", self.handle
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def kubeconfig(tmp: Path, server: str, token: str = SA_TOKEN) -> Path:
    path = tmp / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "gw"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "gw", "user": {"token": token}}],
            }
        )
    )
    return path


def wake_doc(sleepy: str, other: str, **lane: Any) -> dict[str, Any]:
    return document(
        [
            {
                "name": "sleepy",
                "url": sleepy,
                "model": "sleepy",
                "modelDeployment": "team/sleepy",
                "asleep": True,
            },
            {"name": "other", "url": other},
        ],
        lanes=[{"name": "chat", "model": "chat", "backends": ["sleepy", "other"], **lane}],
    )


def waker_for(tmp: Path, api: FakeApiServer, **kw: Any) -> Waker:
    # The kubeconfig names an in-cluster address; the override points it at loopback.
    access = from_kubeconfig(kubeconfig(tmp, "unused"), server=api.url)
    assert access.server == api.url
    return Waker(access, poll_seconds=0.05, **kw)


def test_a_waiting_lane_wakes_the_deployment_and_is_served_by_it(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        api = FakeApiServer()
        await api.start()
        try:
            async with upstreams("ok", "ok") as (sleepy, other):
                doc = wake_doc(sleepy.url, other.url, wakeTimeoutSeconds=1.5)
                spec_before = copy.deepcopy(api.obj["spec"])
                async with serve(doc, tmp_path, waker=waker_for(tmp_path, api)) as gw:
                    started = time.monotonic()
                    status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                    assert status == 200
                    assert headers["x-dayzero-backend"] == "sleepy"
                    assert time.monotonic() - started >= 0.2  # it waited for Ready
                    assert other.requests == []
                    assert api.patches("/scale") == [{"spec": {"replicas": 1}}]
                    assert api.obj["spec"] == {**spec_before, "replicas": 1}  # nothing else
                    assert all(
                        c[2] == "application/merge-patch+json" for c in api.calls if c[0] == "PATCH"
                    )
                    assert all(c[4] == "dayzero-gateway" for c in api.calls if c[0] == "PATCH")
                    assert "lastUsedTime" in api.obj["status"]
                    _, st = await gw.get("/v1/models/status")
                    entry = next(b for b in st["backends"] if b["name"] == "sleepy")
                    assert entry["asleep"] is True
                    assert entry["modelDeployment"] == "team/sleepy"
                    assert entry["wake"]["wakes"] == 1
                    # The next request finds it Ready (cached): no second scale-up.
                    status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                    assert headers["x-dayzero-backend"] == "sleepy"
                    assert len(api.patches("/scale")) == 1
        finally:
            await api.stop()

    run(scenario())


def test_a_lane_without_wait_falls_through_at_once_and_still_wakes(
    tmp_path: Path, run: Run
) -> None:
    async def scenario() -> None:
        api = FakeApiServer(ready_after=5)
        await api.start()
        try:
            async with (
                upstreams("ok", "ok") as (sleepy, other),
                serve(
                    wake_doc(sleepy.url, other.url), tmp_path, waker=waker_for(tmp_path, api)
                ) as gw,
            ):
                started = time.monotonic()
                status, headers, _ = await gw.post("/v1/chat/completions", CHAT)
                assert status == 200
                assert headers["x-dayzero-backend"] == "other"
                assert time.monotonic() - started < 1.0  # not the 5 s wake-up
                assert sleepy.requests == []
                deadline = time.monotonic() + 1
                while not api.patches("/scale"):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                assert api.obj["spec"]["replicas"] == 1
                _, metrics = await gw.get("/metrics")
                assert 'backend="sleepy",lane="chat",reason="asleep"' in metrics
        finally:
            await api.stop()

    run(scenario())


def test_last_use_is_reported_at_most_once_a_period(tmp_path: Path, run: Run) -> None:
    async def scenario() -> None:
        api = FakeApiServer()
        api.obj["spec"]["replicas"] = 1
        api._ready()
        await api.start()
        try:
            async with upstreams("ok") as (awake,):
                doc = document(
                    [{"name": "awake", "url": awake.url, "modelDeployment": "team/sleepy"}]
                )
                async with serve(
                    doc, tmp_path, waker=waker_for(tmp_path, api, report_seconds=30)
                ) as gw:
                    for _ in range(5):
                        assert (await gw.post("/v1/chat/completions", CHAT))[0] == 200
                    await asyncio.sleep(0.1)
                    assert len(api.patches("/status")) == 1
                    assert api.patches("/scale") == []  # an awake deployment is never scaled
        finally:
            await api.stop()

    run(scenario())


def test_without_kubernetes_access_an_asleep_backend_is_passed_over(
    tmp_path: Path, run: Run
) -> None:
    async def scenario() -> None:
        async with upstreams("ok") as (sleepy,):
            doc = wake_doc(sleepy.url, sleepy.url)
            doc["lanes"][0]["backends"] = ["sleepy"]
            async with serve(doc, tmp_path) as gw:
                status, _, body = await gw.post("/v1/chat/completions", CHAT)
                assert status == 502
                assert (
                    "sleepy: asleep: scaled to zero (the gateway has no Kubernetes access"
                    in body["error"]["message"]
                )
                assert sleepy.requests == []

    run(scenario())


def test_kubeconfig_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="--kubeconfig: cannot read"):
        from_kubeconfig(tmp_path / "missing")
    (tmp_path / "bad").write_text(json.dumps({"current-context": "x"}))
    with pytest.raises(KubeError, match="no usable current context"):
        from_kubeconfig(tmp_path / "bad")
    access = from_kubeconfig(kubeconfig(tmp_path, "x"))
    assert access.server == "https://10.0.0.1:6443"
    assert access.token == SA_TOKEN


def test_in_cluster_reads_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text(SA_TOKEN + "\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    access = in_cluster(sa_dir=tmp_path)
    assert access.server == "https://10.96.0.1:443"
    assert access.token == SA_TOKEN
    assert in_cluster("http://127.0.0.1:8001", sa_dir=tmp_path).server == "http://127.0.0.1:8001"
    with pytest.raises(KubeError, match="--in-cluster: cannot read the ServiceAccount"):
        in_cluster(sa_dir=tmp_path / "none")


def test_gateway_flags_refuse_bad_kubernetes_access(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(yaml.safe_dump(document([{"name": "b", "url": "http://127.0.0.1:9"}])))
    argv = ["gateway", "--config", str(config), "--port", "1"]
    assert main([*argv, "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert "--kubeconfig: cannot read" in capsys.readouterr().err
    kc = str(kubeconfig(tmp_path, "x"))  # its server is https://10.0.0.1:6443
    assert main([*argv, "--kubeconfig", kc, "--loopback-only"]) == 2
    assert "--kube-api-server: https://10.0.0.1:6443 is not loopback" in capsys.readouterr().err
