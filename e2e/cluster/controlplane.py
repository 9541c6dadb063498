"""A real Kubernetes control plane on loopback, for e2e tests and for a person at a shell.

Why: the operator's behaviour depends on the real scheduler, the real controllers and RBAC, and a
fake API server would lie about all three. etcd, kube-apiserver, kube-controller-manager and
kube-scheduler run as local processes built from pinned modules (`build.sh`); kwok plays the
kubelets of fake GPU nodes. Every address anything here listens on or dials is on 127.0.0.0/8.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .engine_stages import engine_failure_stages, exclude_failure_images

HERE = Path(__file__).resolve().parent
# Enough volumes for the weight caches of an e2e run (one per distinct model and cache).
PERSISTENT_VOLUMES = 48
BUILD_SCRIPT = HERE / "build.sh"
VERSIONS_FILE = HERE / "versions.env"

LOOPBACK = "127.0.0.1"
# Pods get addresses on loopback so that nothing a test dials can leave the machine.
POD_CIDR = "127.64.0.0/16"
# Never dialed: nothing routes ClusterIPs here, there is no kube-proxy.
SERVICE_CIDR = "127.96.0.0/16"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
H100_PRODUCT = "NVIDIA-H100-80GB-HBM3"
ZONE_LABEL = "topology.kubernetes.io/zone"
MARKER_FILE = ".dayzero-controlplane"
PLANE_FILE = "plane.json"

# Enough controllers for StatefulSets, Jobs, Deployments, garbage collection, namespace deletion
# and aggregated RBAC roles; node lifecycle is left out so that kwok alone decides node health.
# Endpoints controllers are off: pod IPs are on loopback, which Endpoints reject, and nothing
# here dials a pod or a ClusterIP anyway.
CONTROLLERS = (
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "pod-garbage-collector-controller",
    "statefulset-controller",
    "replicaset-controller",
    "deployment-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "resourcequota-controller",
    "clusterrole-aggregation-controller",
    "service-cidr-controller",
    "taint-eviction-controller",
)

T = TypeVar("T")
Json = dict[str, Any]


class ControlPlaneError(RuntimeError):
    """The plane failed to start, or an API call it made failed."""


class KubectlError(ControlPlaneError):
    """kubectl exited with a non-zero code."""


class ApiError(ControlPlaneError):
    """The API server answered with a non-2xx status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def pinned_versions() -> dict[str, str]:
    """The versions `build.sh` pins, read from versions.env (KEY=VALUE lines)."""
    versions: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            versions[key] = value
    return versions


def build_binaries() -> Path:
    """Build (or reuse from the cache) the pinned binaries; return their bin directory."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    bin_dir = Path(lines[-1])
    if not (bin_dir / "kube-apiserver").is_file():
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed {bin_dir}, which holds no kube-apiserver")
    return bin_dir


# --- fake nodes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    """A fake node kwok will keep Ready: its name, labels and capacity (= allocatable)."""

    name: str
    labels: Mapping[str, str]
    capacity: Mapping[str, str]
    taints: Sequence[Mapping[str, str]] = ()
    unschedulable: bool = False
    address: str = LOOPBACK

    def manifest(self) -> Json:
        """The Node object to create; kwok adds the conditions that make it Ready."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            **self.labels,
        }
        key, value = FAKE_NODE_ANNOTATION
        spec: Json = {"unschedulable": self.unschedulable}
        if self.taints:
            spec["taints"] = [dict(t) for t in self.taints]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": spec,
            "status": {
                # kwok keeps an InternalIP it finds; each node gets its own loopback address.
                "addresses": [
                    {"type": "InternalIP", "address": self.address},
                    {"type": "Hostname", "address": self.name},
                ],
                "capacity": dict(self.capacity),
                "allocatable": dict(self.capacity),
                # kwok fills the other fields with its own name and version.
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": pinned_versions()["K8S_VERSION"],
                },
            },
        }


def h100_node(name: str, zone: str, gpus: int = 8, address: str = LOOPBACK) -> NodeSpec:
    """An 8x H100 80GB node as GPU feature discovery would label it."""
    return NodeSpec(
        name=name,
        address=address,
        labels={
            GPU_PRODUCT_LABEL: H100_PRODUCT,
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.memory": "81559",
            "nvidia.com/gpu.present": "true",
            ZONE_LABEL: zone,
            "node.kubernetes.io/instance-type": "gpu-h100x8",
        },
        capacity={
            "nvidia.com/gpu": str(gpus),
            "cpu": "96",
            "memory": "1Ti",
            "pods": "110",
            "ephemeral-storage": "10Ti",
        },
    )


