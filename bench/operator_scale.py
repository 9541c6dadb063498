"""Operator at scale: N ModelDeployments applied at once, against the same pods without it.

Why a benchmark and not a test: it measures what the operator costs on the real local control
plane (etcd, kube-apiserver, controller-manager, scheduler and kwok with fake 8x H100 nodes, as
in e2e) and prints the figures; it never passes or fails. The baseline, "plain StatefulSets
applied directly", runs the same pods with no operator, so the floor that the controller-manager,
the scheduler and kwok cost on this machine is measured in the same run, and the difference is
the operator's overhead.

    .venv/bin/python bench/operator_scale.py [--count 1000] [--workers 8] [--namespaces 10]
                                             [--out bench/results/operator_scale.json]

Everything it dials is on loopback (the plane, the fake Hub, the operator's metrics). Every wait
has a deadline, and the plane, the fake Hub and the operator are torn down on any exit.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
# e2e/ is not a package: its harness imports as `cluster` and `fakes`, as pytest sees it.
sys.path.insert(0, str(ROOT / "e2e"))

from cluster.controlplane import (  # noqa: E402 - needs the sys.path entry above
    ControlPlane,
    build_binaries,
    h100_node,
    pinned_versions,
)
from fakes.hub import FakeHub, FakeModel  # noqa: E402 - needs the sys.path entry above

Json = dict[str, Any]

FIXTURE = ROOT / "tests" / "planner" / "fixtures" / "llama-3.1-8b.json"
PARAMETERS = {"BF16": 8_030_261_248}
GPUS_PER_NODE = 8
MDEP_LABEL = "dayzero.dev/model-deployment"
COMPONENT_LABEL = "dayzero.dev/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# ~4% spare GPUs: the scheduler spreads pods, and a full cluster would measure packing instead.
SPARE_NODES = 0.04
PROGRESS_EVERY_S = 10.0
METRICS_EVERY_S = 2.0


# --- the plane's API, with one TLS context ------------------------------------------------------


class Api:
    """Admin HTTPS calls to the plane's API server.

    Why not `ControlPlane.request`: it loads the certificates on every call, and the watches here
    reconnect often; one context serves every connection.
    """

    def __init__(self, plane: ControlPlane) -> None:
        self.context = ssl.create_default_context(cafile=str(plane.pki_dir / "ca.crt"))
        self.context.load_cert_chain(plane.pki_dir / "admin.crt", plane.pki_dir / "admin.key")
        port = urlsplit(plane.server).port
        assert port is not None  # noqa: S101 - the plane's server URL always has a port
        self.port = port

    def connect(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=timeout
        )

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, str]:
        connection = self.connect(timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json", "Content-Type": content_type}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def json(self, method: str, path: str, body: object = None, **kwargs: Any) -> Json:
        status, text = self.call(method, path, body, **kwargs)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {text[:300]}")
        decoded: Json = json.loads(text)
        return decoded


Handler = Callable[[str, Json, float], None]


class Watch(threading.Thread):
    """One cluster-wide watch, resumed from its last resourceVersion until stopped.

    Why a watch and not polling: listing a thousand objects every second would load the very API
    server being measured, and a watch stamps each change the moment it arrives.
    """

    def __init__(self, api: Api, path: str, handle: Handler, stop: threading.Event) -> None:
        super().__init__(name=f"watch {path}", daemon=True)
        self.api, self.path, self.handle, self.stop = api, path, handle, stop
        self.events = self.opened = self.broken = 0

    def run(self) -> None:
        version = ""
        while not self.stop.is_set():
            query = "watch=1&allowWatchBookmarks=true&timeoutSeconds=120"
            if version:
                query += f"&resourceVersion={version}"
            # The socket timeout turns a quiet stream into a cheap reconnect that sees `stop`; it
            # is long because a saturated API server answers slowly, and a watch that keeps
            # timing out before its first event would report every state late.
            connection = self.api.connect(timeout=15.0)
            self.opened += 1
            try:
                connection.request("GET", f"{self.path}?{query}")
                response = connection.getresponse()
                if response.status == 410:
                    version = ""
                    continue
                if response.status != 200:
                    time.sleep(0.5)
                    continue
                for line in response:
                    if self.stop.is_set():
                        break
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = "" if obj.get("code") == 410 else version
                        break
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        self.events += 1
                        self.handle(event["type"], obj, time.monotonic())
            except (OSError, http.client.HTTPException, ValueError):
                self.broken += 1  # a timeout or a cut line: resume from the last version seen
            finally:
                connection.close()


# --- what the watches saw -----------------------------------------------------------------------


@dataclass
class Stamps:
    """When each object first reached each state, keyed by `namespace/instance`.

    The instance is the ModelDeployment (or baseline StatefulSet) name, read from the
    `dayzero.dev/model-deployment` label, so one key follows an object down the whole chain.
    """

    sts: dict[str, float] = field(default_factory=dict)
    pod_created: dict[str, float] = field(default_factory=dict)
    pod_scheduled: dict[str, float] = field(default_factory=dict)
    pod_running: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    download_done: dict[str, float] = field(default_factory=dict)
    # Wall-clock seconds of the same states as the servers wrote them (1 s resolution), and
    # how late each arrived here: a check that a watch lagging on a saturated machine does not
    # pass for operator latency.
    ready_server: dict[str, float] = field(default_factory=dict)
    running_server: dict[str, float] = field(default_factory=dict)
    lag: dict[str, list[float]] = field(default_factory=lambda: {"mdep": [], "pod": []})
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _first(table: dict[str, float], key: str, when: float) -> None:
        table.setdefault(key, when)

    def on_mdep(self, kind: str, obj: Json, when: float) -> None:
        if kind == "DELETED":
            return
        server = _true_since(obj, "Ready")
        if server is not None:
            meta = obj["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            with self.lock:
                if key not in self.ready:
                    self.lag["mdep"].append(time.time() - server)
                self._first(self.ready, key, when)
                self._first(self.ready_server, key, server)

    def on_sts(self, kind: str, obj: Json, when: float) -> None:
        meta = obj["metadata"]
        # A baseline StatefulSet carries no labels of its own; its name is its pods' instance.
        instance = (meta.get("labels") or {}).get(MDEP_LABEL) or meta["name"]
        if kind != "DELETED":
            with self.lock:
                self._first(self.sts, f"{meta['namespace']}/{instance}", when)

    def on_pod(self, kind: str, obj: Json, when: float) -> None:
        if kind == "DELETED":
            return
        meta, status = obj["metadata"], obj.get("status", {})
        labels = meta.get("labels") or {}
        phase = status.get("phase")
        with self.lock:
            if labels.get(COMPONENT_LABEL) == "download":
                if phase == "Succeeded":
                    self._first(self.download_done, f"{meta['namespace']}/{meta['name']}", when)
                return
            instance = labels.get(MDEP_LABEL)
            if not instance:
                return
            key = f"{meta['namespace']}/{instance}"
            self._first(self.pod_created, key, when)
            if obj.get("spec", {}).get("nodeName"):
                self._first(self.pod_scheduled, key, when)
            if phase == "Running":
                server = _true_since(obj, "Ready")
                if key not in self.pod_running and server is not None:
                    self.lag["pod"].append(time.time() - server)
                    self._first(self.running_server, key, server)
                self._first(self.pod_running, key, when)

    def count(self, table: dict[str, float], namespaces: frozenset[str]) -> int:
        with self.lock:
            return sum(1 for key in table if key.split("/", 1)[0] in namespaces)

    def since(self, table: dict[str, float], namespaces: frozenset[str], t0: float) -> list[float]:
        """Seconds from `t0` to each stamp in these namespaces."""
        with self.lock:
            return sorted(t - t0 for k, t in table.items() if k.split("/", 1)[0] in namespaces)

    def gaps(
        self, start: dict[str, float], end: dict[str, float], namespaces: frozenset[str]
    ) -> list[float]:
        """Per object, seconds from reaching `start` to reaching `end`."""
        with self.lock:
            return sorted(
                end[k] - start[k] for k in end if k in start and k.split("/", 1)[0] in namespaces
            )


def _true_since(obj: Json, type_: str) -> float | None:
    """Epoch seconds of a True condition's lastTransitionTime, or None when it is not True."""
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            with contextlib.suppress(TypeError, ValueError):
                return datetime.fromisoformat(condition["lastTransitionTime"]).timestamp()
            return time.time()
    return None


