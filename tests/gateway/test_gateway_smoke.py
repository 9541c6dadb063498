"""Smoke: the gateway answers a chat completion through a fake upstream."""

from gateway_fakes import CHAT, document, serve, upstreams


def test_chat_completion_through_one_backend(run, tmp_path):
    async def scenario():
        async with upstreams("ok") as (up,):
            doc = document([{"name": "a", "url": up.url, "model": "m-a"}])
            async with serve(doc, tmp_path) as gw:
                status, headers, body = await gw.post("/v1/chat/completions", CHAT)
                assert status == 200, body
                assert headers["x-dayzero-backend"] == "a"
                assert body["choices"][0]["message"]["content"] == f"from {up.url}"
                assert up.requests[0]["model"] == "m-a"

    run(scenario())
