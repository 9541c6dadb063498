"""Fixtures for the e2e tests, which run against a real local control plane: `pytest e2e --e2e`.

Why opt-in: the plane needs the pinned binaries (`make cluster`) and seconds to start, while unit
tests stay hermetic and fast. Without `--e2e` every test here is skipped and nothing is built.
The harness is imported as `cluster` because pytest puts this (package-less) folder on sys.path.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import ApiError, ControlPlane, Kubectl, build_binaries, wait_until

E2E_DIR = Path(__file__).resolve().parent
E2E_TIMEOUT_S = 300
BIN_DIR = pytest.StashKey[Path]()
STARTUP = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("e2e").addoption(
        "--e2e",
        action="store_true",
        default=False,
        help="run the e2e tests against a local control plane (binaries from `make cluster`)",
    )


def _is_e2e(item: pytest.Item) -> bool:
    return E2E_DIR in item.path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="e2e test: needs the local control plane; run with --e2e")
    for item in items:
        if not _is_e2e(item):
            continue
        item.add_marker(pytest.mark.e2e)
        # The unit tests' 2 s budget cannot cover starting a plane and waiting on controllers.
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))
        if not config.getoption("--e2e"):
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Built here, outside any test's timeout: a cold build compiles Kubernetes for many minutes.
    if session.config.getoption("--e2e") and any(map(_is_e2e, session.items)):
        session.config.stash[BIN_DIR] = build_binaries()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if STARTUP in config.stash:
        terminalreporter.write_line(f"e2e control plane started in {config.stash[STARTUP]:.1f}s")


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """One plane per session: 4 fake 8x H100 nodes and a CPU node, stopped at the end."""
    bin_dir = request.config.stash.get(BIN_DIR, None) or build_binaries()
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"), bin_dir=bin_dir)
    plane.start()
    request.config.stash[STARTUP] = plane.startup_seconds
    try:
        yield plane
    finally:
        dead = plane.dead_components()
        plane.stop()
        # Logs stay for debugging; etcd's preallocated WAL is tens of MB per kept run.
        shutil.rmtree(plane.state_dir / "etcd", ignore_errors=True)
    assert not dead, f"components died during the session: {dead}; logs in {plane.logs_dir}"


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    """Run the pinned kubectl against the plane: `kubectl("get", "pods", "-n", ns)`."""
    return Kubectl.for_plane(control_plane)


def _namespace_name(test_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"e2e-{stem}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test (with its default service account), deleted afterwards."""
    name = _namespace_name(request.node.name)
    control_plane.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )

    def has_default_sa() -> bool | None:
        with contextlib.suppress(ApiError):
            control_plane.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return True
        return None

    # Pods are refused until the service account controller has created `default`.
    wait_until(has_default_sa, timeout=30, what=f"the default service account in {name}")
    yield name
    # Not awaited: the namespace controller holds every deletion for at least 5 s by design,
    # and unique names already keep tests apart; test_controlplane checks deletion completes.
    with contextlib.suppress(ApiError):
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
