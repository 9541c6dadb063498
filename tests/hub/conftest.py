"""Fixtures of the hub tests: the real huggingface-hub client against a fake Hub on loopback.

The fake lives in e2e/fakes (the operator e2e, the watcher and the demo reuse it); e2e/ is not a
package, so its folder goes on sys.path as pytest does for e2e/ itself. No test here can reach
the real Hub: huggingface-hub's default endpoint is pointed at a closed loopback port.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

E2E = Path(__file__).resolve().parents[2] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

from fakes import FakeHub, FakeModel  # noqa: E402 - needs the sys.path entry above

FIXTURES = Path(__file__).resolve().parents[1] / "planner" / "fixtures"
LLAMA_8B_PARAMETERS = {"BF16": 8_030_261_248}
TOKEN = "hf_fake_token_with_access"  # noqa: S105 - a fake token the fake Hub accepts


def fixture_config(name: str) -> dict[str, Any]:
    """A planner fixture's config.json."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def no_real_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call that forgets ``endpoint=`` hits a closed loopback port, never huggingface.co, and
    resolving any other host name fails the call before a packet leaves."""
    resolve = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            raise OSError(f"tests dial loopback only; refused to resolve {host!r}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    closed = "http://127.0.0.1:9"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        closed + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.fixture
def token() -> str:
    """A token the fake Hub grants access to its gated repos."""
    return TOKEN


@pytest.fixture
def llama() -> FakeModel:
    return FakeModel(
        "meta-llama/Llama-3.1-8B-Instruct",
        config=fixture_config("llama-3.1-8b"),
        parameters=LLAMA_8B_PARAMETERS,
        branches=("main", "v1.0"),
        tags=("llama", "conversational"),
        license="llama3.1",
    )


@pytest.fixture
def hub(llama: FakeModel) -> Iterator[FakeHub]:
    """A fake Hub with Llama 3.1 8B, a gated copy, and a repo whose config.json is broken."""
    models = [
        llama,
        FakeModel("acme/gated-llama", config=fixture_config("llama-3.1-8b"), gated="manual"),
        FakeModel("acme/broken", raw_config=b'{"architectures": ["LlamaForCausalLM"],'),
        FakeModel("acme/no-config", parameters={"BF16": 10}),
    ]
    with FakeHub(models, authorized={TOKEN}) as fake:
        yield fake
