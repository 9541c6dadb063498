"""`python -m e2e.cluster up|down|status`: the local control plane for a person at a shell.

Why a supervisor: `up` must outlive the command that ran it, so a daemonized supervisor process owns
the plane and stops it on SIGTERM; `down` signals it, then makes sure no component is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from .controlplane import (
    ControlPlane,
    ControlPlaneError,
    build_binaries,
    kill_recorded_processes,
    read_plane_file,
    readyz,
    remove_state,
    wait_until,
)

DEFAULT_STATE = Path.home() / ".cache" / "dayzero" / "cluster"
REPO_ROOT = Path(__file__).resolve().parents[2]
SUPERVISOR_PID = "supervisor.pid"
READY_FILE = "ready"
FAILED_FILE = "failed"


class _StopRequestedError(Exception):
    """Raised from a signal handler so that the supervisor unwinds and stops the plane."""


def _supervisor_pid(state: Path) -> int | None:
    """The live supervisor's pid, checked against its command line so a reused pid is ignored."""
    try:
        pid = int((state / SUPERVISOR_PID).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"e2e.cluster" in cmdline and b"_supervise" in cmdline else None


def _up(state: Path, gpu_nodes: int, cpu_nodes: int, timeout: float) -> int:
    if _supervisor_pid(state) is None:
        kill_recorded_processes(state)
        remove_state(state)
        state.mkdir(parents=True)
        bin_dir = build_binaries()
        began = time.monotonic()
        with (state / "supervisor.log").open("ab") as log:
            first = subprocess.Popen(
                [
                    sys.executable, "-m", "e2e.cluster", "_supervise", "--state", str(state),
                    "--bin-dir", str(bin_dir), "--gpu-nodes", str(gpu_nodes),
                    "--cpu-nodes", str(cpu_nodes), "--timeout", str(timeout),
                ],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        # The first child only forks the real supervisor and exits, so this returns at once.
        first.wait()
    else:
        began = time.monotonic()

    def settled() -> bool | None:
        if (state / READY_FILE).exists() or (state / FAILED_FILE).exists():
            return True
        return None if _supervisor_pid(state) is not None else True

    wait_until(settled, timeout=timeout + 30, what="the supervisor to start the plane")
    if not (state / READY_FILE).exists():
        print(f"control plane failed to start; see {state / 'supervisor.log'}", file=sys.stderr)
        with contextlib.suppress(OSError):
            print((state / FAILED_FILE).read_text(), file=sys.stderr)
        return 1
    print(f"control plane up in {time.monotonic() - began:.1f}s", file=sys.stderr)
    info = read_plane_file(state) or {}
    # Shell-ready lines: `eval "$(python -m e2e.cluster up)"`; make demo parses them too.
    print(f"export KUBECONFIG={state / 'kubeconfig'}")
    print(f"export PATH={info.get('bin_dir', '')}:$PATH")
    return 0


def _supervise(state: Path, bin_dir: Path, gpu_nodes: int, cpu_nodes: int, timeout: float) -> int:
    # Classic daemonizing: the parent exits, the child leads a new session and is adopted by init.
    child = os.fork()
    if child:
        # Written before `up` stops waiting on this process, so it always finds the supervisor.
        (state / SUPERVISOR_PID).write_text(str(child))
        os._exit(0)
    os.setsid()
    plane = ControlPlane(state, bin_dir=bin_dir, gpu_nodes=gpu_nodes, cpu_nodes=cpu_nodes)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        raise _StopRequestedError(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    reported: set[str] = set()
    try:
        plane.start(timeout=timeout)
        (state / READY_FILE).write_text(json.dumps({"startup_seconds": plane.startup_seconds}))
        print(f"supervisor {os.getpid()}: plane up in {plane.startup_seconds:.1f}s", flush=True)
        while True:
            time.sleep(1)
            for name in set(plane.dead_components()) - reported:
                print(f"supervisor: {name} exited; see {state / 'logs' / name}.log", flush=True)
                reported.add(name)
    except _StopRequestedError as stop:
        print(f"supervisor: {stop}, stopping", flush=True)
    except (ControlPlaneError, TimeoutError) as error:
        (state / FAILED_FILE).write_text(str(error))
        print(f"supervisor: {error}", flush=True)
        return 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        plane.stop()
        for name in (SUPERVISOR_PID, READY_FILE):
            with contextlib.suppress(FileNotFoundError):
                (state / name).unlink()
    return 0


def _down(state: Path, timeout: float) -> int:
    pid = _supervisor_pid(state)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(
                lambda: None if _supervisor_pid(state) == pid else True,
                timeout=timeout,
                what="the supervisor to stop",
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # Whatever outlived the supervisor (it was killed, or crashed) is ended here.
    leftovers = kill_recorded_processes(state)
    if leftovers:
        print(f"ended leftover components: {', '.join(leftovers)}", file=sys.stderr)
    print("control plane stopped" if pid or leftovers else "control plane was not running")
    return 0


def _status(state: Path) -> int:
    pid = _supervisor_pid(state)
    info = read_plane_file(state)
    if pid is None or info is None:
        print(f"down (state {state})")
        return 1
    if not readyz(state):
        print(f"supervisor {pid} running, API server not ready (logs in {state / 'logs'})")
        return 1
    print(f"up: {info['server']} (supervisor {pid})")
    print(f"export KUBECONFIG={info['kubeconfig']}")
    print(f"export PATH={info['bin_dir']}:$PATH")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the plane in the background; print the kubeconfig")
    down = commands.add_parser("down", help="stop the plane and every component process")
    status = commands.add_parser("status", help="say whether the plane is up (exit 0) or not")
    supervise = commands.add_parser("_supervise")
    for sub in (up, down, status, supervise):
        sub.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory")
    for sub in (up, supervise):
        sub.add_argument("--gpu-nodes", type=int, default=4, help="fake 8x H100 nodes")
        sub.add_argument("--cpu-nodes", type=int, default=1, help="fake CPU-only nodes")
        sub.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it")
    supervise.add_argument("--bin-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    state: Path = args.state.expanduser().resolve()
    if args.command == "up":
        return _up(state, args.gpu_nodes, args.cpu_nodes, args.timeout)
    if args.command == "_supervise":
        return _supervise(state, args.bin_dir, args.gpu_nodes, args.cpu_nodes, args.timeout)
    if args.command == "down":
        return _down(state, timeout=30.0)
    return _status(state)


if __name__ == "__main__":
    sys.exit(main())
