"""`make demo`: the day-zero story on one laptop-sized machine.

It brings up (or reuses) the local control plane with fake H100 nodes, installs the generated CRDs,
starts a fake Hugging Face Hub on loopback and the operator against it, applies every example and
shows the operator planning and serving them (405B on two fake 8xH100 nodes). Then the gateway
serves the Lanes the operator rendered (the GPU pods' endpoints mapped to a fake engine on
loopback), a model is promoted to `preview` and rolled back. The story ends with a Gauntlet on the
new deployment: the operator creates its evaluation Job, the demo runs that Job's command here as
the Job's ServiceAccount (its endpoint mapped to the real small model), and the pass moves
`preview` on the day-zero lane. Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "dayzero-demo"
STATE = Path.home() / ".cache" / "dayzero" / "demo"
FIXTURES = ROOT / "tests" / "planner" / "fixtures"
GATEWAY_PORT_FILE = STATE / "gateway.port"
DEMO_KEY = "sk-dayzero-demo"  # a demo-only key: the document holds its sha256, never the key
NEW_RELEASE = "newlab/Nova-70B-Instruct"
NEW_NAME_FILE = STATE / "new-release.name"
# The examples' repos as the fake Hub serves them: (repo, fixture or inline config, sha, counts).
QWEN3_32B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 5120,
    "intermediate_size": 25600,
    "num_hidden_layers": 64,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def say(step: str) -> None:
    print(f"\n\033[1m==> {step}\033[0m", flush=True)


def run(
    cmd: list[str], env: dict[str, str], *, check: bool = True, stdin: str | None = None
) -> str:
    out = subprocess.run(
        cmd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    if check and out.returncode != 0:
        raise SystemExit(f"demo: {' '.join(cmd)} failed:\n{out.stderr}")
    return out.stdout


def cluster(command: str) -> str:
    args = [sys.executable, "-m", "e2e.cluster", command]
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"demo: cluster {command} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def _spawn(name: str, args: list[str], env: dict[str, str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    (STATE / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _stop_spawned() -> None:
    for pid_file in sorted(STATE.glob("*.pid")):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()


def serve_engine(url_file: Path) -> int:
    """A fake engine standing in for every GPU pod's vLLM, until SIGTERM (run detached)."""
    sys.path.insert(0, str(ROOT / "e2e"))
    from fakes.engine import FakeEngine  # noqa: PLC0415 - the e2e helpers are not a package

    engine = FakeEngine("vllm-on-a-fake-h100")
    # Where the simulated new deployment's endpoint is mapped: it accepts and never answers.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    held: list[socket.socket] = []

    def swallow() -> None:
        while True:
            with contextlib.suppress(OSError):
                held.append(hole.accept()[0])

    threading.Thread(target=swallow, daemon=True).start()
    (url_file.parent / "blackhole.url").write_text(f"http://127.0.0.1:{hole.getsockname()[1]}")
    url_file.write_text(engine.url)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    engine.close()
    return 0


def serve_sync(path: Path) -> int:
    """Project the routing ConfigMap into ``path`` like a kubelet volume, until SIGTERM."""
    sys.path.insert(0, str(ROOT / "e2e"))
    from fakes.kubelet import ConfigMapSync  # noqa: PLC0415 - the e2e helpers are not a package

    sync = ConfigMapSync(dict(os.environ), NAMESPACE, path)
    sync.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sync.stop()
    return 0


