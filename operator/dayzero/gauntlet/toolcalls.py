"""Tool calls: the named tool exists, its arguments parse as JSON and validate against the
tool's schema, ``tool_choice`` is respected (auto, none, required, a named function), and a
request for two independent lookups gets parallel calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from .client import ChatClient, Outcome
from .results import Item, SuiteReport, excerpt, pass_rate_report
from .spec import RunSpec


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


WEATHER = _tool(
    "get_weather",
    "Current weather in a city.",
    {
        "city": {"type": "string", "minLength": 1},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
)
TIME = _tool("get_time", "Current local time in a city.", {"city": {"type": "string"}})
TOOLS = [WEATHER, TIME]


@dataclass(frozen=True)
class Case:
    """A tool-call request and what a correct answer does."""

    name: str
    prompt: str
    tool_choice: Any
    min_calls: int = 1
    max_calls: int | None = None
    must_call: str | None = None


CASES: tuple[Case, ...] = (
    Case("auto", "What is the weather in Paris, in celsius? Use a tool.", "auto"),
    Case("required", "I need the weather in Oslo in fahrenheit.", "required"),
    Case(
        "named",
        "What time is it in Tokyo?",
        {"type": "function", "function": {"name": "get_time"}},
        must_call="get_time",
    ),
    Case("none", "Say hello in one sentence.", "none", min_calls=0, max_calls=0),
    Case(
        "parallel",
        "Get the weather in Paris and in Tokyo, both in celsius: call the tool once per city.",
        "auto",
        min_calls=2,
    ),
)


def check(case: Case, outcome: Outcome) -> list[str]:
    """Why this answer fails the case; empty when it passes."""
    if not outcome.ok:
        return [outcome.error or f"HTTP {outcome.status}"]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    calls = outcome.tool_calls
    reasons: list[str] = []
    if len(calls) < case.min_calls:
        reasons.append(f"{len(calls)} tool call(s), want at least {case.min_calls}")
    if case.max_calls is not None and len(calls) > case.max_calls:
        reasons.append(f"{len(calls)} tool call(s) despite tool_choice {case.tool_choice!r}")
    for n, call in enumerate(calls):
        label = f"call {n} ({call.name or 'no name'})"
        if call.name not in schemas:
            reasons.append(f"{label}: no tool named {call.name!r}")
            continue
        if case.must_call and call.name != case.must_call:
            reasons.append(f"{label}: tool_choice named {case.must_call!r}")
        try:
            arguments = json.loads(call.arguments)
        except ValueError as e:
            reasons.append(f"{label}: arguments are not JSON ({e}): {call.arguments[:80]!r}")
            continue
        try:
            jsonschema.validate(arguments, schemas[call.name])
        except jsonschema.ValidationError as e:
            reasons.append(f"{label}: arguments do not match the schema: {e.message}")
    return reasons


async def run(client: ChatClient, spec: RunSpec) -> SuiteReport:
    """Send every case once, concurrently, and judge the calls."""
    sampling = spec.sampling.model_dump(exclude_none=True)
    bodies = [
        {
            "messages": [{"role": "user", "content": c.prompt}],
            "tools": TOOLS,
            "tool_choice": c.tool_choice,
            "max_tokens": 256,
            **sampling,
        }
        for c in CASES
    ]
    outcomes = await client.chat_many(bodies)
    items = []
    for case, outcome in zip(CASES, outcomes, strict=True):
        reasons = check(case, outcome)
        shown = outcome.text or json.dumps(
            [{"name": c.name, "arguments": c.arguments} for c in outcome.tool_calls]
        )
        items.append(
            Item(
                name=case.name,
                passed=not reasons,
                reasons=reasons,
                status=outcome.status,
                seconds=outcome.total,
                answer=excerpt(shown),
            )
        )
    return pass_rate_report("toolCalls", items, spec.suites.tool_calls.min_pass_rate)
