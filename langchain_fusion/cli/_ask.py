"""`fusion ask`: one question, the fused answer and a compact report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from langchain_fusion.cli._provider import build_fusion, provider_for

if TYPE_CHECKING:
    from langchain_fusion.chat_models import FusionChatModel

# -- live progress ----------------------------------------------------------------------------


def progress_tracer(stream: TextIO) -> Any:
    """A tracer that redraws one status line on `stream` as member and judge calls go."""
    from langchain_core.tracers.base import BaseTracer
    from langchain_core.tracers.schemas import Run

    class Progress(BaseTracer):
        """Shows `name: state` for each member and the judge; runs inline (it only prints)."""

        run_inline = True

        def __init__(self) -> None:
            super().__init__(_schema_format="original+chat")  # chat model runs, as such
            self.started = time.monotonic()
            self.states: dict[str, str] = {}
            self.calls: dict[str, int] = {}

        def _persist_run(self, run: Run) -> None:
            pass

        def _who(self, run: Run) -> str | None:
            for tag in run.tags or []:
                if tag.startswith("fusion:member:"):
                    return tag.removeprefix("fusion:member:")
                if tag.startswith("fusion:judge:"):
                    return "judge"
            return None

        def _set(self, run: Run, state: str) -> None:
            who = self._who(run)
            if who is None:
                return
            if state == "...":
                self.calls[who] = self.calls.get(who, 0) + 1
            self.states[who] = state
            self.draw()

        def draw(self) -> None:
            parts = []
            for who, state in self.states.items():
                calls = self.calls.get(who, 1)
                parts.append(f"{who} {state}" + (f" x{calls}" if calls > 1 else ""))
            line = f"[{time.monotonic() - self.started:5.1f}s] " + " | ".join(parts)
            stream.write("\r\x1b[K" + line)
            stream.flush()

        def clear(self) -> None:
            stream.write("\r\x1b[K")
            stream.flush()

        def _on_chat_model_start(self, run: Run) -> None:
            self._set(run, "...")

        def _on_llm_start(self, run: Run) -> None:
            self._set(run, "...")

        def _on_llm_end(self, run: Run) -> None:
            self._set(run, "ok")

        def _on_llm_error(self, run: Run) -> None:
            error = (run.error or "").strip()
            self._set(run, "cancelled" if "CancelledError" in error else "error")

    return Progress()


# -- output -----------------------------------------------------------------------------------


def _status(entry: dict[str, Any]) -> str:
    calls = entry.get("calls", 1)
    return str(entry.get("status", "-")) + (f" x{calls}" if calls > 1 else "")


def _cost(value: Any) -> str:
    return "-" if value is None else f"${value:.6f}"


def _tokens(usage: dict[str, Any] | None) -> str:
    return str((usage or {}).get("total_tokens", 0))


def verdict_line(report: dict[str, Any]) -> str:
    """What the judge decided, in one line."""
    mode = report.get("mode")
    if report.get("judge_fallback"):
        return f"verdict: the judge failed; fell back to {report.get('winner') or 'a member'}"
    if mode in ("best_of", "vote"):
        line = f"verdict: winner {report.get('winner')}"
        if report.get("rationale"):
            line += f" ({report['rationale']})"
        if mode == "vote" and report.get("votes"):
            groups = ", ".join(f"{'+'.join(v['members'])}: {v['count']}" for v in report["votes"])
            line += f"; votes {groups}"
        return line
    if mode == "merge":
        comparison = report.get("comparison") or {}
        counts = ", ".join(
            f"{len(comparison.get(k) or [])} {k.replace('_', ' ')}"
            for k in ("consensus", "contradictions", "unique_insights", "gaps")
        )
        return f"verdict: merged by the judge ({counts})"
    if mode == "debate":
        agreed = " (members agreed)" if report.get("agreed") else ""
        return f"verdict: written by the judge after {report.get('rounds')} debate rounds{agreed}"
    return f"verdict: {mode}"


def format_report(report: dict[str, Any], usage: dict[str, Any] | None) -> str:
    """The compact report: a row per member and the judge, the verdict, the totals."""
    rows = [("member", "status", "latency", "tokens", "cost")]
    for c in report.get("candidates", []):
        rows.append(
            (
                c["name"],
                _status(c),
                f"{c.get('latency_s') or 0:.2f}s",
                _tokens(c.get("usage")),
                _cost(c.get("cost_usd")),
            )
        )
    judge = report.get("judge") or {}
    if judge:
        rows.append(
            (
                f"judge {judge.get('model', '')}".strip(),
                _status(judge),
                f"{judge.get('latency_s') or 0:.2f}s",
                _tokens(judge.get("usage")),
                _cost(judge.get("cost_usd")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  "
        f"{r[3]:>{widths[3]}}  {r[4]:>{widths[4]}}"
        for r in rows
    ]
    errors = [
        f"  {c['name']}: {c['error']}"
        for c in report.get("candidates", [])
        if c.get("error") and c.get("status") != "ok"
    ]
    if judge.get("error"):
        errors.append(f"  judge: {judge['error']}")
    usage = usage or report.get("usage") or {}
    total = report.get("timings", {}).get("total_s", 0.0)
    cost = report.get("cost_usd")
    lines.append(verdict_line(report))
    if errors:
        lines.append("errors:")
        lines.extend(errors)
    lines.append(
        f"total: {total:.2f}s, {usage.get('total_tokens', 0)} tokens "
        f"({usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out), "
        f"cost {_cost(cost)}{'' if report.get('cost_complete', True) else ' (incomplete)'}"
    )
    return "\n".join(lines)


def _slugs(value: str | None) -> list[str] | None:
    if value is None:
        return None
    slugs = [s.strip() for s in value.split(",") if s.strip()]
    if not slugs:
        raise ValueError("--pool is empty: give comma-separated slugs, e.g. openai/gpt-4o,...")
    return slugs


async def _run(fusion: FusionChatModel, prompt: str, live: bool) -> Any:
    callbacks = []
    tracer = progress_tracer(sys.stderr) if live else None
    if tracer is not None:
        callbacks.append(tracer)
    try:
        return await fusion.ainvoke(prompt, config={"callbacks": callbacks})
    finally:
        if tracer is not None:
            tracer.clear()


def write_page(
    path: str | None, report: dict[str, Any], answer: str | None, fusion: FusionChatModel
) -> None:
    """Write the report page to `path` (`--html`), if given."""
    if path is None:
        return
    from langchain_fusion._report_html import report_html

    page = report_html(report, answer=answer, settings=fusion.settings(), title="fusion ask")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    print(f"report page: {path}", file=sys.stderr)


def ask(args: argparse.Namespace) -> int:
    from langchain_fusion._exceptions import FusionError, FusionRunError

    try:
        pool_arg, judge_arg = _slugs(args.pool), args.judge
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    with provider_for(args.scenario, dict(os.environ)) as provider:
        print(provider.description, file=sys.stderr if args.json else out, flush=True)
        pool = pool_arg or list(provider.pool)
        judge = judge_arg or provider.judge
        if provider.served is not None:
            unknown = [s for s in [*pool, judge] if s not in provider.served]
            if unknown:
                print(
                    f"error: the simulator does not serve {', '.join(unknown)}; it serves "
                    f"{', '.join(provider.served)}. Set OPENROUTER_API_KEY to use OpenRouter.",
                    file=sys.stderr,
                )
                return 2
        try:
            fusion = build_fusion(provider, args.mode, pool, judge)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        live = not args.json and not args.quiet and sys.stderr.isatty()
        try:
            message = asyncio.run(_run(fusion, args.prompt, live))
        except FusionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if isinstance(exc, FusionRunError) and exc.report:
                print(format_report(exc.report, None), file=sys.stderr)
                write_page(args.html, exc.report, None, fusion)
            return 1
    report = message.response_metadata["fusion"]
    write_page(args.html, report, message.text, fusion)
    if args.json:
        document = {
            "provider": {
                "description": provider.description,
                "base_url": provider.base_url,
                "simulated": provider.simulator is not None,
            },
            "prompt": args.prompt,
            "answer": message.text,
            "usage": message.usage_metadata,
            "fusion": report,
        }
        print(json.dumps(document, indent=2, default=str), file=out)
        return 0
    print(file=out)
    print(message.text, file=out)
    print(file=out)
    print(format_report(report, dict(message.usage_metadata or {})), file=out)
    return 0