def _wait_file(path: Path, what: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not start; see {STATE}")
        time.sleep(0.1)
    return path.read_text()


def _http(
    method: str, url: str, body: object = None, key: str | None = DEMO_KEY
) -> tuple[int, dict[str, str], str]:
    import urllib.error  # noqa: PLC0415 - only here
    import urllib.request  # noqa: PLC0415

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback only
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()
    except OSError as e:
        return 0, {}, str(e)


def start_gateway(env: dict[str, str]) -> str:
    """The gateway on the projected ConfigMap, in-cluster engines mapped to the fake engine."""
    engine_file, config = STATE / "engine.url", STATE / "routing.yaml"
    engine_file.unlink(missing_ok=True)
    _spawn("engine", [sys.executable, "-m", "e2e.demo", "_engine", str(engine_file)], env)
    engine = _wait_file(engine_file, "the fake engine")
    config.unlink(missing_ok=True)
    _spawn("sync", [sys.executable, "-m", "e2e.demo", "_sync", str(config)], env)
    _wait_file(config, "the ConfigMap projection")
    # Start on the document the operator wrote for this run (a reused cluster has an older one).
    import hashlib  # noqa: PLC0415 - only here

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        want = run(["kubectl", "get", "lane", "chat", "-n", NAMESPACE, "-o", HASH], env)
        if want and hashlib.sha256(config.read_bytes()).hexdigest()[:16] == want:
            break
        time.sleep(0.3)
    endpoints = run(["kubectl", "get", "mdep", "-n", NAMESPACE, "-o", ENDPOINTS], env).split()
    hole = (STATE / "blackhole.url").read_text()
    new = f"http://{NEW_NAME_FILE.read_text()}." if NEW_NAME_FILE.exists() else "-"
    url_map = [
        f"--url-map={e.removesuffix('/v1')}={hole if e.startswith(new) else engine}"
        for e in endpoints
        if ".svc:" in e
    ]
    port = GATEWAY_PORT_FILE.read_text()
    gateway = [sys.executable, "-m", "dayzero.cli", "gateway", "--config", str(config)]
    gateway += ["--host", "127.0.0.1", "--port", port, "--loopback-only", *url_map]
    _spawn("gateway", gateway, env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while _http("GET", url + "/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: the gateway did not start; see {STATE / 'gateway.log'}")
        time.sleep(0.2)
    print(f"gateway {url}; engines mapped: {len(url_map)}; non-loopback backends go nowhere")
    return url


def serve_hub(url_file: Path) -> int:
    """The fake Hub with the examples' repos, until SIGTERM (run detached by `up`)."""
    sys.path.insert(0, str(ROOT / "e2e"))
    from fakes.hub import FakeHub, FakeModel  # noqa: PLC0415 - the e2e helpers are not a package

    def fixture(name: str) -> dict[str, object]:
        return dict(json.loads((FIXTURES / f"{name}.json").read_text()))

    models = [
        FakeModel(
            repo="meta-llama/Llama-3.1-8B-Instruct",
            config=fixture("llama-3.1-8b"),
            parameters={"BF16": 8_030_261_248},
            sha="0e9e39f249a16976918f6564b8830bc894c89659",
        ),
        FakeModel(
            repo="meta-llama/Llama-3.1-405B-Instruct",
            config=fixture("llama-3.1-405b"),
            parameters={"BF16": 405_853_388_800},
        ),
        FakeModel(repo="Qwen/Qwen3-32B", config=QWEN3_32B, parameters={"BF16": 32_762_123_264}),
        # The simulated release the watcher finds: a new 70B from a whitelisted org.
        FakeModel(
            repo=NEW_RELEASE,
            config=fixture("llama-3.1-70b"),
            parameters={"BF16": 70_553_706_496},
            license="llama3.1",
            created_at="2026-11-30T06:00:00.000Z",
        ),
    ]
    with FakeHub(models) as hub:
        url_file.write_text(hub.url)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def routing_base() -> Path:
    """Document-wide settings: one demo key (admin, every lane), stored as its hash only."""
    import hashlib  # noqa: PLC0415 - only here

    digest = hashlib.sha256(DEMO_KEY.encode()).hexdigest()
    entry = {"sha256": digest, "project": "platform-team", "lanes": ["*"], "admin": True}
    # The gateway reads provider keys from mounted Secrets; here, a folder laid out the same way.
    secrets = STATE / "secrets"
    (secrets / "anthropic-api-key").mkdir(parents=True, exist_ok=True)
    (secrets / "anthropic-api-key" / "api-key").write_text("demo")
    path = STATE / "routing-base.json"
    base = {"keys": {"enabled": True, "entries": [entry]}, "secretsDir": str(secrets)}
    path.write_text(json.dumps(base))
    return path


def start_hub_and_operator(env: dict[str, str]) -> str:
    _stop_spawned()
    url_file = STATE / "hub.url"
    url_file.unlink(missing_ok=True)
    _spawn("hub", [sys.executable, "-m", "e2e.demo", "_hub", str(url_file)], env)
    deadline = time.monotonic() + 30
    while not url_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: the fake Hub did not start; see {STATE / 'hub.log'}")
        time.sleep(0.1)
    hub = url_file.read_text()
    # Providers are mapped to loopback too: the demo never dials a real API.
    overrides = [f"--provider-url={p}={hub}" for p in ("openai", "anthropic", "gemini")]
    port = free_port()
    GATEWAY_PORT_FILE.write_text(str(port))
    routing = [
        f"--routing-configmap={NAMESPACE}/dayzero-routing",
        f"--routing-base={routing_base()}",
        f"--gateway=http://127.0.0.1:{port}",
    ]
    # kwok would "complete" an evaluation pod without running anything; no node has this label,
    # so Gauntlet Jobs wait, and the demo runs a Job's command itself (show_gauntlet_controller).
    evaluation = [f"--gauntlet-node-selector={EVALUATION_POOL}"]
    operator = [sys.executable, "-m", "dayzero.cli", "operator", *overrides, *routing, *evaluation]
    _spawn("operator", operator, env | {"HF_ENDPOINT": hub})
    return hub


SERVING_PRIORITY_CLASS = """apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: dayzero-serving}
value: 100000
description: New models may preempt research jobs.
"""
REASONS = "jsonpath={range .status.plan.reasons[*]}  {.field}: {.reason}{'\\n'}{end}"
READY = 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}'
ENDPOINTS = "jsonpath={range .items[*]}{.status.endpoint} {end}"
HASH = "jsonpath={.status.configHash}"
LANE = (
    "jsonpath={range .status.backends[*]}  {.name}: available={.available}"
    " {.endpoint}{.reason}{'\\n'}{end}  tags={.status.tags}"
    "  configHash={.status.configHash} appliedConfigHash={.status.appliedConfigHash}{'\\n'}"
)


def wait_ready(env: dict[str, str], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = run(["kubectl", "get", "mdep", "-n", NAMESPACE, "-o", READY], env).split()
        if len(states) == count and set(states) == {"True"}:
            return
        time.sleep(1)
    print(f"(not every deployment is Ready after {timeout:.0f}s; see {STATE / 'operator.log'})")


def start_model(env: dict[str, str]) -> tuple[str, str]:
    """SmolLM2-135M-Instruct under `transformers serve` on the CPU, from the model venv
    (`make model-env`): the real small model every step below ends up answering with."""
    sys.path.insert(0, str(ROOT / "e2e" / "model"))
    from cache import model_dir, venv_dir  # noqa: PLC0415 - stdlib-only helper of e2e/model

    serve, weights = venv_dir() / "bin" / "transformers", model_dir()
    if not serve.is_file() or not (weights / "config.json").is_file():
        raise SystemExit(f"demo: no model venv or weights ({serve}, {weights}): `make model-env`")
    hub_cache = STATE / "hf-hub-cache"
    hub_cache.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(serve), "serve", str(weights), "--host", "127.0.0.1", "--port", str(port)]
    model_env = env | {
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),  # its /v1/models scans this folder; it must exist
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TQDM_DISABLE": "1",
    }
    _spawn("model", [*cmd, "--device", "cpu"], model_env)
    return f"http://127.0.0.1:{port}", str(weights)


