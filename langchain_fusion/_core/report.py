"""The fusion report: what every member did, what the judge decided, what it all cost.

It lands in `response_metadata["fusion"]` (LangChain) and `additional_kwargs["fusion"]`
(LlamaIndex) and is JSON-serialisable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.timeline import timeline
from langchain_fusion._core.usage import (
    Ledger,
    message_cost,
    message_usage,
    sum_cost,
    sum_usage,
    usage_unknown,
)


def _calls_summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    last = outcomes[-1] if outcomes else None
    errors = [o.error for o in outcomes if o.error]
    hedged = [
        o.message.response_metadata["hedge"]
        for o in outcomes
        if o.message is not None and o.message.response_metadata.get("hedge")
    ]
    return {
        **({"hedge": hedged[-1]} if hedged else {}),
        **({"abandoned": True} if any(o.abandoned for o in outcomes) else {}),
        **({"usage_unknown": True} if any(usage_unknown(o) for o in outcomes) else {}),
        "status": last.status if last else "skipped",
        "calls": sum(1 for o in outcomes if o.made),
        "latency_s": round(sum(o.latency_s for o in outcomes), 6),
        "usage": dict(sum_usage(message_usage(o.message) for o in outcomes)),
        "cost_usd": sum_cost(message_cost(o.message) for o in outcomes),
        "error": errors[-1] if errors else None,
    }


def build_report(
    *,
    mode: str,
    members: Sequence[tuple[str, str]],
    judge_model: str,
    ledger: Ledger,
    total_s: float,
    judges: Sequence[tuple[str, str]] = (),
    judge_s: float | None = None,
    winner: str | None = None,
    rounds: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the report from the ledger of calls.

    Args:
        mode: The mode that ran.
        members: `(name, model)` of each pool member, in pool order.
        judge_model: The (first) judge's model identifier.
        ledger: Every call made.
        total_s: Wall time of the whole fusion.
        judges: `(name, model)` of each judge of a panel (empty for a single judge): each
            gets its own entry under `judges`.
        judge_s: Wall time of the judge phases; default: the sum of the judge calls' times.
        winner: best_of: the chosen member's name.
        rounds: debate: revision rounds run.
        extra: Mode-specific entries (comparison, debate graph, fallback flags...).
    """
    candidates = []
    for name, model in members:
        entry: dict[str, Any] = {"name": name, "model": model}
        entry.update(_calls_summary(ledger.for_name(name)))
        candidates.append(entry)
    judge_calls = ledger.for_name("judge", role="judge")
    judge: dict[str, Any] = {"model": judge_model, **_judge_summary(judge_calls)}
    all_judge_calls = [o for o in ledger.outcomes if o.role == "judge"]
    if judge_s is None:
        judge_s = sum(o.latency_s for o in all_judge_calls)
    report: dict[str, Any] = {
        "mode": mode,
        "candidates": candidates,
        "winner": winner,
        "rounds": rounds,
        "judge": judge,
        "judge_fallback": False,
        "timings": {
            "total_s": round(total_s, 6),
            "judge_s": round(judge_s, 6),
        },
        "usage": dict(ledger.usage()),
        "usage_by_model": ledger.usage_by_model(),
        "cost_usd": ledger.cost(),
        "cost_complete": ledger.cost_complete(),
        "timeline": timeline(ledger.outcomes),
    }
    if judges:
        report["judges"] = [
            {"name": name, "model": model, **_judge_summary(ledger.for_name(name, role="judge"))}
            for name, model in judges
        ]
    if extra:
        report.update(extra)
    return report


def _judge_summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    summary = _calls_summary(outcomes)
    if not outcomes:
        summary["status"] = "skipped"
    return summary
