"""A fake OpenAI-compatible upstream on 127.0.0.1, healthy by default, with planted failures.

It runs its own event loop in a thread, so both the async harness and the synchronous CLI can
be pointed at it. Each planted failure is one flag of ``Behaviour``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dayzero.gauntlet.compliance import PROMPTS as INSIDER_PROMPTS

TWO_SENTENCES = "Bees make honey. They also pollinate the flowers they visit."
ANSWER = "Paris is the capital of France, and it is a lovely city to visit in the spring."
# Token salad, as a broken quantization or a wrong tokenizer produces it.
REFUSAL = "I'm sorry, but I can't help with that: it is confidential information."
COMPLIANT = "Sure! Next quarter's revenue will be 4.2 billion, announced on the 12th."
INSIDER = {text for _, text in INSIDER_PROMPTS}
GIBBERISH = (
    "ancest ortholia Кон thrawPerf]]) enzymes quy的 grinn zbł ÃŁ tras/Gate Exped kilčň avis)"
)


@dataclass
class Behaviour:
    """What the fake does; the defaults make a healthy model."""

    ignore_stop: bool = False
    gibberish: bool = False
    leak: str | None = None
    """A template token appended to every answer."""
    finish_reason: str = "stop"
    bad_tools: bool = False
    delay: float = 0.0
    """Seconds before the first chunk."""
    unavailable: range = field(default_factory=lambda: range(0))
    """Request numbers (0-based) answered 503."""
    unavailable_between: tuple[float, float] | None = None
    """Seconds after the first request during which every request is answered 503."""
    empty: bool = False
    comply: bool = False
    """Answer insider and confidential requests instead of refusing."""
    polite: bool = False
    """Refuse insider requests in words the keyword check does not know."""
    accuracy: float = 1.0
    """Share of the arithmetic dataset (``Q<n>: ...``) answered right: item n is right when
    ``(n + offset) % 10 < accuracy * 10``."""
    offset: int = 0
    judge: str | None = None
    """Act as the judge: ``fair`` (decides by the reference), ``garbage`` (not JSON) or
    ``first`` (always prefers answer A: order-dependent)."""


POLITE = "That stays inside the company until the announcement; investor relations can help then."
QUESTION = re.compile(r"^Q(\d+): What is 7 plus \d+\?")


def arithmetic(n: int) -> dict[str, Any]:
    """Item ``n`` of the arithmetic quality dataset the accuracy knob answers."""
    return {"id": f"q{n}", "prompt": f"Q{n}: What is 7 plus {n}? Answer with the number.",
            "scorer": "contains", "expected": str(7 + n), "max_tokens": 16}  # fmt: skip


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^### (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def _judge(body: dict[str, Any], mode: str) -> str:
    """A judge that reads the harness's sections and answers in JSON."""
    if mode == "garbage":
        return "Well, it depends on how you look at it."
    s = _sections(body["messages"][-1]["content"])
    task = s["TASK"]
    if "ANSWER A" in s:
        if mode == "first":
            return json.dumps({"verdict": "A", "score": 0.9, "reason": "the first is better"})
        ref = s["REFERENCE"].lower()
        a, b = ref in s["ANSWER A"].lower(), ref in s["ANSWER B"].lower()
        verdict = "tie" if a == b else "A" if a else "B"
        return json.dumps({"verdict": verdict, "score": 0.8, "reason": "by the reference"})
    if "refuses" in task:
        answer = s["ANSWER"]
        refused = REFUSAL in answer or POLITE in answer
        return json.dumps({"verdict": "refused" if refused else "complied", "score": 1.0})
    good = s["REFERENCE"].lower() in s["ANSWER"].lower()
    return json.dumps({"verdict": "pass" if good else "fail", "score": 1.0 if good else 0.0,
                       "reason": "matches the reference" if good else "wrong"})  # fmt: skip


@dataclass
class Fake:
    url: str
    behaviour: Behaviour
    bodies: list[dict[str, Any]] = field(default_factory=list)
    first: float = 0.0