def spread(values: list[float]) -> Json:
    """p50 / p99 / max of a list of seconds (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)

    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99), "max": round(ordered[-1], 2)}


# --- processes: CPU, memory, the operator -------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores), from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def proc_status_mb(pid: int, key: str) -> float | None:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status in MB (MiB), or None once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return None


def _die_with_parent() -> None:
    """Own process group (so the whole operator can be signalled) and SIGKILL if we die hard."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes  # noqa: PLC0415 - only in the forked child

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """`dayzero operator` as a child process with its Prometheus metrics on loopback."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        argv = [
            sys.executable, "-m", "dayzero.cli", "operator", "--workers", str(workers),
            "--metrics-port", str(self.port), "--metrics-host", "127.0.0.1",
        ]  # fmt: skip
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - needs prctl, which has no flag
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
        return text

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# --- Prometheus text ----------------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, prefix: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample whose name starts with `prefix`."""
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            yield match["name"], labels, float(match["value"])


@dataclass
class Reconciles:
    """The operator's reconcile histogram and error counter at one moment."""

    buckets: dict[float, float]
    count: float
    total_s: float
    errors: float
    queue_depth: float

    @classmethod
    def parse(cls, text: str) -> Reconciles:
        buckets: dict[float, float] = {}
        count = total = errors = depth = 0.0
        for name, labels, value in samples(text, "dayzero_"):
            if labels.get("kind", "ModelDeployment") != "ModelDeployment":
                continue
            if name == "dayzero_reconcile_seconds_bucket":
                buckets[float(labels["le"])] = value
            elif name == "dayzero_reconcile_seconds_count":
                count = value
            elif name == "dayzero_reconcile_seconds_sum":
                total = value
            elif name == "dayzero_reconcile_errors_total":
                errors = value
            elif name == "dayzero_queue_depth":
                depth = value
        return cls(buckets, count, total, errors, depth)

    def minus(self, before: Reconciles) -> Reconciles:
        return Reconciles(
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - before.count,
            self.total_s - before.total_s,
            self.errors - before.errors,
            self.queue_depth,
        )

    def quantile(self, q: float) -> float | None:
        """As PromQL's histogram_quantile: linear within a bucket; the top finite bound if the
        rank falls in +Inf (the histogram cannot say more)."""
        bounds = sorted(self.buckets.items())
        if not bounds or bounds[-1][1] <= 0:
            return None
        rank = q * bounds[-1][1]
        lower, below = 0.0, 0.0
        for upper, cumulative in bounds:
            if cumulative >= rank:
                if math.isinf(upper):
                    return lower
                if cumulative == below:
                    return upper
                return lower + (upper - lower) * (rank - below) / (cumulative - below)
            lower, below = upper, cumulative
        return lower


