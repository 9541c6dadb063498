"""`make demo`: the day-zero story on one laptop-sized machine.

Today it brings up (or reuses) the local control plane with fake H100 nodes, installs the generated
CRDs with server-side apply, applies every example and shows what the API server made of them.
Later stages (operator, gateway, the real small model, a Gauntlet) plug in as they land.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "dayzero-demo"


def say(step: str) -> None:
    print(f"\n\033[1m==> {step}\033[0m", flush=True)


def run(cmd: list[str], env: dict[str, str], *, check: bool = True) -> str:
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False
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

    say(f"Examples, applied to namespace {NAMESPACE}")
    existing = run(["kubectl", "get", "namespace", NAMESPACE], env, check=False)
    if not existing:
        run(["kubectl", "create", "namespace", NAMESPACE], env)
    print(
        run(["kubectl", "apply", "--server-side", "-n", NAMESPACE, "-f", "examples/"], env), end=""
    )
    print(run(["kubectl", "get", "mdep,lane,gnt", "-n", NAMESPACE], env), end="")

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

    say(f"Done in {time.monotonic() - began:.0f}s")
    print(f"export KUBECONFIG={kubeconfig[1]}")
    print(f"export PATH={path[1]}:$PATH")
    print("kubectl explain modeldeployment.spec.resources")
    print("make demo-down    # stop everything")
    return 0


def down() -> int:
    print(cluster("down"), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
