"""Wake-from-zero: the gateway reports when each ModelDeployment was last used and wakes one that
is scaled to zero.

Why here: only the gateway sees traffic. The operator scales a deployment to zero after
``scaling.idleAfter`` without use (in status, never in the spec); the gateway writes
``status.lastUsedTime`` (its own field, under its own field manager, at most every
``report_seconds`` per deployment, so traffic does not become API load). A request for a backend
scaled to zero wakes it: a fresh ``lastUsedTime`` brings back one the operator idled, and one
whose ``spec.replicas`` is 0 is asked for one replica through the ``scale`` subresource (what
that subresource is for; nothing else of the spec is written). The request then waits up to the
lane's ``wakeTimeoutSeconds`` for the deployment to be Ready, or falls through to the next backend
at once. The API server is reached with a kubeconfig or the in-cluster ServiceAccount, at a URL
that may be overridden (tests point it at loopback).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/dayzero.dev/v1alpha1"
FIELD_MANAGER = "dayzero-gateway"
REPORT_SECONDS = 30.0
POLL_SECONDS = 0.5
API_SECONDS = 5.0
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """Kubernetes access that cannot be set up (the message names the flag), or an API error."""


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate to it."""

    server: str
    token: str | None = None
    ca_data: str | None = None
    """PEM of the CA that signed the server's certificate (None: the system's)."""
    cert_pem: str | None = None
    key_pem: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS settings for https servers (None for http)."""
        if not self.server.startswith("https://"):
            return None
        context = ssl.create_default_context(cadata=self.ca_data) if self.ca_data else None
        context = context or ssl.create_default_context()
        if self.cert_pem and self.key_pem:
            # The ssl module loads a client certificate from files only: a private temp folder.
            with tempfile.TemporaryDirectory(prefix="dayzero-kube-") as folder:
                cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
                cert.write_text(self.cert_pem)
                key.write_text(self.key_pem)
                context.load_cert_chain(cert, key)
        return context


def _data(entry: dict[str, Any], name: str, base: Path) -> str | None:
    """A kubeconfig field given inline (``NAME-data``, base64) or as a file (``NAME``)."""
    inline = entry.get(f"{name}-data")
    if inline:
        return base64.b64decode(inline).decode()
    path = entry.get(name)
    if path:
        return (base / path).read_text() if not Path(path).is_absolute() else Path(path).read_text()
    return None


def from_kubeconfig(path: str | Path, server: str | None = None) -> KubeAccess:
    """The current context of a kubeconfig file; ``server`` overrides its cluster URL."""
    path = Path(path)
    try:
        config: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise KubeError(f"--kubeconfig: cannot read {path}: {e}") from None
    try:
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        context = contexts[config["current-context"]]
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user: dict[str, Any] = next(
            (u["user"] for u in config.get("users") or [] if u["name"] == context.get("user")), {}
        )
    except (KeyError, TypeError, StopIteration, AttributeError) as e:
        raise KubeError(f"--kubeconfig: {path}: no usable current context ({e})") from None
    base = path.parent
    token = user.get("token")
    if token is None and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    return KubeAccess(
        server=(server or cluster["server"]).rstrip("/"),
        token=token,
        ca_data=_data(cluster, "certificate-authority", base),
        cert_pem=_data(user, "client-certificate", base),
        key_pem=_data(user, "client-key", base),
    )


def in_cluster(server: str | None = None, sa_dir: Path = SA_DIR) -> KubeAccess:
    """The pod's ServiceAccount token and CA; ``server`` overrides the API server URL."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if server is None and not (host and port):
        raise KubeError("--in-cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    try:
        token = (sa_dir / "token").read_text().strip()
        ca = (sa_dir / "ca.crt").read_text()
    except OSError as e:
        raise KubeError(f"--in-cluster: cannot read the ServiceAccount: {e}") from None
    return KubeAccess(
        server=(server or f"https://{host}:{port}").rstrip("/"), token=token, ca_data=ca
    )


@dataclass
class Deployment:
    """What the gateway knows of one ModelDeployment."""

    reported: float = 0.0
    """Monotonic time of the last lastUsedTime written."""
    wakes: int = 0
    woke_at: str | None = None
    ready_until: float = 0.0
    """Until then it is known Ready (no API read per request while the document catches up)."""
    error: str | None = None
    waking: asyncio.Task[None] | None = field(default=None, repr=False)

    def wire(self) -> dict[str, Any]:
        """As /v1/models/status shows it."""
        return {"wakes": self.wakes, "lastWake": self.woke_at, "error": self.error}


class Waker:
    """Reports last use and wakes ModelDeployments through the API server."""

    def __init__(
        self,
        access: KubeAccess,
        *,
        report_seconds: float = REPORT_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.access = access
        self.report_seconds = report_seconds
        self.poll_seconds = poll_seconds
        self.deployments: dict[str, Deployment] = {}
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Open the API server connection pool."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.access.ssl_context() or False, limit=8)
        )

    async def stop(self) -> None:
        """Finish the reports in flight, then close the pool."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=API_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:  # noqa: ANN401 - any coroutine
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def used(self, ref: str) -> None:
        """A request was served by ``ref`` (namespace/name): report it, at most every
        ``report_seconds``. Never waits: the write happens beside the request."""
        state = self.deployments.setdefault(ref, Deployment())
        now = self._clock()
        if now - state.reported >= self.report_seconds:
            state.reported = now
            self._spawn(self._report(ref, state))

    def wake(self, ref: str) -> None:
        """Start waking ``ref`` unless a wake-up is already under way."""
        state = self.deployments.setdefault(ref, Deployment())
        if state.waking is None or state.waking.done():
            state.waking = self._spawn(self._wake(ref, state))

    async def wait_ready(self, ref: str, seconds: float) -> bool:
        """Whether ``ref`` is Ready within ``seconds`` (read from the API server)."""
        state = self.deployments.setdefault(ref, Deployment())
        deadline = self._clock() + seconds
        while True:
            if self._clock() < state.ready_until:
                return True
            try:
                obj = await self._request("GET", ref, "")
            except (aiohttp.ClientError, TimeoutError, KubeError) as e:
                state.error = f"reading it: {e}"
                obj = {}
            conditions = (obj.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            if ready:
                state.ready_until = self._clock() + self.report_seconds
                return True
            if self._clock() + self.poll_seconds > deadline:
                return False
            await asyncio.sleep(self.poll_seconds)

    async def _report(self, ref: str, state: Deployment) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            await self._request("PATCH", ref, "/status", {"status": {"lastUsedTime": now}})
        except (aiohttp.ClientError, TimeoutError, KubeError) as e:
            state.error = f"reporting last use: {e}"
            state.reported = 0.0  # try again with the next request
            log.warning("lastUsedTime of %s not written: %s", ref, e)

    async def _wake(self, ref: str, state: Deployment) -> None:
        state.wakes += 1
        state.woke_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        state.ready_until = 0.0
        state.reported = self._clock()
        try:
            # A fresh last use brings back a deployment the operator idled (spec untouched).
            await self._request(
                "PATCH",
                ref,
                "/status",
                {"status": {"lastUsedTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}},
            )
            scale = await self._request("GET", ref, "/scale")
            if int((scale.get("spec") or {}).get("replicas") or 0) == 0:
                await self._request("PATCH", ref, "/scale", {"spec": {"replicas": 1}})
                log.info("woke %s: asked the scale subresource for 1 replica", ref)
            else:
                log.info("woke %s: reported its use", ref)
            state.error = None
        except (aiohttp.ClientError, TimeoutError, KubeError) as e:
            state.error = f"waking it: {e}"
            log.warning("could not wake %s: %s", ref, e)

    async def _request(
        self, method: str, ref: str, sub: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self._session is None:
            raise KubeError("the Kubernetes client is not started")
        namespace, _, name = ref.partition("/")
        url = (
            f"{self.access.server}{GROUP_PATH}/namespaces/{namespace}/modeldeployments/{name}{sub}"
        )
        headers = {"Accept": "application/json"}
        if self.access.token:
            headers["Authorization"] = f"Bearer {self.access.token}"
        params = {}
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
            params["fieldManager"] = FIELD_MANAGER
        timeout = aiohttp.ClientTimeout(total=API_SECONDS)
        async with self._session.request(
            method,
            url,
            data=json.dumps(body) if body is not None else None,
            headers=headers,
            params=params,
            timeout=timeout,
        ) as resp:
            raw = await resp.read()
        if resp.status >= 300:
            message = raw[:300].decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                message = json.loads(raw).get("message") or message
            raise KubeError(f"{method} {sub or '/'} of {ref}: HTTP {resp.status}: {message}")
        answer: Any = json.loads(raw) if raw else {}
        return answer if isinstance(answer, dict) else {}
