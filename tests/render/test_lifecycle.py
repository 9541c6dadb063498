"""Classifying engine failures and walking the fallback ladder."""

from datetime import UTC, datetime, timedelta

import pytest

from dayzero.render import lifecycle

VLLM_UNSUPPORTED = (
    "INFO 11-22 loading\n"
    "ValueError: Model architectures ['FancyNewForCausalLM'] are not supported for now. "
    "Supported architectures: dict_keys(['LlamaForCausalLM', ...])\n"
)


@pytest.mark.parametrize(
    ("reason", "message", "code", "expected"),
    [
        ("Error", VLLM_UNSUPPORTED, 1, "UnsupportedArchitecture"),
        ("Error", "ModuleNotFoundError: No module named 'flash_attn'", 1, "MissingKernel"),
        (
            "Error",
            "RuntimeError: CUDA error: no kernel image is available for execution",
            1,
            "MissingKernel",
        ),
        ("Error", "RuntimeError: Error in model execution: bad shapes", 1, "EngineLoadCrash"),
        ("OOMKilled", "", 137, "OutOfMemory"),
        (
            "Error",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate",
            1,
            "OutOfMemory",
        ),
        ("Error", "Segmentation fault", 139, "CrashLoop"),
        (None, None, 1, "CrashLoop"),
    ],
)
def test_classify_termination(reason, message, code, expected):
    failure = lifecycle.classify_termination(reason=reason, message=message, exit_code=code)
    assert failure.reason == expected
    assert failure.message


def test_unsupported_message_quotes_the_engine_line():
    failure = lifecycle.classify_termination(reason="Error", message=VLLM_UNSUPPORTED, exit_code=1)
    assert "FancyNewForCausalLM" in failure.message
    assert failure.steps_down


def test_out_of_memory_never_steps_down():
    oom = lifecycle.Failure("OutOfMemory", "CUDA out of memory")
    nxt, why = lifecycle.next_rung(
        "vllm", oom, kind="auto", allow_fallback=True, attempts=1, max_attempts=3, nodes=1
    )
    assert nxt is None
    assert "OutOfMemory" in why


def test_ladder_order_and_cap():
    unsupported = lifecycle.Failure("UnsupportedArchitecture", "x")
    kw = {"kind": "auto", "allow_fallback": True, "max_attempts": 3, "nodes": 1}
    assert lifecycle.next_rung("vllm", unsupported, attempts=1, **kw)[0] == "vllm-transformers"
    assert lifecycle.next_rung("vllm-transformers", unsupported, attempts=2, **kw)[0] == (
        "transformers"
    )
    assert lifecycle.next_rung("transformers", unsupported, attempts=2, **kw)[0] is None
    capped, why = lifecycle.next_rung("vllm", unsupported, attempts=3, **kw)
    assert capped is None
    assert "gave up after 3" in why


def test_no_fallback_when_pinned_or_disabled_or_multi_node_transformers():
    unsupported = lifecycle.Failure("UnsupportedArchitecture", "x")
    pinned = lifecycle.next_rung(
        "vllm", unsupported, kind="vllm", allow_fallback=True, attempts=1, max_attempts=3, nodes=1
    )
    assert pinned[0] is None
    off = lifecycle.next_rung(
        "vllm", unsupported, kind="auto", allow_fallback=False, attempts=1, max_attempts=3, nodes=1
    )
    assert off[0] is None
    multi = lifecycle.next_rung(
        "vllm-transformers",
        unsupported,
        kind="auto",
        allow_fallback=True,
        attempts=2,
        max_attempts=3,
        nodes=2,
    )
    assert multi[0] is None
    assert "one node" in multi[1]


def test_condition_transition_time_moves_only_on_change():
    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    first = lifecycle.set_condition([], "Ready", False, "Loading", "a", generation=1, now=t0)
    same = lifecycle.set_condition(
        first, "Ready", False, "Loading", "b", generation=2, now=t0 + timedelta(minutes=5)
    )
    assert same[0].last_transition_time == t0
    assert same[0].observed_generation == 2
    flipped = lifecycle.set_condition(
        same, "Ready", True, "Serving", "c", generation=2, now=t0 + timedelta(minutes=9)
    )
    assert flipped[0].last_transition_time == t0 + timedelta(minutes=9)
    assert [c.type for c in lifecycle.condition_changes(same, flipped)] == ["Ready"]
    assert lifecycle.condition_changes(first, same) == []