def cpu_node(name: str, zone: str, address: str = LOOPBACK) -> NodeSpec:
    """A CPU-only node for the gateway, the operator and other non-GPU pods."""
    return NodeSpec(
        name=name,
        address=address,
        labels={ZONE_LABEL: zone, "node.kubernetes.io/instance-type": "cpu-32"},
        capacity={"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "1Ti"},
    )


def default_nodes(gpu_nodes: int = 4, cpu_nodes: int = 1) -> list[NodeSpec]:
    """`gpu_nodes` H100 nodes, the first half in zone-a and the rest in zone-b, plus CPU nodes."""
    half = (gpu_nodes + 1) // 2
    gpus = [
        h100_node(f"h100-{i}", "zone-a" if i < half else "zone-b", address=f"127.0.1.{i + 1}")
        for i in range(gpu_nodes)
    ]
    cpus = [cpu_node(f"cpu-{i}", "zone-a", address=f"127.0.2.{i + 1}") for i in range(cpu_nodes)]
    return gpus + cpus


# --- certificates -------------------------------------------------------------------------------


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = @sans
[sans]
IP.1 = 127.0.0.1
DNS.1 = localhost
DNS.2 = kubernetes
DNS.3 = kubernetes.default
DNS.4 = kubernetes.default.svc
"""


class _Pki:
    """A throwaway CA and the certificates the plane needs, made with the openssl CLI."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.config = directory / "openssl.cnf"

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=self.dir, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

    def _new_key_and_csr(self, name: str, subject: str) -> None:
        self._openssl(
            "req", "-new", "-config", str(self.config), "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip

    def create(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(_OPENSSL_CONFIG)
        self._new_key_and_csr("ca", "/CN=dayzero-e2e-ca")
        self._openssl(
            "x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "3650",
            "-extfile", str(self.config), "-extensions", "ca", "-out", "ca.crt",
        )  # fmt: skip
        # Service account tokens are signed with this key and checked with its public half.
        self._openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"
        )
        self._openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    def issue(self, name: str, subject: str, kind: str) -> tuple[Path, Path]:
        """Issue `name`.crt/.key for a `client` or `server`; return (cert, key)."""
        self._new_key_and_csr(name, subject)
        self._openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(secrets.randbits(63)), "-days", "3650",
            "-extfile", str(self.config), "-extensions", kind, "-out", f"{name}.crt",
        )  # fmt: skip
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A self-contained kubeconfig (data embedded) so it can be copied anywhere on this host."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dayzero-e2e",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "dayzero-e2e", "context": {"cluster": "dayzero-e2e", "user": user}}],
        "current-context": "dayzero-e2e",
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- processes ----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports free on loopback right now; all sockets are held until the end so none repeats."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: own process group, and SIGKILL if the owner dies hard."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has yet to reap it.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def _terminate_groups(pids: Sequence[int], timeout: float) -> None:
    """SIGTERM each process group, then SIGKILL whatever is left after `timeout`."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str = "condition"
) -> T:
    """Call `probe` until it returns something but None; raise TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- the plane ----------------------------------------------------------------------------------


