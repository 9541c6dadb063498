"""The run's outputs: JSON results, JUnit XML (one testsuite per target and suite, one testcase
per item), one self-contained HTML report (the ranking, inline SVG latency histograms,
candidate-vs-baseline plots per suite and a cost plot), and a Prometheus text file (for
node-exporter's textfile collector or a push) of every target's verdicts and figures.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .results import RunReport, SuiteReport, TargetReport

JSON_NAME, JUNIT_NAME, HTML_NAME = "results.json", "junit.xml", "report.html"
METRICS_NAME = "metrics.prom"
VERDICTS = ("Pass", "Fail", "Error", "Skipped")


def write_all(report: RunReport, out: Path) -> list[Path]:
    """Write the four files into ``out`` (created if needed); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / JSON_NAME, out / JUNIT_NAME, out / HTML_NAME, out / METRICS_NAME]
    paths[0].write_text(to_json(report))
    paths[1].write_text(to_junit(report))
    paths[2].write_text(to_html(report))
    paths[3].write_text(to_metrics(report))
    return paths


def read_report(out: Path) -> RunReport:
    """The ``results.json`` a run wrote into ``out``."""
    return RunReport.model_validate_json((out / JSON_NAME).read_text())


def _everyone(report: RunReport) -> list[tuple[str, TargetReport]]:
    """Targets then the baseline, each with its role."""
    roles = [("candidate", t) for t in report.targets]
    return roles + ([("baseline", report.baseline)] if report.baseline else [])


def to_metrics(report: RunReport) -> str:
    """Prometheus text format: one-hot verdicts (a state set) and every suite figure, for every
    target (and the baseline), labelled with the target's name, model and model SHA."""
    registry = CollectorRegistry()
    keys = ["target", "role", "model", "model_sha"]
    overall = Gauge(
        "dayzero_gauntlet_run_verdict",
        "1 for the whole run's verdict (the winner's), 0 for the others",
        ["verdict", "winner"],
        registry=registry,
    )
    for verdict in VERDICTS:
        overall.labels(verdict=verdict, winner=report.winner or "").set(
            float(report.verdict == verdict)
        )
    run = Gauge(
        "dayzero_gauntlet_verdict",
        "1 for the target's verdict, 0 for the others",
        [*keys, "verdict"],
        registry=registry,
    )
    suite = Gauge(
        "dayzero_gauntlet_suite_verdict",
        "1 for each suite's verdict, 0 for the others",
        [*keys, "suite", "verdict"],
        registry=registry,
    )
    figure = Gauge(
        "dayzero_gauntlet_figure",
        "A suite's key figure (seconds, rates, counts), named as in results.json",
        [*keys, "suite", "figure"],
        registry=registry,
    )
    rank = Gauge(
        "dayzero_gauntlet_rank",
        "The target's place in the ranking (1 is best)",
        keys,
        registry=registry,
    )
    target_figure = Gauge(
        "dayzero_gauntlet_target_figure",
        "A target's run-level figure (requests, passRate, tokens, costUsd)",
        [*keys, "figure"],
        registry=registry,
    )
    duration = Gauge(
        "dayzero_gauntlet_duration_seconds", "Wall time of the run", [], registry=registry
    )
    for role, t in _everyone(report):
        labels = {
            "target": t.name,
            "role": role,
            "model": t.model,
            "model_sha": t.provenance.model_sha or "",
        }
        for verdict in VERDICTS:
            run.labels(**labels, verdict=verdict).set(float(t.verdict == verdict))
        if t.rank is not None:
            rank.labels(**labels).set(t.rank)
        for name, value in sorted(t.figures.items()):
            target_figure.labels(**labels, figure=name).set(value)
        for r in t.suites:
            for verdict in VERDICTS:
                suite.labels(**labels, suite=r.suite, verdict=verdict).set(
                    float(r.verdict == verdict)
                )
            for name, value in sorted(r.figures.items()):
                figure.labels(**labels, suite=r.suite, figure=name).set(value)
    duration.set(report.duration_seconds)
    return generate_latest(registry).decode()


