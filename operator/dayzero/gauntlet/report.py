"""The run's outputs: JSON results, JUnit XML (one testsuite per suite, one testcase per item),
one self-contained HTML report with an inline SVG latency histogram, and a Prometheus text file
(for node-exporter's textfile collector or a push) of the verdicts and figures.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .run import RunReport

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


def to_metrics(report: RunReport) -> str:
    """Prometheus text format: one-hot verdicts (a state set) and every suite figure."""
    registry = CollectorRegistry()
    labels = {"model": report.model, "model_sha": report.provenance.model_sha or ""}
    run = Gauge(
        "dayzero_gauntlet_verdict",
        "1 for the run's verdict, 0 for the others",
        [*labels, "verdict"],
        registry=registry,
    )
    suite = Gauge(
        "dayzero_gauntlet_suite_verdict",
        "1 for each suite's verdict, 0 for the others",
        [*labels, "suite", "verdict"],
        registry=registry,
    )
    figure = Gauge(
        "dayzero_gauntlet_figure",
        "A suite's key figure (seconds, rates, counts), named as in results.json",
        [*labels, "suite", "figure"],
        registry=registry,
    )
    duration = Gauge(
        "dayzero_gauntlet_duration_seconds", "Wall time of the run", [*labels], registry=registry
    )
    for verdict in VERDICTS:
        run.labels(**labels, verdict=verdict).set(float(report.verdict == verdict))
    for r in report.results:
        for verdict in VERDICTS:
            suite.labels(**labels, suite=r.suite, verdict=verdict).set(float(r.verdict == verdict))
        for name, value in sorted(r.figures.items()):
            figure.labels(**labels, suite=r.suite, figure=name).set(value)
    duration.labels(**labels).set(report.duration_seconds)
    return generate_latest(registry).decode()


def to_json(report: RunReport) -> str:
    """The results, camelCase-free: the harness's own field names."""
    return json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def to_junit(report: RunReport) -> str:
    """JUnit XML: CI systems show a failed item with the reasons as its message."""
    root = ET.Element("testsuites", name=f"gauntlet {report.model}")
    for r in report.results:
        cases = r.items or []
        failures = sum(not i.passed for i in cases) or (r.verdict == "Fail")
        suite = ET.SubElement(
            root,
            "testsuite",
            name=r.suite,
            tests=str(max(len(cases), 1)),
            failures=str(int(failures) if r.verdict != "Error" else 0),
            errors=str(int(r.verdict == "Error")),
        )
        props = ET.SubElement(suite, "properties")
        for key, value in sorted(r.figures.items()):
            ET.SubElement(props, "property", name=key, value=f"{value:g}")
        verdict_case = ET.SubElement(suite, "testcase", classname=r.suite, name="verdict")
        if r.verdict == "Fail":
            ET.SubElement(verdict_case, "failure", message=r.reason or "failed")
        elif r.verdict == "Error":
            ET.SubElement(verdict_case, "error", message=r.reason or "error")
        for item in cases:
            case = ET.SubElement(suite, "testcase", classname=r.suite, name=item.name)
            if item.seconds is not None:
                case.set("time", f"{item.seconds:.3f}")
            if not item.passed:
                ET.SubElement(case, "failure", message="; ".join(item.reasons))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


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


def to_html(report: RunReport) -> str:
    """One self-contained page: verdicts, figures, failing items, provenance, histogram."""
    e = html.escape
    colour = {"Pass": "#1a7f37", "Fail": "#cf222e", "Error": "#9a6700", "Skipped": "#57606a"}
    meta = {
        "endpoint": report.endpoint,
        "model": report.model,
        "started": report.started_at.isoformat(),
        "duration": f"{report.duration_seconds:.1f}s",
        "concurrency": str(report.concurrency),
        "seed": str(report.seed),
        "sampling": json.dumps(report.sampling.model_dump(exclude_none=True)),
        **{k: v or "unknown" for k, v in report.provenance.model_dump().items()},
        "harness": report.harness_version,
    }
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta.items())
    sections = []
    for r in report.results:
        figures = "".join(
            f"<tr><th>{e(k)}</th><td>{v:.4g}</td></tr>" for k, v in sorted(r.figures.items())
        )
        failing = "".join(
            f"<tr><td>{e(i.name)}</td><td>{i.status}</td><td>{e('; '.join(i.reasons))}</td>"
            f"<td><code>{e(i.answer)}</code></td></tr>"
            for i in r.items
            if not i.passed
        )
        plot = histogram_svg(r.latencies) if r.latencies else ""
        sections.append(
            f'<section><h2>{e(r.suite)}: <span style="color:{colour[r.verdict]}">'
            f"{r.verdict}</span></h2>"
            + (f"<p>{e(r.reason)}</p>" if r.reason else "")
            + plot
            + f"<table>{figures}</table>"
            + (
                "<h3>Failing items</h3><table><tr><th>item</th><th>status</th><th>why</th>"
                f"<th>answer</th></tr>{failing}</table>"
                if failing
                else ""
            )
            + "</section>"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>gauntlet {e(report.model)}: {report.verdict}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}"
        "</style></head><body>"
        f'<h1>gauntlet {e(report.model)}: <span style="color:{colour[report.verdict]}">'
        f"{report.verdict}</span></h1>"
        + (f"<p>{e(report.reason)}</p>" if report.reason else "")
        + f"<table>{rows}</table>"
        + "".join(sections)
        + "</body></html>\n"
    )