@dataclass
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on 127.0.0.1.

    `start()` brings everything up in `state_dir` (logs in `state_dir/logs`, the admin kubeconfig
    at `state_dir/kubeconfig`) and creates the fake nodes; `stop()` ends every process.
    """

    state_dir: Path
    bin_dir: Path | None = None
    gpu_nodes: int = 4
    cpu_nodes: int = 1
    startup_seconds: float = field(default=0.0, init=False)
    _processes: list[_Process] = field(default_factory=list, init=False, repr=False)
    _ports: _Ports | None = field(default=None, init=False, repr=False)

    # -- paths and client settings

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def server(self) -> str:
        if self._ports is None:
            raise ControlPlaneError("the control plane has not been started")
        return f"https://{LOOPBACK}:{self._ports.apiserver}"

    @property
    def binaries(self) -> Path:
        if self.bin_dir is None:
            self.bin_dir = build_binaries()
        return self.bin_dir

    def env(self) -> dict[str, str]:
        """This process's environment with KUBECONFIG set and the pinned binaries first on PATH."""
        path = os.pathsep.join([str(self.binaries), os.environ.get("PATH", "")])
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    # -- lifecycle

    def start(self, timeout: float = 120.0) -> None:
        """Bring the plane up and create the fake nodes; stop everything again on failure."""
        began = time.monotonic()
        for attempt in (1, 2):
            try:
                self._start(began + timeout)
            except ControlPlaneError as error:
                self.stop()
                # Ports are picked free but bound later; another process can win that race.
                if attempt == 1 and "address already in use" in str(error):
                    shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
                    continue
                raise
            except BaseException:
                self.stop()
                raise
            break
        self.startup_seconds = time.monotonic() - began

    def _start(self, deadline: float) -> None:
        bin_dir = self.binaries
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / MARKER_FILE).touch()
        self.logs_dir.mkdir(exist_ok=True)
        self._ports = ports = _Ports(*free_ports(6))
        pki = _Pki(self.pki_dir)
        pki.create()

        # etcd first: the API server gives up if its storage is not there soon enough.
        self._spawn("etcd", [str(bin_dir / "etcd"), *self._etcd_args(ports)])
        server_cert, server_key = pki.issue("apiserver", "/CN=kube-apiserver", "server")
        self._wait(self._etcd_healthy, deadline, "etcd /health")
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                *self._apiserver_args(ports, server_cert, server_key),
            ],
        )
        # The other certificates are issued while the API server starts.
        identities = {
            "admin": "/O=system:masters/CN=dayzero-admin",
            "controller-manager": "/CN=system:kube-controller-manager",
            "scheduler": "/CN=system:kube-scheduler",
            "kwok": "/O=system:masters/CN=kwok",
        }
        for name, subject in identities.items():
            cert, key = pki.issue(name, subject, "client")
            config = _kubeconfig(self.server, pki.ca, cert, key, name)
            path = self.kubeconfig if name == "admin" else self.state_dir / f"{name}.kubeconfig"
            path.write_text(config)
            path.chmod(0o600)
        for name in ("controller-manager-serving", "scheduler-serving"):
            pki.issue(name, f"/CN={name}", "server")
        self._write_component_configs()
        self._wait(self._apiserver_ready, deadline, "kube-apiserver /readyz")

        # These exit if the API server is not healthy soon after they start, so they come after.
        self._spawn(
            "kube-controller-manager",
            [str(bin_dir / "kube-controller-manager"), *self._controller_manager_args(ports)],
        )
        self._spawn(
            "kube-scheduler",
            [str(bin_dir / "kube-scheduler"), *self._scheduler_args(ports)],
        )
        self._spawn("kwok", [str(bin_dir / "kwok"), *self._kwok_args(ports)])
        self._write_plane_file()
        for spec in default_nodes(self.gpu_nodes, self.cpu_nodes):
            self.add_node(spec)
        self._add_storage()

        self._wait(self._scheduler_ready, deadline, "kube-scheduler /readyz")
        self._wait(self._default_service_account, deadline, "the default service account")
        self._wait(self._all_nodes_ready, deadline, "every fake node to be Ready")

    def _add_storage(self, volumes: int = PERSISTENT_VOLUMES) -> None:
        """A default StorageClass and pre-made volumes, so the real PV controller binds claims
        (nothing provisions volumes here, and kwok pods never touch them)."""
        self.request(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "standard",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
            },
        )
        for i in range(volumes):
            self.request(
                "POST",
                "/api/v1/persistentvolumes",
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"pv-{i:03d}"},
                    "spec": {
                        "capacity": {"storage": "2Ti"},
                        "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                        "persistentVolumeReclaimPolicy": "Delete",
                        "storageClassName": "standard",
                        "hostPath": {"path": f"/var/lib/dayzero-fake-volumes/{i:03d}"},
                    },
                },
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every component's process group (kwok first, etcd last), then SIGKILL."""
        for proc in reversed(self._processes):
            # A reaped pid may already belong to someone else: signal only the unreaped.
            if proc.popen.poll() is None:
                _terminate_groups([proc.popen.pid], timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=timeout)
        self._processes.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / PLANE_FILE).unlink()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._processes}

    def dead_components(self) -> list[str]:
        """Components whose process has exited; an up plane has none."""
        return [p.name for p in self._processes if p.popen.poll() is not None]

    # -- nodes

    def add_node(self, spec: NodeSpec) -> Json:
        """Create a fake node; kwok makes it Ready within a moment."""
        return self.request("POST", "/api/v1/nodes", spec.manifest())

    def remove_node(self, name: str, *, force_delete_pods: bool = True) -> None:
        """Delete a node, as if its machine vanished, and then (by default) the pods bound to it.

        Without `force_delete_pods` those pods stay until the pod garbage collector removes
        orphans, about a minute later, since no kubelet (nor kwok) will finish them.
        """
        with contextlib.suppress(ApiError):
            self.request("DELETE", f"/api/v1/nodes/{name}")
        if not force_delete_pods:
            return
        pods = self.request("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{name}")["items"]
        for pod in pods:
            meta = pod["metadata"]
            with contextlib.suppress(ApiError):
                self.request(
                    "DELETE",
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
                )

    def cordon(self, name: str, *, unschedulable: bool = True) -> None:
        """Mark a node (un)schedulable, as `kubectl cordon`/`uncordon` do."""
        self.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"spec": {"unschedulable": unschedulable}},
            content_type="application/strategic-merge-patch+json",
        )

    def uncordon(self, name: str) -> None:
        self.cordon(name, unschedulable=False)

    def nodes(self) -> list[Json]:
        items: list[Json] = self.request("GET", "/api/v1/nodes")["items"]
        return items

    def wait_node_ready(self, name: str, timeout: float = 30.0) -> None:
        def ready() -> bool | None:
            try:
                node = self.request("GET", f"/api/v1/nodes/{name}")
            except ApiError:
                return None
            return True if _node_ready(node) else None

        wait_until(ready, timeout=timeout, what=f"node {name} to be Ready")

    # -- API access with the admin identity (stdlib only: fast to import, nothing to close)

    def _ssl_context(self, *, client: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        if client:
            context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> Json:
        """Call the API server as the admin; return the decoded JSON body or raise ApiError."""
        if self._ports is None:
            raise ControlPlaneError("the control plane has not been started")
        status, text = _https(
            self._ssl_context(),
            self._ports.apiserver,
            method,
            path,
            body=body,
            content_type=content_type,
            timeout=timeout,
        )
        if not 200 <= status < 300:
            raise ApiError(method, path, status, text)
        decoded: Json = json.loads(text) if text.strip().startswith("{") else {"text": text}
        return decoded

    # -- readiness probes: each returns True when ready and None otherwise

    def _etcd_healthy(self) -> bool | None:
        assert self._ports is not None
        connection = http.client.HTTPConnection(LOOPBACK, self._ports.etcd_client, timeout=2)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            return True if response.status == 200 and b"true" in response.read() else None
        except OSError:
            return None
        finally:
            connection.close()

    def _get_ok(self, port: int, path: str, *, client: bool) -> bool | None:
        try:
            status, _ = _https(self._ssl_context(client=client), port, "GET", path)
        except (OSError, http.client.HTTPException):
            return None
        return True if status == 200 else None

    def _apiserver_ready(self) -> bool | None:
        assert self._ports is not None
        return self._get_ok(self._ports.apiserver, "/readyz", client=True)

    def _scheduler_ready(self) -> bool | None:
        assert self._ports is not None
        return self._get_ok(self._ports.scheduler, "/readyz", client=False)

    def _default_service_account(self) -> bool | None:
        try:
            self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        except ApiError:
            return None
        return True

    def _all_nodes_ready(self) -> bool | None:
        nodes = self.nodes()
        expected = self.gpu_nodes + self.cpu_nodes
        return True if len(nodes) >= expected and all(map(_node_ready, nodes)) else None

    def _wait(self, probe: Callable[[], bool | None], deadline: float, what: str) -> None:
        """Wait for `probe`, failing fast with the log of any component that has died."""

        def checked() -> bool | None:
            for proc in self._processes:
                if proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with code {proc.popen.returncode} while waiting for"
                        f" {what}; last lines of {proc.log}:\n{_tail(proc.log)}"
                    )
            return probe()

        wait_until(checked, timeout=max(deadline - time.monotonic(), 0), interval=0.1, what=what)

    # -- processes and their flags

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.logs_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - needs prctl, which has no flag
                env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.state_dir)},
            )
        self._processes.append(_Process(name, popen, log))

    def _write_plane_file(self) -> None:
        """Record what `python -m e2e.cluster down|status` needs to find this plane again."""
        info = {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.binaries),
            "pids": self.pids(),
        }
        (self.state_dir / PLANE_FILE).write_text(json.dumps(info, indent=2))

    def _etcd_args(self, ports: _Ports) -> list[str]:
        client = f"http://{LOOPBACK}:{ports.etcd_client}"
        peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
        return [
            "--name=default",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # A test cluster's data is disposable; skipping fsync makes every write cheap.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: _Ports, cert: Path, key: Path) -> list[str]:
        pki = self.pki_dir
        return [
            f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={self.state_dir / 'apiserver'}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer=https://{LOOPBACK}:{ports.apiserver}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The kubernetes Service would point at 127.0.0.1, which Endpoints may not hold.
            "--endpoint-reconciler-type=none",
            # It taints new nodes not-ready, a taint only the node lifecycle controller lifts;
            # that controller is off (kwok owns node health), so the taint would stay forever.
            "--disable-admission-plugins=TaintNodesByCondition",
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _controller_manager_args(self, ports: _Ports) -> list[str]:
        pki = self.pki_dir
        return [
            f"--kubeconfig={self.state_dir / 'controller-manager.kubeconfig'}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports.controller_manager}",
            f"--tls-cert-file={pki / 'controller-manager-serving.crt'}",
            f"--tls-private-key-file={pki / 'controller-manager-serving.key'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--profiling=false",
        ]

    def _scheduler_args(self, ports: _Ports) -> list[str]:
        pki = self.pki_dir
        return [
            f"--config={self.state_dir / 'scheduler.yaml'}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports.scheduler}",
            f"--tls-cert-file={pki / 'scheduler-serving.crt'}",
            f"--tls-private-key-file={pki / 'scheduler-serving.key'}",
        ]

    def _kwok_args(self, ports: _Ports) -> list[str]:
        key, value = FAKE_NODE_ANNOTATION
        return [
            f"--kubeconfig={self.state_dir / 'kwok.kubeconfig'}",
            f"--config={self.state_dir / 'kwok.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--cidr={POD_CIDR}",
            f"--node-ip={LOOPBACK}",
            f"--server-address={LOOPBACK}:{ports.kwok}",
        ]

    def _write_component_configs(self) -> None:
        scheduler = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.state_dir / "scheduler.kubeconfig")},
            "leaderElection": {"leaderElect": False},
            # Tests add, cordon and free nodes; retry unschedulable pods quickly.
            "podInitialBackoffSeconds": 1,
            "podMaxBackoffSeconds": 2,
        }
        (self.state_dir / "scheduler.yaml").write_text(yaml.safe_dump(scheduler))
        (self.state_dir / "kwok.yaml").write_text(kwok_config(self.binaries))


