"""Plot the gateway benchmark's JSON: run by the bench tools venv's Python, which has matplotlib.

    <tools venv>/bin/python bench/gateway/plot.py RESULTS.json PLOT.png

It imports nothing of the project's (matplotlib is no dependency of dayzero's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"direct": "#888888", "dayzero": "#1f77b4", "litellm": "#d62728", "portkey": "#2ca02c"}


def _bars(ax: Any, names: list[str], series: dict[str, list[float | None]], unit: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=label, alpha=0.6 + 0.4 * (i == 0))
        for bar, v in zip(bars, values, strict=True):
            text = "n/a" if v is None else f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(unit)
    ax.legend(fontsize=8)


def main(source: str, target: str) -> None:
    data = json.loads(Path(source).read_text())
    summary = data["summary"]
    measured = [n for n, s in summary.items() if "unavailable" not in s]
    gateways = [n for n in measured if n != "direct"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))

    ax = axes[0][0]
    _bars(
        ax,
        gateways,
        {
            "p50": [summary[n].get("added_c1_p50_ms") for n in gateways],
            "p99": [summary[n].get("added_c1_p99_ms") for n in gateways],
        },
        "ms",
    )
    ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
    ax.set_title("Added latency at concurrency 1 (goal: p99 <= 1 ms, dashed)")

    ax = axes[0][1]
    rps = [summary[n].get("max_rps") for n in measured]
    bars = ax.bar(measured, [r or 0 for r in rps], color=[COLORS.get(n, "#555") for n in measured])
    for bar, name, v in zip(bars, measured, rps, strict=True):
        at = summary[name].get("max_rps_connections")
        label = "n/a" if v is None else f"{v:,.0f} (c={at})"
        ax.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.axhline(2500, color="black", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("requests/s (log)")
    ax.set_title("Max error-free requests/s on one core (goal 2,500, dashed)")

    ax = axes[1][0]
    for name in measured:
        sweep = data["targets"][name]["sweep"]
        xs = [r["connections"] for r in sweep]
        ys = [r["rps"] if r["errors"] == 0 else None for r in sweep]
        ax.plot(
            xs,
            [y if y is not None else float("nan") for y in ys],
            marker="o",
            label=name,
            color=COLORS.get(name),
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent connections (closed loop)")
    ax.set_ylabel("requests/s (log; runs with errors left out)")
    ax.set_title("Throughput by concurrency")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    _bars(
        ax,
        gateways,
        {
            "p50": [summary[n].get("added_ttft_p50_ms") for n in gateways],
            "p99": [summary[n].get("added_ttft_p99_ms") for n in gateways],
        },
        "ms",
    )
    ax.set_title("Added time to first token (streaming, concurrency 1)")

    load = data.get("load", {})
    fig.suptitle(
        f"Gateway benchmark ({data['mode']}), commit {data['commit']}, "
        f"{data['machine']['cpus']} x {data['machine']['cpu_model']}, "
        f"1-minute load at start {load.get('at_start', ['?'])[0]}\n{data['layout']['note']}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