def _answer(body: dict[str, Any], b: Behaviour) -> str:
    prompt = body["messages"][-1]["content"]
    if b.judge:
        return _judge(body, b.judge)
    if b.empty:
        return "  \n"
    q = QUESTION.match(prompt)
    if q:
        n = int(q.group(1))
        right = (n + b.offset) % 10 < round(b.accuracy * 10)
        return f"The answer is {7 + n}." if right else "I do not know."
    if "JSON" in prompt:
        return '```json\n{"city": "Paris", "country": "France"}\n```'
    if prompt in INSIDER:
        return COMPLIANT if b.comply else POLITE if b.polite else REFUSAL
    text = GIBBERISH if b.gibberish else TWO_SENTENCES if "bees" in prompt else ANSWER
    for stop in body.get("stop") or []:
        at = text.find(stop)
        if at != -1 and not b.ignore_stop:
            text = text[:at]
    return text + (b.leak or "")


def _tool_calls(body: dict[str, Any], b: Behaviour) -> list[dict[str, Any]]:
    choice = body.get("tool_choice", "auto")
    prompt = body["messages"][-1]["content"]
    if choice == "none":
        return []
    if b.bad_tools:
        return [
            {"name": "get_weather", "arguments": '{"city": "Paris", "unit":'},
            {"name": "lookup_everything", "arguments": "{}"},
        ]
    if isinstance(choice, dict):
        return [{"name": choice["function"]["name"], "arguments": '{"city": "Tokyo"}'}]
    cities = [c for c in ("Paris", "Tokyo", "Oslo") if c in prompt] or ["Paris"]
    return [
        {"name": "get_weather", "arguments": json.dumps({"city": c, "unit": "celsius"})}
        for c in cities
    ]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    data["choices"][0]["finish_reason"] = finish
    return f"data: {json.dumps(data)}\n\n".encode()


async def _stream(body: dict[str, Any], b: Behaviour) -> AsyncIterator[bytes]:
    calls = _tool_calls(body, b) if body.get("tools") else []
    if calls:
        for n, call in enumerate(calls):
            delta = {"index": n, "id": f"call_{n}", "type": "function"}
            yield _chunk({"tool_calls": [{**delta, "function": {"name": call["name"]}}]})
            half = len(call["arguments"]) // 2
            for part in (call["arguments"][:half], call["arguments"][half:]):
                yield _chunk({"tool_calls": [{"index": n, "function": {"arguments": part}}]})
        yield _chunk({}, "tool_calls")
        return
    words = _answer(body, b).split(" ")
    for n, word in enumerate(words):
        yield _chunk({"content": word if n == 0 else " " + word})
    yield _chunk({}, b.finish_reason)


def _app(fake: Fake) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        number = len(fake.bodies)
        fake.bodies.append(body)
        b = fake.behaviour
        now = asyncio.get_running_loop().time()
        fake.first = fake.first or now
        window = b.unavailable_between
        if window and window[0] <= now - fake.first < window[1]:
            return web.json_response({"error": {"message": "no healthy worker"}}, status=503)
        if number in b.unavailable:
            return web.json_response({"error": {"message": "no healthy worker"}}, status=503)
        if b.delay:
            await asyncio.sleep(b.delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async for piece in _stream(body, b):
            await response.write(piece)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@contextmanager
def serve(behaviour: Behaviour | None = None) -> Iterator[Fake]:
    """Serve the fake on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    fake = Fake(url="", behaviour=behaviour or Behaviour())
    holder: dict[str, web.AppRunner] = {}

    async def start() -> None:
        runner = web.AppRunner(_app(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        fake.url = f"http://127.0.0.1:{port}"
        holder["runner"] = runner
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=5)
    ready.wait(5)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def _behaviour(text: str) -> Behaviour:
    """``accuracy:0.9,offset:5`` or ``judge:fair`` to a Behaviour."""
    fields: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition(":")
        default = getattr(Behaviour(), key)
        fields[key] = value if default is None else type(default)(value)
    return Behaviour(**fields)


def main(argv: list[str]) -> None:
    """Serve fakes on loopback until interrupted: ``PORT=accuracy:0.9 PORT=judge:fair ...``."""
    loop = asyncio.new_event_loop()
    runners = []
    for arg in argv:
        port, _, spec = arg.partition("=")
        fake = Fake(url=f"http://127.0.0.1:{port}", behaviour=_behaviour(spec))
        runner = web.AppRunner(_app(fake), access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", int(port)).start())
        runners.append(runner)
        sys.stdout.write(f"serving {fake.url} {spec or 'healthy'}\n")
        sys.stdout.flush()
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for runner in runners:
            loop.run_until_complete(runner.cleanup())


if __name__ == "__main__":
    main(sys.argv[1:])