# kwok's stock `pod/general` stages walk a pod through Pending, ContainerCreating, Running and, for
# Job pods, Succeeded, each after 1 s plus up to 5 s of jitter, and delete a terminating pod only
# at its deletionTimestamp (30 s later by default). Tests want the same story told quickly; the
# per-pod annotations (`pod-ready.stage.kwok.x-k8s.io/delay: 20s`) still slow one pod down.
STAGE_DELAYS_MS: dict[str, tuple[int, int]] = {
    "pod-create": (50, 200),
    "pod-init-container-running": (50, 200),
    "pod-init-container-completed": (50, 200),
    "pod-ready": (50, 200),
    "pod-complete": (200, 300),
    "pod-delete": (50, 0),
}
STAGE_GROUPS = ("node/fast", "pod/general")


def kwok_stages(bin_dir: Path) -> list[Json]:
    """kwok's stock node and pod stages from the cached module, with the delays above."""
    stages_dir = bin_dir.parent / "kwok-stages"
    stages: list[Json] = []
    for group in STAGE_GROUPS:
        for path in sorted((stages_dir / group).glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            stage: Json = yaml.safe_load(path.read_text())
            name = stage["metadata"]["name"]
            delay = stage["spec"].get("delay")
            if name in STAGE_DELAYS_MS and delay is not None:
                delay["durationMilliseconds"], delay["jitterDurationMilliseconds"] = (
                    STAGE_DELAYS_MS[name]
                )
                if name == "pod-delete":
                    # Otherwise the jitter runs up to the deletionTimestamp: the grace period.
                    del delay["jitterDurationFrom"]
            if name == "pod-ready":
                exclude_failure_images(stage)
            stages.append(stage)
    stages += engine_failure_stages()
    if not stages:
        raise ControlPlaneError(f"no kwok stages under {stages_dir}; rerun {BUILD_SCRIPT}")
    return stages


def kwok_config(bin_dir: Path) -> str:
    """kwok's configuration file: its options live on the command line, the stages here."""
    return yaml.safe_dump_all(kwok_stages(bin_dir), sort_keys=False)


def _node_ready(node: Json) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _https(
    context: ssl.SSLContext,
    port: int,
    method: str,
    path: str,
    *,
    body: Json | None = None,
    content_type: str = "application/json",
    timeout: float = 5.0,
) -> tuple[int, str]:
    connection = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = content_type
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def is_loopback(address: str) -> bool:
    """True for an IP address inside 127.0.0.0/8 (or ::1)."""
    return ipaddress.ip_address(address).is_loopback


# --- finding a plane started by another process (`python -m e2e.cluster`) ---------------------


def read_plane_file(state_dir: Path) -> Json | None:
    try:
        info: Json = json.loads((state_dir / PLANE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info


def kill_recorded_processes(state_dir: Path, timeout: float = 10.0) -> list[str]:
    """End the components a plane file records, if they still run our binaries; return names."""
    info = read_plane_file(state_dir)
    if info is None:
        return []
    bin_dir = str(info.get("bin_dir", ""))
    alive: dict[str, int] = {}
    for name, pid in info.get("pids", {}).items():
        # A recycled pid belongs to someone else: only touch processes running our binaries.
        with contextlib.suppress(OSError):
            exe = os.readlink(f"/proc/{pid}/exe")
            if bin_dir and exe.startswith(bin_dir) and _pid_alive(int(pid)):
                alive[name] = int(pid)
    _terminate_groups(list(alive.values()), timeout)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / PLANE_FILE).unlink()
    return sorted(alive)


def readyz(state_dir: Path) -> bool:
    """Whether the API server of the plane recorded in `state_dir` answers /readyz with 200."""
    info = read_plane_file(state_dir)
    if info is None:
        return False
    port = int(str(info["server"]).rsplit(":", 1)[1])
    pki = state_dir / "pki"
    try:
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        status, _ = _https(context, port, "GET", "/readyz", timeout=3)
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return False
    return status == 200


def remove_state(state_dir: Path) -> None:
    """Delete a state directory, but only one this harness created (it holds the marker)."""
    if not state_dir.exists():
        return
    if not (state_dir / MARKER_FILE).exists() and any(state_dir.iterdir()):
        raise ControlPlaneError(f"{state_dir} is not a control-plane state directory; not removing")
    shutil.rmtree(state_dir)


# --- kubectl ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kubectl:
    """The pinned kubectl, talking to the plane as its admin."""

    binary: Path
    env: dict[str, str]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60,
    ) -> tuple[int, str, str]:
        """Run kubectl; return (exit code, stdout, stderr)."""
        result = subprocess.run(
            [str(self.binary), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        return result.returncode, result.stdout, result.stderr

    def json(self, *args: str) -> Any:
        """`kubectl ... -o json`, decoded; raises KubectlError on a non-zero exit."""
        rc, out, err = self(*args, "-o", "json")
        if rc != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed: {err.strip()}")
        return json.loads(out)

    def apply(self, *manifests: dict[str, Any], namespace: str | None = None) -> None:
        """Apply manifests (sent as one JSON List); raises KubectlError if kubectl refuses them."""
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        scope = ["-n", namespace] if namespace else []
        rc, _, err = self("apply", *scope, "-f", "-", input=document)
        if rc != 0:
            raise KubectlError(f"kubectl apply failed: {err.strip()}")

    @classmethod
    def for_plane(cls, plane: ControlPlane) -> Kubectl:
        return cls(plane.binaries / "kubectl", plane.env())