def apiserver_requests(api: Api) -> dict[str, float]:
    """`apiserver_request_total` summed by `VERB resource[/subresource]`."""
    _, text = api.call("GET", "/metrics", timeout=30)
    totals: dict[str, float] = {}
    for _, labels, value in samples(text, "apiserver_request_total{"):
        resource_name = labels.get("resource", "")
        if labels.get("subresource"):
            resource_name += "/" + labels["subresource"]
        key = f"{labels.get('verb', '?')} {resource_name}"
        totals[key] = totals.get(key, 0.0) + value
    return totals


def request_delta(after: Mapping[str, float], before: Mapping[str, float], wall: float) -> Json:
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    top = sorted(((k, int(v)) for k, v in delta.items() if v >= 1), key=lambda kv: -kv[1])
    total = int(sum(delta.values()))
    # WATCH requests stay open: their count is how many were opened, not their cost.
    return {
        "total": total,
        "per_s": round(total / wall, 1) if wall > 0 else None,
        "top": dict(top[:15]),
    }


# --- manifests ----------------------------------------------------------------------------------


def repo_name(index: int) -> str:
    return f"bench/llama-3.1-8b-{index}"


def model_deployments(count: int, namespaces: list[str], repos: int) -> dict[str, list[Json]]:
    """`count` single-GPU ModelDeployments by namespace. Every namespace gets every repo, so each
    (namespace, repo) shares one cache PVC and one download Job, as teams sharing a model would."""
    by_namespace: dict[str, list[Json]] = {ns: [] for ns in namespaces}
    for i in range(count):
        namespace = namespaces[i % len(namespaces)]
        repo = repo_name((i // len(namespaces)) % repos)
        by_namespace[namespace].append(
            {
                "apiVersion": "dayzero.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"m-{i:05d}", "namespace": namespace},
                "spec": {"source": {"hub": {"repo": repo, "revision": "main"}}},
            }
        )
    return by_namespace


_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def baseline_statefulset(rendered: Json, name: str, namespace: str) -> Json:
    """An operator-rendered StatefulSet as a person would apply it: same pod template, no owner,
    no status, and labels that name it instead of a ModelDeployment (and not managed-by dayzero,
    so no operator would ever pick its pods up)."""
    spec = json.loads(json.dumps(rendered["spec"]))
    spec["serviceName"] = name
    relabel = {MDEP_LABEL: name, "app.kubernetes.io/instance": name, MANAGED_BY: "bench"}
    for labels in (spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
        labels.update({k: v for k, v in relabel.items() if k in labels})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def claim_names(sts: Json) -> list[str]:
    volumes = sts["spec"]["template"]["spec"].get("volumes", [])
    return [
        v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    ]


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Plane(ControlPlane):
    """The e2e plane, optionally with the controller-manager's client rate limit raised.

    Why: kube-controller-manager talks to the API server at 20 requests/s per controller by
    default, and at that pace its StatefulSet controller alone needs minutes for a thousand
    pods; `--controller-qps` measures the floor without that limit (a what-if, not the default).
    """

    controller_qps: float | None = None

    def _controller_manager_args(self, ports: Any) -> list[str]:
        argv = super()._controller_manager_args(ports)
        if self.controller_qps:
            burst = int(2 * self.controller_qps)
            argv += [f"--kube-api-qps={self.controller_qps:g}", f"--kube-api-burst={burst}"]
        return argv


class Deadline:
    """The whole run's budget: every wait takes the smaller of its own limit and what is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = max(0.0, self.end - time.monotonic())
        return left if cap is None else min(cap, left)


def wait_for(what: str, probe: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= end:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def kubectl(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120.0
) -> str:
    result = subprocess.run(
        ["kubectl", *args], env=env, input=stdin, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()[:500]}")
    return result.stdout


def apply_parallel(env: dict[str, str], batches: Iterable[list[Json]], timeout: float) -> float:
    """One `kubectl apply --server-side` per batch, all at once; seconds until the last returns."""
    began = time.monotonic()
    documents = [json.dumps({"apiVersion": "v1", "kind": "List", "items": b}) for b in batches]

    def one(document: str) -> str:
        return kubectl(
            env, "apply", "--server-side", "--field-manager=bench", "-f", "-",
            stdin=document, timeout=timeout,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, len(documents))) as pool:
        list(pool.map(one, documents))
    return time.monotonic() - began


@dataclass
class Phase:
    """CPU, request and memory figures of one measured phase."""

    name: str
    namespaces: frozenset[str]
    pids: dict[str, int]
    t0: float = field(default_factory=time.monotonic)
    cpu0: dict[str, float] = field(default_factory=dict)
    busy0: float = 0.0
    requests0: dict[str, float] = field(default_factory=dict)
    self0: float = 0.0
    wall0: float = 0.0

    def begin(self, api: Api) -> None:
        self.requests0 = apiserver_requests(api)
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.busy0 = machine_busy_seconds()
        self.self0 = _own_cpu()
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def end(self, api: Api, until: float) -> Json:
        wall = until - self.t0
        cpu = {
            name: round(cpu_seconds(pid) - self.cpu0[name], 1) for name, pid in self.pids.items()
        }
        cpu["bench (watches, kubectl)"] = round(_own_cpu() - self.self0, 1)
        busy = machine_busy_seconds() - self.busy0
        cpu["other (kernel, other processes)"] = round(max(0.0, busy - sum(cpu.values())), 1)
        return {
            "wall_s": round(wall, 1),
            "cpu_s": cpu,
            "cpu_busy_s": round(busy, 1),
            "cpu_capacity_s": round(wall * (os.cpu_count() or 1), 1),
            "apiserver_requests": request_delta(apiserver_requests(api), self.requests0, wall),
        }


def _own_cpu() -> float:
    """CPU seconds of this process and the children it has reaped (kubectl)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def create_namespaces(api: Api, names: list[str], timeout: float) -> None:
    for name in names:
        api.json("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    # Pods are refused until the service account controller has created `default`.
    def ready() -> bool:
        return all(
            api.call("GET", f"/api/v1/namespaces/{n}/serviceaccounts/default")[0] == 200
            for n in names
        )

    wait_for("default service accounts", ready, timeout, every=0.5)


def add_volumes(api: Api, count: int) -> None:
    """Pre-made volumes like the plane's own (nothing provisions here); the plane makes 48, and
    each (namespace, repo) cache of both phases binds one."""
    for i in range(count):
        api.json(
            "POST",
            "/api/v1/persistentvolumes",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"bench-pv-{i:04d}"},
                "spec": {
                    "capacity": {"storage": "2Ti"},
                    "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": "standard",
                    "hostPath": {"path": f"/var/lib/dayzero-fake-volumes/bench-{i:04d}"},
                },
            },
        )


def start_nodes(plane: ControlPlane, api: Api, gpu_nodes: int, timeout: float) -> Json:
    """Create the fake H100 nodes in parallel and wait until kwok has made every one Ready."""
    began = time.monotonic()
    half = (gpu_nodes + 1) // 2
    specs = [
        # 127.1.x.y: clear of the plane's own 127.0.x.y node addresses, and still loopback.
        h100_node(
            f"h100-{i:04d}",
            "zone-a" if i < half else "zone-b",
            address=f"127.1.{i // 250}.{i % 250 + 1}",
        )
        for i in range(gpu_nodes)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda s: api.json("POST", "/api/v1/nodes", s.manifest()), specs))
    created = time.monotonic() - began

    def all_ready() -> bool:
        nodes = api.json("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions") or []
            )
        ]
        return len(ready) >= len(specs) + plane.cpu_nodes

    wait_for("every fake node to be Ready", all_ready, timeout, every=0.5)
    return {
        "gpu_nodes": gpu_nodes,
        "gpus": gpu_nodes * GPUS_PER_NODE,
        "create_s": round(created, 1),
        "ready_s": round(time.monotonic() - began, 1),
    }