def wait_model(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while _http("GET", url + "/health", key=None)[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: transformers serve did not start; see {STATE / 'model.log'}")
        time.sleep(0.5)


def run_watcher(env: dict[str, str], hub: str) -> str:
    """One `dayzero watcher poll` on the fake Hub: it finds the release and creates its
    ModelDeployment (mode auto). Returns the ModelDeployment's name."""
    config = STATE / "watcher.json"
    config.write_text(
        json.dumps(
            {
                "hub": {"orgs": ["newlab"]},
                "mode": "auto",
                "namespace": NAMESPACE,
                "budget": {"gpuKind": "h100-80gb", "maxGpus": 16},
                "deployment": {"tags": ["candidate"]},
                "stateConfigMap": "dayzero-watcher-state",
            }
        )
    )
    # A reused cluster remembers the release from the last demo: start the watcher afresh.
    forget = ["kubectl", "delete", "cm", "dayzero-watcher-state", "-n", NAMESPACE]
    run([*forget, "--ignore-not-found"], env)
    poll = [sys.executable, "-m", "dayzero.cli", "watcher", "poll", "--config", str(config)]
    summary = json.loads(run([*poll, "--hub-endpoint", hub], env))
    name = ""
    for model in summary.get("models", []):
        plan = model.get("plan") or {}
        print(
            f"{model.get('repo')}@{str(model.get('sha'))[:12]}: {model.get('verdict')} "
            f"({plan.get('gpus')} GPUs, TP{plan.get('tensorParallel')}) -> "
            f"{model.get('action')} ModelDeployment {model.get('name')}"
        )
        name = model.get("name") or name
    if not name:
        raise SystemExit(f"demo: the watcher created nothing: {json.dumps(summary)[:2000]}")
    NEW_NAME_FILE.write_text(name)
    return name


def day_zero_lane(new: str, model_url: str, model_id: str) -> str:
    return json.dumps(
        {
            "apiVersion": "dayzero.dev/v1alpha1",
            "kind": "Lane",
            "metadata": {"name": "day-zero"},
            "spec": {
                "model": "day-zero",
                "backends": [
                    {"name": "nova", "modelDeploymentRef": {"name": new}, "timeoutSeconds": 2},
                    {
                        "name": "smollm2",
                        "url": {"url": model_url + "/v1", "model": model_id},
                        "timeoutSeconds": 120,
                    },
                ],
                "circuitBreaker": {"consecutiveTimeouts": 2, "openSeconds": 300},
            },
        }
    )


def show_failover(env: dict[str, str], gateway: str, lane: str) -> None:
    """The new deployment times out twice, the circuit opens, the real model answers."""
    run(["kubectl", "apply", "-n", NAMESPACE, "-f", "-"], env, stdin=lane)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lane_now = json.loads(
            run(["kubectl", "get", "lane", "day-zero", "-n", NAMESPACE, "-o", "json"], env)
        )
        status = lane_now.get("status", {})
        # A rerun finds last run's Lane loaded (its model port is gone): wait for this spec.
        current = status.get("observedGeneration") == lane_now["metadata"].get("generation")
        hashes = status.get("configHash"), status.get("appliedConfigHash")
        loaded = hashes[0] is not None and hashes[0] == hashes[1]
        if current and loaded:
            break
        time.sleep(0.5)
    ask = {"model": "day-zero", "messages": [{"role": "user", "content": "Say hi."}]}
    ask["max_tokens"] = 16
    for i in range(3):
        began = time.monotonic()
        code, headers, _ = _http("POST", gateway + "/v1/chat/completions", ask)
        print(
            f"request {i + 1}: {code} in {time.monotonic() - began:.1f}s, "
            f"X-Dayzero-Backend: {headers.get('x-dayzero-backend')}"
        )
    _, _, body = _http("GET", gateway + "/v1/models/status")
    for backend in json.loads(body).get("backends", []):
        if backend["name"].startswith("day-zero-"):
            print(f"  {backend['name']}: circuit {backend['circuit']}, health {backend['health']}")


EVALUATION_POOL = "dayzero.dev/demo-evaluation-pool=none"


def day_zero_gauntlet(new: str, model_id: str) -> str:
    every = ("sanity", "compliance", "latency", "stability", "toolCalls", "quality", "diff")
    suites: dict[str, object] = {s: {"enabled": False} for s in every}
    suites["sanity"] = {"enabled": True}
    suites["latency"] = {"enabled": True, "requests": 3, "warmup": 1, "maxTokens": 16}
    return json.dumps(
        {
            "apiVersion": "dayzero.dev/v1alpha1",
            "kind": "Gauntlet",
            "metadata": {"name": "day-zero-gate"},
            "spec": {
                # Its endpoint is mapped to the real model below, which answers to its path.
                "targets": [{"modelDeploymentRef": {"name": new}, "model": model_id}],
                "suites": suites,
                "gates": {"p95Seconds": 60, "maxSeconds": 120},
                "concurrency": 1,
                "force": True,  # a fresh run every demo, not last run's result
                "promotion": {"lane": "day-zero", "tag": "preview"},
            },
        }
    )


def show_gauntlet_controller(env: dict[str, str], new: str, model_url: str, model_id: str) -> None:
    """A Gauntlet on the new deployment: the operator makes the Job; its command runs here as the
    Job's ServiceAccount, its endpoint mapped to the real model; a pass moves preview."""
    run(
        ["kubectl", "delete", "gauntlet", "day-zero-gate", "-n", NAMESPACE, "--ignore-not-found"],
        env,
    )
    run(
        ["kubectl", "apply", "-n", NAMESPACE, "-f", "-"],
        env,
        stdin=day_zero_gauntlet(new, model_id),
    )
    get = ["kubectl", "get", "gauntlet", "day-zero-gate", "-n", NAMESPACE, "-o", "json"]
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline and not status.get("jobName"):
        status = json.loads(run(get, env)).get("status", {})
        time.sleep(0.5)
    if not status.get("jobName"):
        raise SystemExit(f"demo: no evaluation Job for the Gauntlet: {status}")
    job = json.loads(
        run(["kubectl", "get", "job", str(status["jobName"]), "-n", NAMESPACE, "-o", "json"], env)
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    print(f"Job {job['metadata']['name']}: {' '.join(container['command'])}")
    print(f"  as ServiceAccount {pod['serviceAccountName']} (may patch only its result ConfigMap)")
    spec_cm = next(v for v in pod["volumes"] if v["name"] == "spec")["configMap"]["name"]
    here = STATE / "gauntlet-job"
    here.mkdir(parents=True, exist_ok=True)
    spec = json.loads(run(["kubectl", "get", "cm", spec_cm, "-n", NAMESPACE, "-o", "json"], env))
    (here / "spec.yaml").write_text(spec["data"]["spec.yaml"])
    token = run(
        ["kubectl", "create", "token", pod["serviceAccountName"], "-n", NAMESPACE], env
    ).strip()
    admin = json.loads(run(["kubectl", "config", "view", "--raw", "-o", "json"], env))
    cluster_entry = admin["clusters"][0]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": "job", "user": {"token": token}}],
        "contexts": [{"name": "job", "context": {"cluster": cluster_entry["name"], "user": "job"}}],
        "current-context": "job",
    }
    (here / "kubeconfig").write_text(json.dumps(kubeconfig))
    argv = [sys.executable, "-m", "dayzero.cli", *container["command"][1:]]
    argv[argv.index("--spec") + 1] = str(here / "spec.yaml")
    argv[argv.index("--out") + 1] = str(here / "report")
    endpoint = json.loads(run(["kubectl", "get", "mdep", new, "-n", NAMESPACE, "-o", "json"], env))[
        "status"
    ]["endpoint"]
    argv += ["--url-map", f"{endpoint.removesuffix('/v1')}={model_url}"]
    job_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    job_env |= {"HOME": str(here), "PATH": os.environ["PATH"]}
    job_env["KUBECONFIG"] = str(here / "kubeconfig")
    done = subprocess.run(
        argv, env=job_env, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )
    print("\n".join((done.stdout + done.stderr).strip().splitlines()[-6:]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and status.get("promoted") is not True:
        status = json.loads(run(get, env)).get("status", {})
        if status.get("phase") in ("Failed",) or status.get("verdict") == "Fail":
            break
        time.sleep(0.5)
    print(run(["kubectl", "get", "gauntlet", "day-zero-gate", "-n", NAMESPACE], env), end="")
    for suite in status.get("suites", []):
        figures = {k: round(v, 2) for k, v in suite["figures"].items() if k in DEMO_FIGURES}
        print(f"  {suite['suite']}: {suite['verdict']} {figures}")
    tags = "jsonpath=lane day-zero tags={.status.tags} promotions={.status.promotions}{'\\n'}"
    print(run(["kubectl", "get", "lane", "day-zero", "-n", NAMESPACE, "-o", tags], env), end="")


DEMO_FIGURES = {"passRate", "p50Seconds", "p95Seconds", "maxSeconds"}


def show_openai_client(gateway: str) -> None:
    import openai  # noqa: PLC0415 - the official client, from the dev environment

    client = openai.OpenAI(base_url=gateway + "/v1", api_key=DEMO_KEY, max_retries=0)
    answer = client.chat.completions.create(
        model="day-zero",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
    )
    print(f"openai.OpenAI(...).chat.completions.create -> {answer.choices[0].message.content!r}")
    print(f"usage: {answer.usage}")


def show_gateway(env: dict[str, str], gateway: str) -> None:
    """The Lane's status, then requests in both APIs and one without a key."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lane = json.loads(
            run(["kubectl", "get", "lane", "chat", "-n", NAMESPACE, "-o", "json"], env)
        )
        status = lane.get("status", {})
        if status.get("configHash") and status.get("configHash") == status.get("appliedConfigHash"):
            break
        time.sleep(0.5)
    print("kubectl get lane chat (status):")
    print(run(["kubectl", "get", "lane", "chat", "-n", NAMESPACE, "-o", LANE], env), end="")
    chat = {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}]}
    code, headers, body = _http("POST", gateway + "/v1/chat/completions", chat)
    answer = json.loads(body)["choices"][0]["message"]["content"] if code == 200 else body
    print(
        f"POST /v1/chat/completions model=chat -> {code}, X-Dayzero-Backend: "
        f"{headers.get('x-dayzero-backend')}: {answer!r}"
    )
    ollama = {"model": "chat", "messages": chat["messages"], "stream": False}
    code, headers, body = _http("POST", gateway + "/api/chat", ollama)
    answer = json.loads(body)["message"]["content"] if code == 200 else body
    print(f"POST /api/chat (Ollama)        -> {code}: {answer!r}")
    code, _, body = _http("POST", gateway + "/v1/chat/completions", chat, key=None)
    print(f"without a key                  -> {code}: {json.loads(body)['error']['message']}")


def show_promotion(env: dict[str, str], gateway: str) -> None:
    """Promote a model to preview with the CLI, call it, roll it back."""
    messages = [{"role": "user", "content": "Say hello."}]
    say("Promotion moves a tag in Lane status, never in the spec; rollback is one step")
    run(
        [
            sys.executable,
            "-m",
            "dayzero.cli",
            "lane",
            "promote",
            "chat",
            "preview",
            "qwen3-32b-fp8",
            "-n",
            NAMESPACE,
            "--by",
            "demo",
        ],
        env,
    )
    deadline = time.monotonic() + 30
    code, headers = 0, {}
    while time.monotonic() < deadline:
        preview = {"model": "preview", "messages": messages}
        code, headers, _ = _http("POST", gateway + "/v1/chat/completions", preview)
        if code == 200:
            break
        time.sleep(0.5)
    print(f"model=preview -> {code}, X-Dayzero-Backend: {headers.get('x-dayzero-backend')}")
    print(
        run(
            [
                "kubectl",
                "get",
                "lane",
                "chat",
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath=promotions: {.status.promotions}{'\\n'}",
            ],
            env,
        ),
        end="",
    )
    run(
        [
            sys.executable,
            "-m",
            "dayzero.cli",
            "lane",
            "rollback",
            "chat",
            "-n",
            NAMESPACE,
            "--reason",
            "demo",
            "--by",
            "demo",
        ],
        env,
    )
    rolled = "jsonpath={.status.lastRollback}"
    deadline = time.monotonic() + 30
    record = ""
    while time.monotonic() < deadline and not record:
        record = run(["kubectl", "get", "lane", "chat", "-n", NAMESPACE, "-o", rolled], env)
        time.sleep(0.3)
    print(f"dayzero lane rollback chat -> status.lastRollback: {record}")


def show_bad_input(env: dict[str, str]) -> None:
    """An invalid object is refused at admission, naming the field."""
    say("Bad input is refused by the API server, naming the field")
    bad = (
        "apiVersion: dayzero.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: bad}\n"
        "spec:\n  source: {hub: {repo: org/model, revision: main}}\n"
        "  resources: {gpusPerNode: 8, nodes: 1, tensorParallel: 4, pipelineParallel: 1}\n"
    )
    refused = subprocess.run(
        ["kubectl", "apply", "-n", NAMESPACE, "-f", "-"],
        env=env,
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(refused.stderr.strip())


def show_examples(env: dict[str, str]) -> None:
    """Every example applied; the operator plans and serves the ModelDeployments."""
    say(f"Examples, applied to namespace {NAMESPACE}")
    if not run(["kubectl", "get", "namespace", NAMESPACE], env, check=False):
        run(["kubectl", "create", "namespace", NAMESPACE], env)
    run(["kubectl", "apply", "-f", "-"], env, stdin=SERVING_PRIORITY_CLASS)
    for secret in ("hf-token", "anthropic-api-key"):
        create = ["kubectl", "create", "secret", "generic", secret, "-n", NAMESPACE]
        run([*create, "--from-literal=token=demo", "--from-literal=api-key=demo"], env, check=False)
    applied = run(["kubectl", "apply", "--server-side", "-n", NAMESPACE, "-f", "examples/"], env)
    print(applied, end="")

    say("The operator plans, caches and serves them; pods run on fake H100 nodes")
    wait_ready(env, count=4, timeout=90)
    print(run(["kubectl", "get", "mdep", "-n", NAMESPACE, "-o", "wide"], env), end="")
    serving = ["-l", "dayzero.dev/component=serving", "-o", "wide"]
    print(run(["kubectl", "get", "pods", "-n", NAMESPACE, *serving], env), end="")
    print("\nWhy 405B takes two nodes (status.plan.reasons):")
    print(run(["kubectl", "get", "mdep", "llama-3-1-405b", "-n", NAMESPACE, "-o", REASONS], env))
    print(run(["kubectl", "get", "lane,gnt", "-n", NAMESPACE], env), end="")


def show_release(env: dict[str, str], hub: str) -> str:
    """The watcher finds the simulated release and the operator plans and serves it."""
    say(f"A release lands on the fake Hub ({NEW_RELEASE}); the watcher creates its deployment")
    new = run_watcher(env, hub)
    wait_ready(env, count=5, timeout=90)
    plan = (
        "jsonpath={.status.plan.gpus} GPUs: TP{.status.plan.tensorParallel}"
        " x PP{.status.plan.pipelineParallel}, {.status.phase}"
    )
    print(f"{new}: " + run(["kubectl", "get", "mdep", new, "-n", NAMESPACE, "-o", plan], env))
    print(
        run(
            [
                "kubectl",
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                f"dayzero.dev/model-deployment={new}",
                "-o",
                "wide",
            ],
            env,
        ),
        end="",
    )
    return new


def up() -> int:
    began = time.monotonic()
    say("Local control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok")
    started = cluster("up")
    kubeconfig = re.search(r"export KUBECONFIG=(\S+)", started)
    path = re.search(r"export PATH=([^:\s]+)", started)
    if not kubeconfig or not path:
        raise SystemExit(f"demo: could not read the kubeconfig from:\n{started}")
    env = os.environ | {"KUBECONFIG": kubeconfig[1], "PATH": f"{path[1]}:{os.environ['PATH']}"}
    print(run(["kubectl", "get", "nodes", "-L", "nvidia.com/gpu.product"], env), end="")

    say("CRDs (generated from the pydantic models), installed with server-side apply")
    print(run(["kubectl", "apply", "--server-side", "-f", "crds/"], env), end="")
    crds = [f"crd/{kind}.dayzero.dev" for kind in ("modeldeployments", "lanes", "gauntlets")]
    run(["kubectl", "wait", "--for=condition=Established", "--timeout=60s", *crds], env)

    say("A fake Hugging Face Hub on loopback, and the operator reading from it")
    hub = start_hub_and_operator(env)
    print(f"fake Hub {hub}; operator log {STATE / 'operator.log'}")
    model_url, model_id = start_model(env)  # starts now, needed from the lane step on

    show_examples(env)
    new = show_release(env, hub)

    say("The gateway: Lanes rendered into a ConfigMap, hot-reloaded, one OpenAI + Ollama API")
    gateway = start_gateway(env)
    show_gateway(env, gateway)

    say(
        "Lane day-zero: the new deployment first (simulated: nothing answers in time),"
        " then the real model"
    )
    wait_model(model_url)
    show_failover(env, gateway, day_zero_lane(new, model_url, model_id))

    say("A chat request through the gateway with the official openai client")
    show_openai_client(gateway)
    show_promotion(env, gateway)

    say("A Gauntlet gates the new model: the operator's Job runs here, a pass moves preview")
    show_gauntlet_controller(env, new, model_url, model_id)

    show_bad_input(env)

    say(f"Done in {time.monotonic() - began:.0f}s")
    print(f"export KUBECONFIG={kubeconfig[1]}")
    print(f"export PATH={path[1]}:$PATH")
    print(f"gauntlet report: {STATE / 'gauntlet-job' / 'report' / 'report.html'}")
    print(
        f"curl -s {gateway}/v1/chat/completions -H 'Authorization: Bearer {DEMO_KEY}' "
        '-d \'{"model": "day-zero", "messages": [{"role": "user", "content": "hi"}]}\''
    )
    print("kubectl explain modeldeployment.spec.resources")
    print("make demo-down    # stop everything")
    return 0


def down() -> int:
    _stop_spawned()
    print(cluster("down"), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "_hub", "_engine", "_sync"])
    parser.add_argument("url_file", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "_hub":
        return serve_hub(args.url_file)
    if args.command == "_engine":
        return serve_engine(args.url_file)
    if args.command == "_sync":
        return serve_sync(args.url_file)
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