def to_json(report: RunReport) -> str:
    """The results, camelCase-free: the harness's own field names."""
    return json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def to_junit(report: RunReport) -> str:
    """JUnit XML: CI systems show a failed item with the reasons as its message."""
    root = ET.Element("testsuites", name=f"gauntlet {report.model}")
    many = len(report.targets) > 1 or report.baseline is not None
    for role, t in _everyone(report):
        for r in t.suites:
            _junit_suite(
                root,
                r,
                f"{t.name}/{r.suite}" if many else r.suite,
                f"{role}.{t.name}" if many else r.suite,
                _what_ran(report, t),
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _what_ran(report: RunReport, t: TargetReport) -> dict[str, str]:
    """The target, model, provenance and sampling, for each testsuite's properties."""
    known = {k: v for k, v in t.provenance.model_dump().items() if v}
    sampling = json.dumps(report.sampling.model_dump(exclude_none=True), sort_keys=True)
    return {"target": t.name, "model": t.model, **known, "sampling": sampling}


def _junit_suite(
    root: ET.Element, r: SuiteReport, name: str, classname: str, about: dict[str, str]
) -> None:
    cases = r.items or []
    failures = sum(not i.passed for i in cases) or (r.verdict == "Fail")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(max(len(cases), 1)),
        failures=str(int(failures) if r.verdict != "Error" else 0),
        errors=str(int(r.verdict == "Error")),
    )
    props = ET.SubElement(suite, "properties")
    for key, text in about.items():
        ET.SubElement(props, "property", name=key, value=text)
    for key, value in sorted(r.figures.items()):
        ET.SubElement(props, "property", name=key, value=f"{value:g}")
    verdict_case = ET.SubElement(suite, "testcase", classname=classname, name="verdict")
    if r.verdict == "Fail":
        ET.SubElement(verdict_case, "failure", message=r.reason or "failed")
    elif r.verdict == "Error":
        ET.SubElement(verdict_case, "error", message=r.reason or "error")
    for item in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=item.name)
        if item.seconds is not None:
            case.set("time", f"{item.seconds:.3f}")
        if not item.passed:
            ET.SubElement(case, "failure", message="; ".join(item.reasons))


def histogram_svg(
    values: list[float], *, bins: int = 20, width: int = 480, height: int = 160
) -> str:
    """A latency histogram as inline SVG, axis in seconds."""
    if not values:
        return "<p>no latencies measured</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1e-9
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / span * bins), bins - 1)] += 1
    top = max(counts)
    bar = width / bins
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 20 - c / top * (height - 30):.1f}" '
        f'width="{bar - 1:.1f}" height="{c / top * (height - 30):.1f}" fill="#4a7bd0">'
        f"<title>{c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="latency histogram">{rects}'
        f'<text x="0" y="{height - 4}" font-size="11">{low:.3f}s</text>'
        f'<text x="{width}" y="{height - 4}" font-size="11" text-anchor="end">{high:.3f}s</text>'
        f'<text x="{width / 2}" y="{height - 4}" font-size="11" text-anchor="middle">'
        f"total latency, n={len(values)}</text></svg>"
    )


HEADLINE = {
    "sanity": ("passRate", "pass rate"),
    "compliance": ("refusalRate", "refusal rate"),
    "quality": ("meanScore", "mean score"),
    "latency": ("p95Seconds", "p95 seconds"),
    "toolCalls": ("passRate", "pass rate"),
    "stability": ("throttled", "throttled requests"),
    "diff": ("meanDifference", "candidate - baseline"),
}
"""The figure each suite's comparison plot shows."""
COLOUR = {"Pass": "#1a7f37", "Fail": "#cf222e", "Error": "#9a6700", "Skipped": "#57606a"}


def bars_svg(
    title: str, bars: list[tuple[str, float, str]], *, unit: str = "", width: int = 480
) -> str:
    """Horizontal bars as inline SVG: (label, value, colour); negative values go left of 0."""
    if not bars:
        return ""
    row, left, height = 22, 150, 22 * len(bars) + 30
    low = min(0.0, *(v for _, v, _ in bars))
    high = max(0.0, *(v for _, v, _ in bars))
    span = (high - low) or 1.0
    scale = (width - left - 70) / span
    zero = left + (0 - low) * scale
    rects = []
    for n, (label, value, fill) in enumerate(bars):
        y = 20 + n * row
        x = zero + min(value, 0) * scale
        rects.append(
            f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">'
            f"{html.escape(label)}</text>"
            f'<rect x="{x:.1f}" y="{y}" width="{max(abs(value) * scale, 1):.1f}" height="{row - 6}"'
            f' fill="{fill}"><title>{html.escape(label)}: {value:.4g}{unit}</title></rect>'
            f'<text x="{zero + max(value, 0) * scale + 4:.1f}" y="{y + 14}" font-size="11">'
            f"{value:.4g}{unit}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}"><text x="0" y="12" font-size="12">'
        f"{html.escape(title)}</text>{''.join(rects)}"
        f'<line x1="{zero:.1f}" y1="16" x2="{zero:.1f}" y2="{height - 8}" stroke="#333"/></svg>'
    )


