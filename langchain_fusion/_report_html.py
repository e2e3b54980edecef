"""A fusion report as one self-contained HTML page (inline CSS, JS and SVG; no fetch).

`report_html(report)` is what `fusion ask --html FILE` writes and what `fusion serve` shows
at `GET /fusions/{id}`: the answer, a timeline of every call, the debate graph, the verdict
or comparison (each judge's verdict and their agreement with a panel), tokens and cost per
model, and the settings used.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from langchain_fusion._report_svg import STATUS_COLOURS, debate_svg, timeline_svg

CSS = """
:root { --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#fafafa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0; padding: 24px; }
main { max-width: 980px; margin: 0 auto; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 26px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.sub { color: var(--muted); margin: 0 0 12px; }
.chips span { display: inline-block; background: #fff; border: 1px solid var(--line);
  border-radius: 12px; padding: 2px 10px; margin: 0 6px 6px 0; }
.answer { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px;
  white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 600; }
.legend span { margin-right: 14px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 4px; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg .tick, svg .never, svg .round { fill: var(--muted); }
svg .grid { stroke: var(--line); }
svg .cut { fill: none; stroke: #374151; stroke-width: 2; }
svg .cross { stroke: #d64545; stroke-width: 2.5; }
svg .first-token { stroke: #111827; stroke-width: 2; }
svg .edge { stroke: #9aa3af; stroke-width: 1.2; }
svg .node-label { fill: #fff; font-weight: 600; font-size: 11px; }
svg g.call.active .bar { stroke: #111827; stroke-width: 2; }
tr.active { background: #eef2ff; }
ul { margin: 4px 0 8px 18px; padding: 0; }
details pre { background: #fff; border: 1px solid var(--line); padding: 10px;
  overflow: auto; max-height: 400px; }
"""

# Hovering a bar highlights its member's row in the table, and the other way round.
JS = """
(function () {
  var calls = document.querySelectorAll('svg.timeline g.call');
  var rows = document.querySelectorAll('tr[data-name]');
  function mark(name, on) {
    calls.forEach(function (g) { g.classList.toggle('active', on && g.dataset.name === name); });
    rows.forEach(function (r) { r.classList.toggle('active', on && r.dataset.name === name); });
  }
  calls.forEach(function (g) {
    g.addEventListener('mouseenter', function () { mark(g.dataset.name, true); });
    g.addEventListener('mouseleave', function () { mark(g.dataset.name, false); });
  });
  rows.forEach(function (r) {
    r.addEventListener('mouseenter', function () { mark(r.dataset.name, true); });
    r.addEventListener('mouseleave', function () { mark(r.dataset.name, false); });
  });
})();
"""


def _cost(value: Any) -> str:
    return "-" if value is None else f"${float(value):.6f}"


def _tokens(usage: dict[str, Any] | None) -> str:
    usage = usage or {}
    return f"{usage.get('input_tokens', 0)} / {usage.get('output_tokens', 0)}"


def _status(status: Any) -> str:
    colour = STATUS_COLOURS.get(str(status), "#6b7280")
    return f'<span class="status" style="color:{colour}">{escape(str(status))}</span>'


def _calls_table(report: dict[str, Any]) -> str:
    rows = [
        "<tr><th>member</th><th>model</th><th>status</th><th>calls</th>"
        "<th>latency</th><th>tokens in / out</th><th>cost</th><th>error</th></tr>"
    ]
    entries = [*report.get("candidates", [])]
    judge = report.get("judge")
    if judge:
        entries.append({"name": "judge", **judge})
    for c in entries:
        rows.append(
            f'<tr data-name="{escape(str(c.get("name")))}" '
            f'data-status="{escape(str(c.get("status")))}">'
            f"<td>{escape(str(c.get('name')))}</td><td>{escape(str(c.get('model', '')))}</td>"
            f"<td>{_status(c.get('status'))}</td><td class='num'>{c.get('calls', 0)}</td>"
            f"<td class='num'>{float(c.get('latency_s') or 0):.3f}s</td>"
            f"<td class='num'>{_tokens(c.get('usage'))}</td>"
            f"<td class='num'>{_cost(c.get('cost_usd'))}</td>"
            f"<td>{escape(str(c.get('error') or ''))}</td></tr>"
        )
    return "<table class='calls'>" + "".join(rows) + "</table>"


def _models_table(report: dict[str, Any]) -> str:
    rows = [
        "<tr><th>model</th><th>calls</th><th>input tokens</th><th>output tokens</th>"
        "<th>cost</th></tr>"
    ]
    for model, usage in (report.get("usage_by_model") or {}).items():
        rows.append(
            f"<tr><td>{escape(str(model))}</td><td class='num'>{usage.get('calls', '')}</td>"
            f"<td class='num'>{usage.get('input_tokens', 0)}</td>"
            f"<td class='num'>{usage.get('output_tokens', 0)}</td>"
            f"<td class='num'>{_cost(usage.get('cost_usd'))}</td></tr>"
        )
    usage = report.get("usage") or {}
    complete = "" if report.get("cost_complete", True) else " (incomplete)"
    rows.append(
        f"<tr><th>total</th><th></th><th class='num'>{usage.get('input_tokens', 0)}</th>"
        f"<th class='num'>{usage.get('output_tokens', 0)}</th>"
        f"<th class='num'>{_cost(report.get('cost_usd'))}{complete}</th></tr>"
    )
    return "<table class='models'>" + "".join(rows) + "</table>"


def _list(title: str, items: Any) -> str:
    if not items:
        return ""
    lis = "".join(
        f"<li>{escape(item if isinstance(item, str) else json.dumps(item))}</li>" for item in items
    )
    return f"<h3>{escape(title)}</h3><ul>{lis}</ul>"


def _verdict(report: dict[str, Any]) -> str:
    parts = []
    if report.get("judge_fallback"):
        parts.append(
            "<p><b>The judge failed</b>; the answer fell back to "
            f"{escape(str(report.get('winner') or 'a member'))}.</p>"
        )
    if report.get("winner"):
        parts.append(f"<p>Winner: <b>{escape(str(report['winner']))}</b></p>")
    if report.get("rationale"):
        parts.append(f"<p>Rationale: {escape(str(report['rationale']))}</p>")
    for vote in report.get("votes") or []:
        members = ", ".join(vote.get("members", []))
        parts.append(f"<p>Vote: {escape(members)} ({vote.get('count')})</p>")
    comparison = report.get("comparison") or {}
    for key in ("consensus", "contradictions", "unique_insights", "gaps"):
        parts.append(_list(key.replace("_", " "), comparison.get(key)))
    verdicts = report.get("verdicts") or []
    if verdicts:
        rows = "".join(
            f"<tr><td>{escape(str(v.get('judge', '')))}</td>"
            f"<td>{escape(str(v.get('model', '')))}</td>"
            f"<td class='num'>{escape(str(v.get('pass', '')))}</td>"
            f"<td>{escape(str(v.get('winner') or '-'))}</td>"
            f"<td>{_status(v.get('status', 'ok'))} {escape(str(v.get('error') or ''))}</td></tr>"
            for v in verdicts
        )
        parts.append(
            "<table class='verdicts'><tr><th>judge</th><th>model</th><th>pass</th>"
            f"<th>winner</th><th>status</th></tr>{rows}</table>"
        )
    if report.get("judge_agreement") is not None:
        parts.append(f"<p>Judge agreement: {escape(str(report['judge_agreement']))}</p>")
    if report.get("mode") == "debate":
        stopped = (report.get("debate") or {}).get("stopped_early")
        parts.append(
            f"<p>{report.get('rounds')} debate round(s)"
            + (", stopped early: the members agreed" if stopped else "")
            + "; the judge wrote the answer.</p>"
        )
    return "".join(parts) or "<p>No verdict recorded.</p>"


def _settings(settings: dict[str, Any] | None, report: dict[str, Any]) -> str:
    shown = {"mode": report.get("mode"), **(settings or {})}
    rows = "".join(
        f"<tr><td>{escape(str(k))}</td><td>{escape(json.dumps(v, default=str))}</td></tr>"
        for k, v in shown.items()
        if v not in (None, {}, [])
    )
    return f"<table class='settings'>{rows}</table>"


def report_html(
    report: dict[str, Any],
    *,
    answer: str | None = None,
    settings: dict[str, Any] | None = None,
    title: str | None = None,
) -> str:
    """The fusion report as one self-contained HTML page.

    Args:
        report: A fusion report (`response_metadata["fusion"]`).
        answer: The fused answer's text, shown first.
        settings: The fusion settings used, shown at the end (the mode is always shown).
        title: What the page is about (e.g. the virtual model's name).

    Returns:
        The page: inline CSS, JS and SVG only; it loads nothing from the network.
    """
    timings = report.get("timings") or {}
    total = float(timings.get("total_s") or 0.0)
    usage = report.get("usage") or {}
    heading = escape(title or f"llm-fusion · {report.get('mode', '?')}")
    chips = "".join(
        f"<span>{escape(text)}</span>"
        for text in (
            f"mode {report.get('mode')}",
            f"{total:.3f}s",
            f"{usage.get('total_tokens', 0)} tokens",
            f"cost {_cost(report.get('cost_usd'))}",
            *([f"id {report['id']}"] if report.get("id") else []),
        )
    )
    legend = "".join(
        f'<span><i style="background:{c}"></i>{s}</span>' for s, c in STATUS_COLOURS.items()
    )
    timeline = report.get("timeline") or []
    debate = report.get("debate") or {}
    sections = [
        f"<h1>{heading}</h1><p class='sub'>A fusion report</p><div class='chips'>{chips}</div>",
        "<h2>Answer</h2>",
        f"<div class='answer'>{escape(answer) if answer else '<i>(not recorded)</i>'}</div>",
        "<h2>Timeline</h2>",
        f"<p class='legend'>{legend}<span>| first token</span><span>⟩ cut: cancelled</span>"
        "<span>✕ failed</span></p>",
        timeline_svg(timeline, total) if timeline else "<p>No timeline recorded.</p>",
        "<h2>Calls</h2>",
        _calls_table(report),
    ]
    if debate.get("nodes"):
        sections += ["<h2>Debate graph</h2>", debate_svg(debate)]
    sections += [
        "<h2>Verdict</h2>",
        _verdict(report),
        "<h2>Tokens and cost per model</h2>",
        _models_table(report),
        "<h2>Settings</h2>",
        _settings(settings, report),
        "<details><summary>The whole report (JSON)</summary><pre>"
        + escape(json.dumps(report, indent=2, default=str))
        + "</pre></details>",
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{heading}</title><style>{CSS}</style></head><body><main>"
        + "".join(sections)
        + f"</main><script>{JS}</script></body></html>"
    )
