"""The flags of ``dayzero gauntlet run``: argparse only, so building the CLI's parser stays
cheap (the harness itself is imported when the subcommand runs)."""

from __future__ import annotations

import argparse

from .spec import IMPLEMENTED


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``dayzero gauntlet run``."""
    p.add_argument("--endpoint", help="OpenAI-compatible base URL (a deployment, or the gateway)")
    p.add_argument("--model", help="model name to send: a served name, or a gateway lane or tag")
    p.add_argument(
        "--suites",
        help=f"comma-separated suites to run (default: {','.join(IMPLEMENTED)}, quality only "
        "with --dataset, diff only with --dataset and a baseline in --spec); "
        "API names, e.g. sanity,latency,toolCalls,stability",
    )
    p.add_argument("--concurrency", type=int, help="requests in flight (default 4)")
    p.add_argument("--requests", type=int, help="measured latency requests (default 50)")
    p.add_argument("--warmup", type=int, help="latency warm-up requests (default 3)")
    p.add_argument("--max-tokens", type=int, help="max_tokens of latency requests (default 128)")
    p.add_argument("--p95-seconds", type=float, help="p95 latency gate (default 20)")
    p.add_argument("--max-seconds", type=float, help="max latency gate, hard (default 40)")
    p.add_argument("--timeout", type=float, help="bound on one request in seconds (default 60)")
    p.add_argument("--stability-requests", type=int, help="requests stability adds (default 20)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 0)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    p.add_argument(
        "--out", default="gauntlet-report", help="directory for the four reports and review.jsonl"
    )
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the key")
    p.add_argument("--spec", help="a RunSpec as YAML or JSON; flags override its fields")
    p.add_argument("--dataset", help="JSONL dataset of the quality suite (its sha256 is recorded)")
    p.add_argument("--model-sha", help="recorded in the report")
    p.add_argument("--engine", help="recorded in the report, e.g. vllm 0.33.0")
    p.add_argument("--image", help="recorded in the report")
    p.add_argument("--chat-template-hash", help="recorded in the report")
    p.add_argument(
        "--url-map",
        action="append",
        metavar="FROM=TO",
        help="rewrite the scheme://host[:port] prefix FROM of every endpoint in the spec "
        "(targets, baseline, judge) to TO; repeatable, e.g. "
        "http://gateway.dayzero.svc:8080=http://127.0.0.1:18080",
    )


def add_review_arguments(p: argparse.ArgumentParser) -> None:
    """The actions of ``dayzero gauntlet review``."""
    actions = p.add_subparsers(dest="review_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list the review items still open")
    listing.add_argument("--all", action="store_true", help="also items already decided")
    rec = actions.add_parser("record", help="record a human verdict on an item (append-only)")
    rec.add_argument("item", metavar="ITEM", help="the item's id, as `list` shows it")
    rec.add_argument(
        "--verdict",
        required=True,
        choices=("pass", "fail", "candidate", "baseline", "tie"),
        help="pass/fail (refusal, grade) or candidate/baseline/tie (pairwise)",
    )
    rec.add_argument("--by", required=True, help="who decided (recorded with the time)")
    rec.add_argument("--note", help="why, in a line")
    actions.add_parser(
        "apply", help="decide the report again with the recorded verdicts; exit as a run would"
    )
    for action in (listing, rec, actions.choices["apply"]):
        action.add_argument("--out", default="gauntlet-report", help="the run's report directory")
