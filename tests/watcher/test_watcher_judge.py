"""The judge: one verdict per release, in the order a person checks, with the plan attached."""

from __future__ import annotations

from typing import Any

from watcher_fakes import LLAMA_8B, fixture_config

from dayzero.planner import facts_from_config
from dayzero.watcher.config import Budget, Filters
from dayzero.watcher.judge import announced_architectures, judge, prefilter, version_key
from dayzero.watcher.release import GitHubRelease, HubRelease

BUDGET = Budget(gpu_kind="h100-80gb", max_gpus=8)


def release(
    repo: str = "acme/Model-8B-Instruct", fixture: str = "llama-3.1-8b", **kw: Any
) -> HubRelease:
    config = fixture_config(fixture) | kw.pop("config_patch", {})
    parameters = kw.pop("parameters", LLAMA_8B)
    values: dict[str, Any] = {
        "repo": repo,
        "sha": "a" * 40,
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "license": "apache-2.0",
        "parameters": parameters,
        "files": ("config.json", "model.safetensors"),
        "facts": facts_from_config(config, dict(parameters) or None),
    }
    return HubRelease(**(values | kw))


def test_deployable_with_plan() -> None:
    verdict = judge(release(), Filters(), BUDGET)
    assert verdict.kind == "deployable"
    assert verdict.plan is not None
    assert verdict.plan.gpus == 1
    assert "LlamaForCausalLM" in verdict.reason


def test_filters_by_name_license_and_size() -> None:
    filters = Filters(exclude=["-Base$", "-GGUF$"], licenses=["apache-2.0"], max_params_b=70)
    assert judge(release("acme/M-Base"), filters, BUDGET).kind == "filtered"
    assert judge(release("acme/M-GGUF"), filters, BUDGET).kind == "filtered"
    assert judge(release(license="llama3.1"), filters, BUDGET).kind == "filtered"
    big = release(fixture="llama-3.1-405b", parameters={"BF16": 405_853_388_800})
    verdict = judge(big, filters, BUDGET)
    assert (verdict.kind, "maxParamsB" in verdict.reason) == ("filtered", True)
    assert judge(release(), Filters(min_params_b=10), BUDGET).kind == "filtered"
    assert judge(release(), Filters(include=["^Other"]), BUDGET).kind == "filtered"
    assert prefilter(release(), filters) is None


def test_gated_before_anything_else_but_filters() -> None:
    gated = release(gated="manual", access_denied=True, facts=None)
    assert judge(gated, Filters(), BUDGET).kind == "gated"


def test_unsupported_reasons() -> None:
    fancy = release(config_patch={"architectures": ["FancyNewForCausalLM"]})
    verdict = judge(fancy, Filters(), BUDGET)
    assert verdict.kind == "unsupported"
    assert "FancyNewForCausalLM" in verdict.reason
    assert judge(release(pipeline_tag="text-to-image"), Filters(), BUDGET).kind == "unsupported"
    no_weights = release(parameters={}, files=("config.json", "model.bin"))
    assert "safetensors" in judge(no_weights, Filters(), BUDGET).reason
    invalid = release(invalid="config.json is not JSON", facts=None)
    assert judge(invalid, Filters(), BUDGET).reason == "config.json is not JSON"


def test_announced_architecture_and_transformers_fallback() -> None:
    fancy = release(config_patch={"architectures": ["FancyNewForCausalLM"]})
    verdict = judge(fancy, Filters(), BUDGET, announced={"FancyNewForCausalLM": "v9.0.0"})
    assert verdict.kind == "deployable"
    assert "v9.0.0" in verdict.reason
    fallback = judge(fancy, Filters(), BUDGET, transformers_fallback=True)
    assert fallback.kind == "deployable"
    assert "Transformers fallback" in fallback.reason


def test_too_large_for_the_budget() -> None:
    big = release(fixture="llama-3.1-405b", parameters={"BF16": 405_853_388_800})
    verdict = judge(big, Filters(), BUDGET)
    assert verdict.kind == "too_large"
    assert verdict.plan is not None
    assert verdict.plan.gpus == 16
    assert "maxGpus is 8" in verdict.reason
    assert judge(big, Filters(), Budget(max_gpus=16)).kind == "deployable"


def test_announced_architectures_from_newer_final_releases_only() -> None:
    releases = [
        GitHubRelease("vllm-project/vllm", "v0.1.0", body="Adds OldForCausalLM"),
        GitHubRelease("vllm-project/vllm", "v99.1.0", body="Adds LaterForCausalLM, FooForCausalLM"),
        GitHubRelease("vllm-project/vllm", "v99.0.0", body="New: FooForCausalLM (#1)"),
        GitHubRelease("vllm-project/vllm", "v99.2.0rc1", body="BarForCausalLM", prerelease=True),
    ]
    found = announced_architectures(releases, pinned="0.33.0")
    assert found == {"FooForCausalLM": "v99.0.0", "LaterForCausalLM": "v99.1.0"}
    assert version_key("v0.34.1") == (0, 34, 1)