def comparison_svgs(report: RunReport) -> str:
    """Per suite, each target's headline figure beside the baseline's; then estimated cost."""
    everyone = _everyone(report)
    plots = []
    for suite, (figure, label) in HEADLINE.items():
        bars = [
            (
                f"{t.name} ({role})" if role == "baseline" else t.name,
                r.figures[figure],
                "#8c959f" if role == "baseline" else "#4a7bd0",
            )
            for role, t in everyone
            for r in t.suites
            if r.suite == suite and figure in r.figures
        ]
        if bars:
            plots.append(bars_svg(f"{suite}: {label}", bars))
    costs = [
        (t.name, t.figures["costUsd"], "#8c959f" if role == "baseline" else "#bf8700")
        for role, t in everyone
        if "costUsd" in t.figures
    ]
    if costs:
        plots.append(bars_svg("estimated cost of the run (USD)", costs, unit=" $"))
    return "".join(plots)


def _suite_section(r: SuiteReport) -> str:
    e = html.escape
    figures = "".join(
        f"<tr><th>{e(k)}</th><td>{v:.4g}</td></tr>" for k, v in sorted(r.figures.items())
    )
    failing = "".join(
        f"<tr><td>{e(i.name)}</td><td>{i.status}</td><td>{e('; '.join(i.reasons))}</td>"
        f"<td><code>{e(i.answer)}</code></td></tr>"
        for i in r.items
        if not i.passed or i.review
    )
    plot = histogram_svg(r.latencies) if r.latencies else ""
    return (
        f'<section><h3>{e(r.suite)}: <span style="color:{COLOUR[r.verdict]}">'
        f"{r.verdict}</span>{f' ({e(r.decision)})' if r.decision else ''}</h3>"
        + (f"<p>{e(r.reason)}</p>" if r.reason else "")
        + plot
        + f"<table>{figures}</table>"
        + (
            "<h4>Failing and reviewed items</h4><table><tr><th>item</th><th>status</th>"
            f"<th>why</th><th>answer</th></tr>{failing}</table>"
            if failing
            else ""
        )
        + "</section>"
    )


def _target_section(role: str, t: TargetReport) -> str:
    e = html.escape
    meta = {
        "endpoint": t.endpoint,
        "model": t.model,
        "family": t.family or "unknown",
        **{k: v or "unknown" for k, v in t.provenance.model_dump().items()},
        **{k: f"{v:.6g}" for k, v in sorted(t.figures.items())},
    }
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta.items())
    return (
        f'<section><h2>{e(role)} {e(t.name)}: <span style="color:{COLOUR[t.verdict]}">'
        f"{t.verdict}</span>{f' (rank {t.rank})' if t.rank else ''}</h2>"
        + (f"<p>{e(t.reason)}</p>" if t.reason else "")
        + f"<table>{rows}</table>"
        + "".join(_suite_section(r) for r in t.suites)
        + "</section>"
    )


def _ranking(report: RunReport) -> str:
    e = html.escape
    rows = []
    for t in sorted(report.targets, key=lambda t: t.rank or 0):
        figs = {r.suite: r.figures for r in t.suites}
        cells = [
            str(t.rank),
            e(t.name),
            e(t.model),
            f'<span style="color:{COLOUR[t.verdict]}">{t.verdict}</span>',
            *(
                f"{v:.4g}" if v is not None else "-"
                for v in (
                    figs.get("diff", {}).get("differenceLower95"),
                    figs.get("quality", {}).get("meanScore"),
                    figs.get("latency", {}).get("p95Seconds"),
                    t.figures.get("costUsd"),
                )
            ),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = (
        "<tr><th>rank</th><th>target</th><th>model</th><th>verdict</th><th>diff lower 95%</th>"
        "<th>quality</th><th>p95 s</th><th>cost $</th></tr>"
    )
    return f"<h2>Ranking</h2><table>{head}{''.join(rows)}</table>"


def to_html(report: RunReport) -> str:
    """One self-contained page: verdict and winner, the ranking, candidate-vs-baseline and cost
    plots, then each target's provenance, suites, figures and failing items."""
    e = html.escape
    meta = {
        "started": report.started_at.isoformat(),
        "duration": f"{report.duration_seconds:.1f}s",
        "concurrency": str(report.concurrency),
        "seed": str(report.seed),
        "sampling": json.dumps(report.sampling.model_dump(exclude_none=True)),
        "winner": report.winner or "none",
        "judge": f"{report.judge.model} ({report.judge.family}) at {report.judge.endpoint}"
        if report.judge
        else "none",
        "review items open": str(report.review_open),
        "harness": report.harness_version,
    }
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta.items())
    many = len(report.targets) > 1 or report.baseline is not None
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>gauntlet {e(report.model)}: {report.verdict}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}"
        "</style></head><body>"
        f'<h1>gauntlet {e(report.model)}: <span style="color:{COLOUR[report.verdict]}">'
        f"{report.verdict}</span></h1>"
        + (f"<p>{e(report.reason)}</p>" if report.reason else "")
        + f"<table>{rows}</table>"
        + (_ranking(report) + "<h2>Compared</h2>" + comparison_svgs(report) if many else "")
        + "".join(_target_section(role, t) for role, t in _everyone(report))
        + "</body></html>\n"
    )
