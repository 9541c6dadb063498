"""Sanity: every answer is non-empty English, ends by `stop` (not `length`), honours the stop
sequences and leaks no chat-template tokens.

A server on Hugging Face generate (``transformers serve``) keeps the stop string at the end of
the answer, where OpenAI strips it; both are honest stops. Text *after* a stop string is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .client import ChatClient, Outcome
from .language import identify
from .results import Item, SuiteReport, excerpt, pass_rate_report
from .spec import RunSpec

# Special tokens of the common chat templates (ChatML, Llama 2/3, Mistral, Phi, Gemma, Zephyr).
TEMPLATE_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text"
    r"|endoftext|eom_id|assistant|user|system|end)\|>"
    r"|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>|</?s>"
)


@dataclass(frozen=True)
class Prompt:
    """A sanity prompt; ``stop`` sequences are sent and must be honoured."""

    name: str
    content: str
    stop: tuple[str, ...] = ()
    check_language: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# Short factual questions: even a 135M model answers them in one sentence well within
# sanity_max_tokens, so `length` or a timeout says something about the server, not the prompt.
PROMPTS: tuple[Prompt, ...] = (
    Prompt("capital-france", "What is the capital of France? Answer in one sentence."),
    Prompt("capital-italy", "What is the capital of Italy? Answer in one sentence."),
    Prompt("water", "Write one sentence about why people drink water."),
    Prompt("greeting", "Greet a new colleague who joined the team today, in one sentence."),
    Prompt("hello", "Say hello in one short sentence."),
    # Two sentences asked for, the first "." must end the answer.
    Prompt("stop-sequence", "What do bees make? Answer in two sentences.", stop=(".",)),
)


def check(prompt: Prompt, outcome: Outcome, spec: RunSpec) -> list[str]:
    """Why this answer fails sanity; empty when it passes."""
    if not outcome.ok:
        return [outcome.error or f"HTTP {outcome.status}"]
    text = outcome.text
    if not text.strip():
        return ["empty or whitespace-only answer"]
    reasons: list[str] = []
    leaked = sorted({m.group(0) for m in TEMPLATE_TOKENS.finditer(text)})
    if leaked:
        reasons.append(f"chat-template tokens leaked: {', '.join(leaked)}")
    if outcome.finish_reason != "stop":
        reasons.append(f"finish_reason {outcome.finish_reason!r}, want 'stop'")
    body = text.rstrip()
    for stop in prompt.stop:
        at = body.find(stop)
        if at != -1 and at + len(stop) < len(body):
            reasons.append(f"continued past stop sequence {stop!r}")
    if prompt.check_language:
        want = spec.harness.language
        language, probability = identify(TEMPLATE_TOKENS.sub(" ", text))
        if language != want or probability < spec.harness.min_language_confidence:
            reasons.append(
                f"answer identified as {language!r} (p={probability:.2f}), want {want!r}"
            )
    return reasons


async def run(client: ChatClient, spec: RunSpec) -> SuiteReport:
    """Send every prompt once, concurrently, and judge the answers."""
    sampling = spec.sampling.model_dump(exclude_none=True)
    bodies = []
    for p in PROMPTS:
        body: dict[str, Any] = {
            "messages": [{"role": "user", "content": p.content}],
            "max_tokens": spec.harness.sanity_max_tokens,
            **sampling,
            **p.extra,
        }
        if p.stop:
            body["stop"] = list(p.stop)
        bodies.append(body)
    outcomes = await client.chat_many(bodies)
    items = []
    for prompt, outcome in zip(PROMPTS, outcomes, strict=True):
        reasons = check(prompt, outcome, spec)
        items.append(
            Item(
                name=prompt.name,
                passed=not reasons,
                reasons=reasons,
                status=outcome.status,
                seconds=outcome.total,
                answer=excerpt(outcome.text),
            )
        )
    return pass_rate_report("sanity", items, spec.suites.sanity.min_pass_rate)
