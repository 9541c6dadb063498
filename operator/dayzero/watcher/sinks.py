"""Where verdicts are told: a Slack incoming webhook, e-mail over SMTP, a generic CI webhook.

A sink failing never fails the run: its error is reported in the summary, and the other sinks
still send. Each alert names the repo, the verdict and why, the plan, and what was created.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from .config import Sinks

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Alert:
    """One judged release, as the sinks report it."""

    repo: str
    sha: str
    verdict: str
    reason: str
    plan: Mapping[str, Any] | None = None
    """A summary of the planner's plan (gpus, layout, weights)."""
    action: str = "none"
    """What the watcher did: created, suspended, committed, exists, none..."""
    name: str | None = None
    """The ModelDeployment (or gitops file) made for it."""
    mode: str = "alert"

    def text(self) -> str:
        lines = [
            f"*{self.repo}* @ {self.sha[:12]}: *{self.verdict}*",
            f"why: {self.reason}",
        ]
        if self.plan:
            p = self.plan
            lines.append(
                f"plan: {p.get('gpus')} x {p.get('gpuKind')} on {p.get('nodes')} node(s), "
                f"TP{p.get('tensorParallel')} x PP{p.get('pipelineParallel')}, "
                f"{p.get('weightsGiB')} GiB of weights, maxModelLen {p.get('maxModelLen')}"
            )
        did = f"{self.action} {self.name}" if self.name else self.action
        lines.append(f"action ({self.mode} mode): {did}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "sha": self.sha,
            "verdict": self.verdict,
            "reason": self.reason,
            "plan": dict(self.plan) if self.plan else None,
            "action": self.action,
            "name": self.name,
            "mode": self.mode,
        }


def send_slack(url: str, alerts: list[Alert], client: httpx.Client) -> None:
    text = "\n\n".join(a.text() for a in alerts)
    response = client.post(url, json={"text": f"dayzero watcher: {len(alerts)} release(s)\n{text}"})
    response.raise_for_status()


def send_webhook(
    url: str, alerts: list[Alert], client: httpx.Client, headers: Mapping[str, str]
) -> None:
    body = {"source": "dayzero-watcher", "alerts": [a.to_json() for a in alerts]}
    response = client.post(url, json=body, headers=dict(headers))
    response.raise_for_status()


def send_email(
    host: str,
    port: int,
    sender: str,
    to: list[str],
    alerts: list[Alert],
    *,
    starttls: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> None:
    message = EmailMessage()
    names = ", ".join(f"{a.repo} ({a.verdict})" for a in alerts[:3])
    more = f" and {len(alerts) - 3} more" if len(alerts) > 3 else ""
    message["Subject"] = f"dayzero watcher: {names}{more}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content("\n\n".join(a.text().replace("*", "") for a in alerts) + "\n")
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
        if starttls:
            smtp.starttls()
        if username:
            smtp.login(username, password or "")
        smtp.send_message(message)


def deliver(
    sinks: Sinks, alerts: list[Alert], client: httpx.Client | None = None
) -> list[dict[str, Any]]:
    """Send ``alerts`` to every configured sink; one result per sink: ``{sink, ok, error?}``."""
    if not alerts:
        return []
    results: list[dict[str, Any]] = []
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_S)
    try:
        if sinks.slack is not None:
            slack_url = sinks.slack.webhook_url
            results.append(_attempt("slack", lambda: send_slack(slack_url, alerts, http)))
        if sinks.webhook is not None:
            hook = sinks.webhook
            headers = {name: os.environ.get(env, "") for name, env in hook.header_env.items()}
            results.append(
                _attempt("webhook", lambda: send_webhook(hook.url, alerts, http, headers))
            )
        if sinks.email is not None:
            mail = sinks.email
            results.append(
                _attempt(
                    "email",
                    lambda: send_email(
                        mail.host,
                        mail.port,
                        mail.from_,
                        mail.to,
                        alerts,
                        starttls=mail.starttls,
                        username=os.environ.get(mail.username_env) if mail.username_env else None,
                        password=os.environ.get(mail.password_env) if mail.password_env else None,
                    ),
                )
            )
    finally:
        if own:
            http.close()
    return results


def _attempt(sink: str, send: Callable[[], None]) -> dict[str, Any]:
    try:
        send()
    except (httpx.HTTPError, smtplib.SMTPException, OSError) as e:
        return {"sink": sink, "ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"sink": sink, "ok": True}