def memory_sampler(pid: int, stop: threading.Event, timeline: list[tuple[float, float]]) -> None:
    """VmRSS every half second until stopped (the operator's memory over the run)."""
    began = time.monotonic()
    while not stop.wait(0.5):
        rss = proc_status_mb(pid, "VmRSS")
        if rss is not None:
            timeline.append((round(time.monotonic() - began, 1), round(rss, 1)))


@dataclass
class Run:
    """One benchmark run: the plane, the fake Hub, the operator and the watches."""

    args: argparse.Namespace
    deadline: Deadline
    state: Path
    results: Json = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    stamps: Stamps = field(default_factory=Stamps)
    plane: Plane | None = None
    hub: FakeHub | None = None
    operator: Operator | None = None
    watches: list[Watch] = field(default_factory=list)

    # -- setup

    def setup(self) -> None:
        args = self.args
        began = time.monotonic()
        bin_dir = build_binaries()
        # GPU nodes come after start() so that their creation is timed on its own.
        self.plane = Plane(
            self.state / "plane",
            bin_dir=bin_dir,
            gpu_nodes=0,
            cpu_nodes=2,
            controller_qps=args.controller_qps,
        )
        self.plane.start(timeout=self.deadline.left(180))
        self.api = Api(self.plane)
        self.env = self.plane.env() | {"HOME": str(self.state)}  # kubectl's discovery cache
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            self.env.pop(key, None)  # nothing here may leave loopback
        self.env["NO_PROXY"] = self.env["no_proxy"] = "127.0.0.1,localhost"
        gpus_needed = args.count * (2 if args.baseline else 1) + 1  # +1: the warm-up
        gpu_nodes = math.ceil(gpus_needed / GPUS_PER_NODE * (1 + SPARE_NODES))
        nodes = start_nodes(self.plane, self.api, gpu_nodes, self.deadline.left(300))
        self.results["setup"] = {
            "plane_start_s": round(self.plane.startup_seconds, 1),
            **{f"nodes_{k}": v for k, v in nodes.items()},
        }

        config = json.loads(FIXTURE.read_text())
        models = [
            FakeModel(repo=repo_name(i), config=config, parameters=PARAMETERS)
            for i in range(args.repos)
        ]
        models.append(FakeModel(repo="bench/warm-up", config=config, parameters=PARAMETERS))
        self.hub = FakeHub(models).start()

        kubectl(self.env, "apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl(self.env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        width = len(str(args.namespaces - 1))
        self.op_namespaces = [f"bench-op-{i:0{width}d}" for i in range(args.namespaces)]
        self.bl_namespaces = [f"bench-bl-{i:0{width}d}" for i in range(args.namespaces)]
        namespaces = ["bench-warm-up", *self.op_namespaces]
        if args.baseline:
            namespaces += self.bl_namespaces
        create_namespaces(self.api, namespaces, self.deadline.left(60))
        caches = len(self.op_namespaces) * args.repos * (2 if args.baseline else 1) + 1
        add_volumes(self.api, caches)

        for path, handle in (
            ("/apis/dayzero.dev/v1alpha1/modeldeployments", self.stamps.on_mdep),
            ("/apis/apps/v1/statefulsets", self.stamps.on_sts),
            ("/api/v1/pods", self.stamps.on_pod),
        ):
            watch = Watch(self.api, path, handle, self.stop)
            watch.start()
            self.watches.append(watch)
        self.results["setup"]["total_s"] = round(time.monotonic() - began, 1)

    def start_operator(self) -> None:
        assert self.hub is not None  # noqa: S101 - set by setup()
        env = self.env | {
            "HF_ENDPOINT": self.hub.url,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # The source tree, not only the editable install that `make setup` briefly removes.
            "PYTHONPATH": str(ROOT / "operator"),
        }
        self.operator = Operator(env, self.args.workers, self.state / "operator.log")

        def metrics_up() -> bool:
            if not self.operator or not self.operator.alive():
                raise RuntimeError(f"the operator exited; see {self.state / 'operator.log'}")
            with contextlib.suppress(OSError):
                return bool(self.operator.metrics())
            return False

        wait_for("the operator's metrics", metrics_up, self.deadline.left(60))
        # One ModelDeployment through the whole chain (Hub, cache PVC, download Job, StatefulSet,
        # Ready) before the clock starts: start-up and a broken set-up are not what is measured.
        kubectl(
            self.env, "apply", "--server-side", "--field-manager=bench", "-f", "-",
            stdin=json.dumps(
                {
                    "apiVersion": "dayzero.dev/v1alpha1",
                    "kind": "ModelDeployment",
                    "metadata": {"name": "warm-up", "namespace": "bench-warm-up"},
                    "spec": {"source": {"hub": {"repo": "bench/warm-up", "revision": "main"}}},
                }
            ),
        )  # fmt: skip
        warm = frozenset({"bench-warm-up"})
        began = time.monotonic()
        wait_for(
            "the warm-up ModelDeployment to be Ready",
            lambda: self.stamps.count(self.stamps.ready, warm) == 1 or not self.operator_alive(),
            self.deadline.left(120),
        )
        if not self.operator_alive():
            raise RuntimeError(f"the operator exited; see {self.state / 'operator.log'}")
        self.results["setup"]["warm_up_ready_s"] = round(time.monotonic() - began, 1)

    def operator_alive(self) -> bool:
        return self.operator is not None and self.operator.alive()

    # -- the operator phase

    def operator_phase(self) -> Json:
        assert self.plane is not None  # noqa: S101 - set by setup()
        assert self.operator is not None  # noqa: S101 - set by start_operator()
        args, stamps, operator = self.args, self.stamps, self.operator
        namespaces = frozenset(self.op_namespaces)
        batches = model_deployments(args.count, self.op_namespaces, args.repos)
        phase = Phase("operator", namespaces, self.plane.pids() | {"operator": operator.pid})
        before = Reconciles.parse(operator.metrics())
        timeline: list[tuple[float, float]] = []
        sampler = threading.Thread(
            target=memory_sampler, args=(operator.pid, self.stop, timeline), daemon=True
        )
        phase.begin(self.api)
        t0 = phase.t0
        sampler.start()
        apply_s = apply_parallel(self.env, batches.values(), self.deadline.left(300))
        print(f"  applied {args.count} ModelDeployments in {apply_s:.1f}s")

        # (t, keys in the queue, reconciles so far). The gauge counts keys waiting for a later
        # requeue too, so it stays near --count: the reconcile rate is what shows the backlog.
        queue: list[tuple[float, float, float]] = []
        next_progress = next_metrics = time.monotonic()
        end = time.monotonic() + self.deadline.left(args.phase_timeout)
        converged = False
        while time.monotonic() < end and operator.alive():
            ready = stamps.count(stamps.ready, namespaces)
            now = time.monotonic()
            if now >= next_metrics:
                with contextlib.suppress(OSError):
                    sample = Reconciles.parse(operator.metrics())
                    queue.append(
                        (round(now - t0, 1), sample.queue_depth, sample.count - before.count)
                    )
                next_metrics = now + METRICS_EVERY_S
            if now >= next_progress:
                done_n = queue[-1][2] if queue else 0.0
                rate = done_n / (now - t0) if now > t0 else 0.0
                print(
                    f"  t={now - t0:5.0f}s  sts {stamps.count(stamps.sts, namespaces):5d}"
                    f"  running {stamps.count(stamps.pod_running, namespaces):5d}"
                    f"  ready {ready:5d}/{args.count}  reconciles {done_n:6.0f} ({rate:4.1f}/s)"
                    f"  rss {timeline[-1][1] if timeline else 0:6.1f} MB"
                )
                next_progress = now + PROGRESS_EVERY_S
            if ready >= args.count:
                converged = True
                break
            time.sleep(0.25)
        done = time.monotonic()
        after = Reconciles.parse(operator.metrics()) if operator.alive() else before
        figures = phase.end(self.api, done)
        hwm = proc_status_mb(operator.pid, "VmHWM")
        rss_now = proc_status_mb(operator.pid, "VmRSS")
        delta = after.minus(before)
        result = {
            "converged": converged,
            "apply_s": round(apply_s, 1),
            **self._milestones(namespaces, t0, phase.wall0),
            "ready_count": stamps.count(stamps.ready, namespaces),
            "all_ready_s": round(done - t0, 1) if converged else None,
            "download_jobs_done": spread(stamps.since(stamps.download_done, namespaces, t0)),
            "stages": self._stages(namespaces, t0, operator=True),
            "reconciles": {
                "count": int(delta.count),
                "per_mdep": round(delta.count / args.count, 1),
                "per_s": round(delta.count / (done - t0), 1),
                "errors": int(delta.errors),
                "p50_s": _round(delta.quantile(0.5)),
                "p99_s": _round(delta.quantile(0.99)),
                "mean_s": _round(delta.total_s / delta.count if delta.count else None),
                "busy_worker_s": round(delta.total_s, 1),
                "queue_timeline": queue,
            },
            "rss": {
                "peak_sampled_mb": round(max((r for _, r in timeline), default=0.0), 1),
                "hwm_mb": _round(hwm, 1),
                "end_mb": _round(rss_now, 1),
                "timeline": timeline[:: max(1, len(timeline) // 120)],
            },
            **figures,
        }
        operator.stop()
        return result

    def _milestones(self, namespaces: frozenset[str], t0: float, wall0: float) -> Json:
        """Seconds from the apply to the last object reaching each state (None if some never
        did), and how many did; `*_server_s` read the same from the servers' own timestamps."""
        count, stamps = self.args.count, self.stamps
        out: Json = {}
        for name, table in (
            ("all_pods_running", stamps.running_server),
            ("all_ready", stamps.ready_server),
        ):
            times = stamps.since(table, namespaces, wall0)
            if times:
                out[f"{name}_server_s"] = round(times[-1], 1) if len(times) >= count else None
        for name, table in (
            ("all_sts", stamps.sts),
            ("all_pods_scheduled", stamps.pod_scheduled),
            ("all_pods_running", stamps.pod_running),
        ):
            times = stamps.since(table, namespaces, t0)
            out[f"{name}_s"] = round(times[-1], 1) if len(times) >= count else None
            out[f"{name}_count"] = len(times)
        return out

    def _stages(self, namespaces: frozenset[str], t0: float, *, operator: bool) -> Json:
        """Per object, how long each step of the chain took: where the time goes."""
        s = self.stamps
        stages = {
            "apply_to_sts": spread(s.since(s.sts, namespaces, t0)),
            "sts_to_pod": spread(s.gaps(s.sts, s.pod_created, namespaces)),
            "pod_to_scheduled": spread(s.gaps(s.pod_created, s.pod_scheduled, namespaces)),
            "scheduled_to_running": spread(s.gaps(s.pod_scheduled, s.pod_running, namespaces)),
        }
        if operator:
            stages["running_to_ready"] = spread(s.gaps(s.pod_running, s.ready, namespaces))
        return stages

    # -- the baseline phase

    def baseline_phase(self) -> Json:
        assert self.plane is not None  # noqa: S101
        args, stamps = self.args, self.stamps
        # One operator-rendered StatefulSet per repo: the template the baseline applies.
        rendered: list[Json] = []
        seen: set[str] = set()
        for item in self.api.json(
            "GET",
            f"/apis/apps/v1/namespaces/{self.op_namespaces[0]}/statefulsets",
        )["items"]:
            claims = tuple(claim_names(item))
            if claims and claims[0] not in seen:
                seen.add(claims[0])
                rendered.append(item)
        if not rendered:
            raise RuntimeError("the operator rendered no StatefulSet to copy")
        # The caches exist (and are bound) before the clock, as a person's would.
        claim = self.api.json(
            "GET",
            f"/api/v1/namespaces/{self.op_namespaces[0]}/persistentvolumeclaims/"
            f"{claim_names(rendered[0])[0]}",
        )
        for namespace in self.bl_namespaces:
            for sts in rendered:
                self.api.json(
                    "POST",
                    f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim_names(sts)[0]},
                        "spec": {
                            "accessModes": claim["spec"]["accessModes"],
                            "resources": claim["spec"]["resources"],
                        },
                    },
                )

        def bound() -> bool:
            claims = self.api.json("GET", "/api/v1/persistentvolumeclaims")["items"]
            mine = [c for c in claims if c["metadata"]["namespace"] in self.bl_namespaces]
            return len(mine) == len(self.bl_namespaces) * len(rendered) and all(
                c.get("status", {}).get("phase") == "Bound" for c in mine
            )

        wait_for("the baseline's cache claims to bind", bound, self.deadline.left(120), every=0.5)
        batches: dict[str, list[Json]] = {ns: [] for ns in self.bl_namespaces}
        for i in range(args.count):
            namespace = self.bl_namespaces[i % len(self.bl_namespaces)]
            template = rendered[((i // len(self.bl_namespaces)) % args.repos) % len(rendered)]
            batches[namespace].append(baseline_statefulset(template, f"b-{i:05d}", namespace))

        namespaces = frozenset(self.bl_namespaces)
        phase = Phase("baseline", namespaces, self.plane.pids())
        phase.begin(self.api)
        t0 = phase.t0
        apply_s = apply_parallel(self.env, batches.values(), self.deadline.left(300))
        print(f"  applied {args.count} StatefulSets in {apply_s:.1f}s")
        end = time.monotonic() + self.deadline.left(args.phase_timeout)
        next_progress = time.monotonic()
        converged = False
        while time.monotonic() < end:
            running = stamps.count(stamps.pod_running, namespaces)
            if (now := time.monotonic()) >= next_progress:
                print(
                    f"  t={now - t0:5.0f}s  sts {stamps.count(stamps.sts, namespaces):5d}"
                    f"  scheduled {stamps.count(stamps.pod_scheduled, namespaces):5d}"
                    f"  running {running:5d}/{args.count}"
                )
                next_progress = time.monotonic() + PROGRESS_EVERY_S
            if running >= args.count:
                converged = True
                break
            time.sleep(0.25)
        done = time.monotonic()
        return {
            "converged": converged,
            "apply_s": round(apply_s, 1),
            **self._milestones(namespaces, t0, phase.wall0),
            "stages": self._stages(namespaces, t0, operator=False),
            **phase.end(self.api, done),
        }

    # -- teardown

    def teardown(self) -> None:
        """Stop everything this run started, whatever state it is in."""
        self.stop.set()
        if self.operator is not None:
            self.operator.stop()
        if self.hub is not None:
            self.hub.stop()
        if self.plane is not None:
            self.plane.stop()


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --- report -------------------------------------------------------------------------------------


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}{unit}" if value < 1 and unit == " s" else f"{value:.1f}{unit}"
    return f"{value}{unit}"


def _at(phase: Json, path: str, unit: str = "") -> str:
    """A figure by dotted path, formatted, or "-" when the phase did not get that far."""
    value: Any = phase
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return _fmt(value, unit)


def table(results: Json) -> str:
    """The figures a reader wants first, operator beside baseline."""
    op, bl, setup = results.get("operator", {}), results.get("baseline", {}), results["setup"]
    count = str(results["params"]["count"])
    rows: list[tuple[str, str, str]] = [
        ("ModelDeployments / StatefulSets", count, count),
        ("kubectl apply (parallel) s", _at(op, "apply_s"), _at(bl, "apply_s")),
        ("apply -> all StatefulSets s", _at(op, "all_sts_s"), _at(bl, "all_sts_s")),
        (
            "apply -> all pods scheduled s",
            _at(op, "all_pods_scheduled_s"),
            _at(bl, "all_pods_scheduled_s"),
        ),
        (
            "apply -> all pods Running s",
            _at(op, "all_pods_running_s"),
            _at(bl, "all_pods_running_s"),
        ),
        ("apply -> all Ready=True s", _at(op, "all_ready_s"), "n/a"),
        (
            "  the same by server timestamps s",
            f"{_at(op, 'all_pods_running_server_s')} / {_at(op, 'all_ready_server_s')}",
            f"{_at(bl, 'all_pods_running_server_s')} / n/a",
        ),
        (
            "reconciles (per ModelDeployment)",
            f"{_at(op, 'reconciles.count')} ({_at(op, 'reconciles.per_mdep')})",
            "-",
        ),
        (
            "reconcile p50 / p99",
            f"{_at(op, 'reconciles.p50_s', ' s')} / {_at(op, 'reconciles.p99_s', ' s')}",
            "-",
        ),
        ("reconcile errors", _at(op, "reconciles.errors"), "-"),
        ("operator RSS peak (VmHWM) MB", _at(op, "rss.hwm_mb"), "-"),
        (
            "API requests, all clients (/s)",
            f"{_at(op, 'apiserver_requests.total')} ({_at(op, 'apiserver_requests.per_s')})",
            f"{_at(bl, 'apiserver_requests.total')} ({_at(bl, 'apiserver_requests.per_s')})",
        ),
        (
            "CPU busy / capacity s",
            f"{_at(op, 'cpu_busy_s')} / {_at(op, 'cpu_capacity_s')}",
            f"{_at(bl, 'cpu_busy_s')} / {_at(bl, 'cpu_capacity_s')}",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  {'operator':>18}  {'plain StatefulSets':>18}"]
    lines += [f"{a:{width}}  {b:>18}  {c:>18}" for a, b, c in rows]
    lines.append(
        f"setup: plane {setup.get('plane_start_s')} s, {setup.get('nodes_gpu_nodes')} GPU nodes"
        f" created in {setup.get('nodes_create_s')} s and Ready in {setup.get('nodes_ready_s')} s"
    )
    for name, phase in (("operator", op), ("baseline", bl)):
        if phase.get("cpu_s"):
            cpu = ", ".join(
                f"{k} {v}" for k, v in sorted(phase["cpu_s"].items(), key=lambda kv: -kv[1])
            )
            lines.append(f"{name} CPU seconds: {cpu}")
    return "\n".join(lines)


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return result.stdout.strip()
    return ""


def machine() -> Json:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": _git("rev-parse", "--short", "HEAD"),
        # Uncommitted operator changes make the figures those of a tree nobody else has.
        "operator_dirty": bool(_git("status", "--porcelain", "--", "operator")),
        "versions": pinned_versions(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="ModelDeployments (default 1000)")
    parser.add_argument("--workers", type=int, default=8, help="operator --workers (default 8)")
    parser.add_argument("--namespaces", type=int, default=10, help="spread over (default 10)")
    parser.add_argument("--repos", type=int, default=5, help="distinct Hub repos (default 5)")
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false", help="skip plain StatefulSets"
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=600, help="seconds each phase may take to converge"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200,
        help="seconds the whole run may take, set-up included",
    )
    parser.add_argument(
        "--controller-qps",
        type=float,
        help="raise kube-controller-manager's --kube-api-qps (default: its own, 20)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "operator_scale.json"
    )
    parser.add_argument("--keep", type=Path, help="keep logs (operator, plane) in this directory")
    args = parser.parse_args(argv)
    args.namespaces = max(1, min(args.namespaces, args.count))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python bench/operator_scale.py " + " ".join(sys.argv[1:] if argv is None else argv)

    # SIGTERM (a CI timeout) unwinds through `finally`, so the plane never outlives the run.
    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    state = Path(tempfile.mkdtemp(prefix="dayzero-bench-"))
    run = Run(args=args, deadline=Deadline(args.timeout), state=state)
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    run.results = {"command": command.strip(), "machine": machine(), "params": params}
    status = 0
    try:
        print(f"setting up: plane, {args.count} GPUs' worth of fake H100 nodes, fake Hub, CRDs")
        run.setup()
        print(f"  {json.dumps(run.results['setup'])}")
        run.start_operator()
        print(f"operator phase: {args.count} ModelDeployments, --workers {args.workers}")
        run.results["operator"] = run.operator_phase()
        if args.baseline:
            print(f"baseline phase: {args.count} plain StatefulSets, no operator")
            run.results["baseline"] = run.baseline_phase()
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as error:
        # A benchmark reports what it got: the partial figures are still written.
        print(f"benchmark stopped early: {error}", file=sys.stderr)
        run.results["error"] = str(error)
        status = 1
    finally:
        run.results["watches"] = {
            "streams": {
                w.path: {"events": w.events, "opened": w.opened, "broken": w.broken}
                for w in run.watches
            },
            # Arrival here minus the server's own timestamp (1 s resolution): the watches' lag.
            "lag_s": {k: spread(v) for k, v in run.stamps.lag.items()},
        }
        run.teardown()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in [state / "operator.log", *(state / "plane" / "logs").glob("*.log")]:
                if log.exists():
                    shutil.copy(log, args.keep / log.name)
        shutil.rmtree(state, ignore_errors=True)
    if "setup" in run.results:
        print()
        print(table(run.results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(run.results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
