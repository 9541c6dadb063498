"""The Anthropic fake speaks the real Messages protocol: the official ``anthropic`` client reads
its messages, its typed event stream (tool input assembled from ``input_json_delta``) and its
errors. Driven from a thread (the client blocks) while the fake serves on the test's loop."""

import asyncio

import anthropic
import pytest
from gateway_fakes import FakeAnthropic, fakes

# The client imports its transport on first use: pay for that at collection, not in a timed test.
anthropic.Anthropic(base_url="http://127.0.0.1:9", api_key="none").close()

MODEL = "claude-fake-1"  # not in the SDK's deprecation table, which warns by date
HI = [{"role": "user", "content": "hi"}]
TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def official(url):
    return anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0)


def test_message_and_stream_parse(run):
    async def scenario():
        async with fakes(FakeAnthropic()) as (fake,):

            def drive():
                with official(fake.url) as client:
                    message = client.messages.create(model=MODEL, max_tokens=64, messages=HI)
                    events = list(
                        client.messages.create(
                            model=MODEL, max_tokens=64, messages=HI, tools=[TOOL], stream=True
                        )
                    )
                    with client.messages.stream(
                        model=MODEL, max_tokens=64, messages=HI, tools=[TOOL]
                    ) as stream:
                        final = stream.get_final_message()
                return message, events, final

            message, events, final = await asyncio.to_thread(drive)
            assert message.content[0].text == "hello from claude"
            assert (message.stop_reason, message.usage.input_tokens) == ("end_turn", 12)
            kinds = [e.type for e in events]
            assert kinds[0] == "message_start"
            assert kinds[-2:] == ["message_delta", "message_stop"]
            deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
            assert deltas.count("input_json_delta") == 3
            assert final.content[0].text == "hello from claude "
            assert final.content[1].input == {"city": "Paris"}
            assert (final.stop_reason, final.usage.output_tokens) == ("tool_use", 6)

    run(scenario())


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("bad_request", anthropic.BadRequestError),
        ("500", anthropic.InternalServerError),
        ("overloaded", anthropic.APIStatusError),
    ],
)
def test_errors_are_what_the_client_reports(run, mode, error):
    async def scenario():
        async with fakes(FakeAnthropic(mode)) as (fake,):

            def drive():
                with official(fake.url) as client:
                    client.messages.create(model=MODEL, max_tokens=64, messages=HI)

            with pytest.raises(error) as e:
                await asyncio.to_thread(drive)
            assert e.value.body["error"]["type"].endswith("_error")

    run(scenario())


def test_an_error_event_ends_the_stream_with_the_clients_error(run):
    async def scenario():
        async with fakes(FakeAnthropic("error_mid")) as (fake,):
            seen = []

            def drive():
                with official(fake.url) as client:
                    for event in client.messages.create(
                        model=MODEL, max_tokens=64, messages=HI, stream=True
                    ):
                        seen.append(event.type)

            with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
                await asyncio.to_thread(drive)
            assert seen == ["message_start"]

    run(scenario())
