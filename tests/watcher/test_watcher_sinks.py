"""Sinks against real local servers: Slack and CI webhooks over HTTP, e-mail over SMTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from watcher_fakes import Receiver

from dayzero.watcher.config import Sinks
from dayzero.watcher.sinks import Alert, deliver

ALERT = Alert(
    repo="acme/M-8B",
    sha="a" * 40,
    verdict="deployable",
    reason="LlamaForCausalLM is served",
    plan={"gpus": 1, "gpuKind": "h100-80gb", "nodes": 1, "tensorParallel": 1},
    action="created",
    name="acme-m-8b",
    mode="auto",
)


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.messages.append(message)


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_slack_and_webhook(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_TOKEN", "Bearer ci-secret")
    sinks = Sinks.model_validate(
        {
            "slack": {"webhookUrl": receiver.url},
            "webhook": {"url": receiver.url, "headerEnv": {"Authorization": "CI_TOKEN"}},
        }
    )
    results = deliver(sinks, [ALERT])
    assert results == [{"sink": "slack", "ok": True}, {"sink": "webhook", "ok": True}]
    slack, hook = receiver.bodies
    assert "acme/M-8B" in slack["text"]
    assert "deployable" in slack["text"]
    assert "created acme-m-8b" in slack["text"]
    assert hook["alerts"][0]["repo"] == "acme/M-8B"
    assert hook["alerts"][0]["plan"]["gpus"] == 1
    assert receiver.headers[1]["authorization"] == "Bearer ci-secret"


def test_email(smtp: tuple[Controller, Inbox]) -> None:
    controller, inbox = smtp
    sinks = Sinks.model_validate(
        {
            "email": {
                "host": "127.0.0.1",
                "port": controller.port,
                "from": "dayzero@example.test",
                "to": ["ml@example.test"],
            }
        }
    )
    assert deliver(sinks, [ALERT]) == [{"sink": "email", "ok": True}]
    [message] = inbox.messages
    assert "acme/M-8B (deployable)" in message["Subject"]
    assert message["To"] == "ml@example.test"
    assert "plan: 1 x h100-80gb" in message.get_payload()


def test_a_failing_sink_is_reported_not_raised() -> None:
    with Receiver(status=500) as failing:
        sinks = Sinks.model_validate({"slack": {"webhookUrl": failing.url}})
        [result] = deliver(sinks, [ALERT])
    assert result["ok"] is False
    assert "500" in result["error"]
    assert deliver(sinks, []) == []
