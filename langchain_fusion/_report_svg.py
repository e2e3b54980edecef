"""The report page's drawings as inline SVG: the timeline of calls and the debate graph."""

from __future__ import annotations

from html import escape
from typing import Any

STATUS_COLOURS = {
    "ok": "#2e9d5b",
    "error": "#d64545",
    "timeout": "#e08a1e",
    "cancelled": "#8a93a0",
    "skipped": "#c4c9d0",
}
LABEL_W = 210
ROW_H = 24
BAR_H = 14
PLOT_W = 640
AXIS_H = 26


def _colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "#6b7280")


def _label(entry: dict[str, Any]) -> str:
    who = "judge" if entry.get("role") == "judge" else str(entry.get("name", "?"))
    step = str(entry.get("step", ""))
    round_ = entry.get("round") or 0
    where = f" r{round_}" if round_ else ""
    hedge = f" ({entry['hedge']} copy)" if entry.get("hedge") else ""
    return f"{who} · {step}{where}{hedge}"


def _ticks(span: float) -> list[float]:
    steps = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
    step = next((s for s in steps if span / s <= 8), 300.0)
    count = int(span / step) + 1
    return [round(i * step, 6) for i in range(count + 1) if i * step <= span * 1.0001]


def timeline_svg(entries: list[dict[str, Any]], total_s: float) -> str:
    """One bar per call from its start to its end, coloured by status.

    A tick marks a streamed call's first token; a cancelled call's bar ends in a cut (a
    zig-zag edge), a failed one in a cross. Calls that never started are listed without a
    bar.
    """
    ends = [e["end_s"] for e in entries if e.get("end_s") is not None]
    span = max([total_s or 0.0, *ends, 0.001])
    scale = PLOT_W / span
    height = AXIS_H + ROW_H * len(entries) + 8
    width = LABEL_W + PLOT_W + 20
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="timeline of calls" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for tick in _ticks(span):
        x = LABEL_W + tick * scale
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{AXIS_H - 6}" x2="{x:.1f}" '
            f'y2="{height - 4}"/><text class="tick" x="{x:.1f}" y="{AXIS_H - 10}" '
            f'text-anchor="middle">{tick:g}s</text>'
        )
    for i, entry in enumerate(entries):
        y = AXIS_H + i * ROW_H
        status = str(entry.get("status", "?"))
        title = escape(
            f"{_label(entry)}: {status}"
            + (f" — {entry['error']}" if entry.get("error") else "")
            + (
                f" ({entry['start_s']:.3f}s → {entry['end_s']:.3f}s)"
                if entry.get("start_s") is not None and entry.get("end_s") is not None
                else " (never started)"
            )
        )
        parts.append(
            f'<g class="call status-{escape(status)}" data-name="{escape(str(entry.get("name")))}" '
            f'data-status="{escape(status)}" data-role="{escape(str(entry.get("role")))}">'
            f"<title>{title}</title>"
            f'<text class="label" x="{LABEL_W - 8}" y="{y + BAR_H - 2}" '
            f'text-anchor="end">{escape(_label(entry))}</text>'
        )
        start, end = entry.get("start_s"), entry.get("end_s")
        if start is None or end is None:
            parts.append(
                f'<text class="never" x="{LABEL_W + 4}" y="{y + BAR_H - 2}">not started</text></g>'
            )
            continue
        x0 = LABEL_W + start * scale
        w = max(2.0, (end - start) * scale)
        colour = _colour(status)
        parts.append(
            f'<rect class="bar" x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}" '
            f'rx="3" fill="{colour}"/>'
        )
        x1 = x0 + w
        if status == "cancelled":  # cut: a zig-zag edge where the straggler was stopped
            zig = " ".join(
                f"{x1 + (3 if k % 2 else 0):.1f},{y + k * BAR_H / 4:.1f}" for k in range(5)
            )
            parts.append(f'<polyline class="cut" points="{zig}"/>')
        elif status in ("error", "timeout"):
            cy = y + BAR_H / 2
            parts.append(
                f'<path class="cross" d="M{x1 + 3:.1f},{cy - 5:.1f} l8,10 m0,-10 l-8,10"/>'
            )
        if entry.get("first_token_s") is not None:
            xf = LABEL_W + entry["first_token_s"] * scale
            parts.append(
                f'<line class="first-token" x1="{xf:.1f}" y1="{y - 2}" x2="{xf:.1f}" '
                f'y2="{y + BAR_H + 2}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def debate_svg(debate: dict[str, Any]) -> str:
    """The debate graph: a column per round, a node per turn, an edge per answer seen."""
    nodes = debate.get("nodes") or []
    if not nodes:
        return ""
    rounds = sorted({int(n.get("round", 0)) for n in nodes})
    members: list[str] = []
    for n in nodes:
        if n.get("member") not in members:
            members.append(str(n.get("member")))
    col_w, row_h, r, left = 150.0, 44.0, 15.0, 150.0
    width = left + 10 + col_w * len(rounds)
    height = 40 + row_h * len(members)
    where: dict[str, tuple[float, float]] = {}
    for n in nodes:
        x = left + col_w * rounds.index(int(n.get("round", 0)))
        y = 40 + row_h * members.index(str(n.get("member")))
        where[str(n.get("id"))] = (x, y)
    parts = [
        f'<svg class="debate" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="debate graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#9aa3af"/></marker></defs>'
    ]
    for i, round_ in enumerate(rounds):
        parts.append(
            f'<text class="round" x="{left + col_w * i}" y="16" text-anchor="middle">'
            f"round {round_}</text>"
        )
    for i, member in enumerate(members):
        parts.append(
            f'<text class="label" x="{left - r - 10}" y="{40 + row_h * i + 4}" '
            f'text-anchor="end">{escape(member)}</text>'
        )
    for edge in debate.get("edges") or []:
        source, target = where.get(str(edge[0])), where.get(str(edge[1]))
        if source is None or target is None:
            continue
        parts.append(
            f'<line class="edge" x1="{source[0] + r:.1f}" y1="{source[1]:.1f}" '
            f'x2="{target[0] - r:.1f}" y2="{target[1]:.1f}" marker-end="url(#arrow)"/>'
        )
    for n in nodes:
        x, y = where[str(n.get("id"))]
        status = str(n.get("status", "ok"))
        parts.append(
            f'<g class="node status-{escape(status)}"><title>{escape(str(n.get("id")))}: '
            f"{escape(status)}</title>"
            f'<circle cx="{x}" cy="{y}" r="{r}" fill="{_colour(status)}"/>'
            f'<text x="{x}" y="{y + 4}" text-anchor="middle" class="node-label">'
            f"{escape(str(n.get('round', 0)))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
