"""``dayzero plan``: a local config.json, a checkout, or a repo on the fake Hub (loopback only)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

import dayzero.hub  # noqa: F401 - pays huggingface-hub's import at collection, not in a timed test
from dayzero.cli import main

E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

from fakes import FakeHub, FakeModel, Fault  # noqa: E402 - e2e/ is package-less; path set above

FIXTURES = Path(__file__).parent / "planner" / "fixtures"
LLAMA_70B = FIXTURES / "llama-3.1-70b.json"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Hub: the default endpoint is a closed loopback port and other hosts don't resolve."""
    resolve = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"tests dial loopback only; refused to resolve {host!r}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    config = json.loads(LLAMA_70B.read_text())
    models = [
        FakeModel("meta-llama/Llama-3.1-70B", config=config, parameters={"BF16": 70_553_706_496}),
        FakeModel("acme/gated", config=config, gated="manual"),
        FakeModel("acme/mystery", config={**config, "architectures": ["MysteryForCausalLM"]}),
    ]
    with FakeHub(models, authorized={"hf_good"}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_local_config_json(capsys):
    assert main(["plan", str(LLAMA_70B), "--json"]) == 0
    out = _json(capsys)
    assert out["resolvedRevision"] is None
    assert out["architectures"] == ["LlamaForCausalLM"]
    assert out["supportedByVllm"] is True
    assert out["architectureSupport"] == "text_generation"
    assert out["vllmVersion"] == "0.33.0"
    plan = out["plan"]
    assert (plan["gpus"], plan["tensorParallel"], plan["pipelineParallel"]) == (4, 4, 1)
    assert plan["gpuKind"] == "h100-80gb"
    assert plan["weightsGiB"] > 100  # camelCase wire names, GiB spelled as on the CRD


def test_local_checkout_directory(tmp_path, capsys):
    (tmp_path / "config.json").write_text(LLAMA_70B.read_text())
    assert main(["plan", str(tmp_path), "--gpu", "h200-141gb", "--json"]) == 0
    plan = _json(capsys)["plan"]
    assert (plan["gpuKind"], plan["gpus"], plan["tensorParallel"]) == ("h200-141gb", 2, 2)


def test_options_reach_the_planner(capsys):
    args = ["plan", str(LLAMA_70B), "--json", "--max-model-len", "8192", "--tensor-parallel", "8"]
    assert main(args) == 0
    plan = _json(capsys)["plan"]
    assert (plan["maxModelLen"], plan["tensorParallel"], plan["gpus"]) == (8192, 8, 8)


def test_table_output_gives_the_reasons(capsys):
    assert main(["plan", str(LLAMA_70B)]) == 0
    out = capsys.readouterr().out
    assert "LlamaForCausalLM: served by vLLM 0.33.0" in out
    assert "tensorParallel 4 x pipelineParallel 1" in out
    assert "reasons:" in out
    assert "the fewest GPUs that fit" in out


def test_hub_repo_with_json(hub: FakeHub, capsys):
    repo = "meta-llama/Llama-3.1-70B"
    assert main(["plan", repo, "--json"]) == 0
    out = _json(capsys)
    assert out["revision"] == "main"
    assert out["resolvedRevision"] == hub.model(repo).sha
    assert out["plan"]["gpus"] == 4
    assert out["plan"]["tensorParallel"] == 4
    assert out["plan"]["parametersEstimated"] is False  # counted by the Hub
    assert not hub.requested_files(".safetensors")


def test_hub_repo_table_names_the_resolved_commit(hub: FakeHub, capsys):
    repo = "meta-llama/Llama-3.1-70B"
    sha = hub.model(repo).sha
    assert main(["plan", repo, "--revision", sha]) == 0
    assert f"{repo} @ {sha} -> {sha}" in capsys.readouterr().out


def test_hub_token_from_the_environment(hub: FakeHub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    assert main(["plan", "acme/gated", "--json"]) == 0
    assert _json(capsys)["plan"]["gpus"] == 4
    assert {r.token for r in hub.requests} == {"hf_good"}


def test_unsupported_architecture_is_planned_and_flagged(hub: FakeHub, capsys):
    assert main(["plan", "acme/mystery", "--json"]) == 0
    out = _json(capsys)
    assert (out["supportedByVllm"], out["architectureSupport"]) == (False, "unknown")
    assert main(["plan", "acme/mystery"]) == 0
    assert "NOT served by vLLM 0.33.0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["plan", str(LLAMA_70B), "--tensor-parallel", "3"], "tensorParallel"),
        (["plan", str(LLAMA_70B), "--revision", "main"], "revision"),
        (["plan", "no/such/path.json"], "source"),
        (["plan", "missing.json"], "source"),
    ],
)
def test_bad_input_exits_2_naming_the_field(args, field, capsys):
    assert main(args) == 2
    assert f"error: {field}:" in capsys.readouterr().err


def test_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert main(["plan", str(bad)]) == 2
    assert "config.hidden_size" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("repo", "fault", "reason"),
    [
        ("acme/gated", None, "GatedRepo"),
        ("acme/nope", None, "RepoNotFound"),
        ("meta-llama/Llama-3.1-70B", Fault.rate_limited(9), "RateLimited"),
        ("meta-llama/Llama-3.1-70B", Fault.server_error(503), "HubUnavailable"),
        ("meta-llama/Llama-3.1-70B", Fault.malformed_json(), "InvalidMetadata"),
    ],
)
def test_hub_errors_exit_3_with_the_reason(hub: FakeHub, repo, fault, reason, capsys):
    if fault is not None:
        hub.set_fault(repo, fault)
    assert main(["plan", repo]) == 3
    assert f"dayzero plan: {reason}:" in capsys.readouterr().err


def test_missing_revision_exits_3(hub: FakeHub, capsys):
    assert main(["plan", "meta-llama/Llama-3.1-70B", "--revision", "v9"]) == 3
    assert "RevisionNotFound" in capsys.readouterr().err


def test_unknown_gpu_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["plan", str(LLAMA_70B), "--gpu", "tpu-v5"])
    assert info.value.code == 2
