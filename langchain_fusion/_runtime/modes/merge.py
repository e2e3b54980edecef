"""merge: a structured comparison of the answers, then one answer keeping the best of all.

Every judge of a panel compares at every pass (`judge_passes`); their comparisons are
translated to the labels of pass 1 and unioned, each point once. The first judge writes the
answer from the candidates as pass 1 shows them and the unioned comparison.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from langchain_fusion._core import prompts
from langchain_fusion._core.judging import (
    JudgeVerdict,
    main_failure,
    relabel_comparison,
    union_comparisons,
)
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.verdict import Comparison, parse_comparison
from langchain_fusion._runtime.modes.judging import (
    Ask,
    asks_for,
    failure_of,
    fallback,
    judge_parse,
    shown_passes,
    synthesis,
)
from langchain_fusion._runtime.run import FusionRun
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult


def merge(run: FusionRun) -> Generator[Call | FanOut, Any, FusionResult]:
    answered: list[Outcome] = yield from run.answer_phase()
    names = [o.name for o in answered]
    shortcut = run.without_judge(names)
    if shortcut is not None:
        return shortcut
    shown = shown_passes(run, names)
    first = shown[0]
    asks = asks_for(run, shown, lambda _: prompts.COMPARISON_TASK)
    # The synthesis reads what a comparison reads, plus the comparison.
    phase = [(a.judge.model, a.messages) for a in asks] + [(run.judge.model, asks[0].messages)]
    if not run.affordable("judge", phase):
        return run.over_budget(names, extra={"labels": first.mapping})
    to_first = {name: label for label, name in first.mapping.items()}

    def parse(ask: Ask, text: str) -> Comparison:
        comparison = parse_comparison(text)
        if ask.shown is first:
            return comparison
        return relabel_comparison(
            comparison, {label: to_first[name] for label, name in ask.shown.mapping.items()}
        )

    replies = yield from judge_parse(run, asks, "compare", parse)
    comparison = union_comparisons([r.value for r in replies if r.value is not None])
    failures = [r.failure for r in replies if r.failure is not None]
    failure = main_failure(failures)
    extra: dict[str, Any] = {
        "labels": first.mapping,
        "comparison": comparison.model_dump() if comparison else None,
        "comparison_error": failure.error if comparison is None and failure else None,
    }
    # One entry per judge and pass, as in best_of; a comparison names no winner.
    extra["verdicts"] = [
        JudgeVerdict(
            judge=a.judge.name,
            model=a.judge.model,
            pass_index=a.pass_index,
            order=list(a.shown.mapping.values()),
            status="ok" if r.failure is None else r.failure.reason,
            failure=r.failure,
        ).to_dict()
        for a, r in zip(asks, replies, strict=True)
    ]
    if all(r.hard for r in replies):
        return fallback(run, failure, extra=extra)
    if comparison is None and failure is not None:
        # Unreadable after the corrective retry: the synthesis goes on without it.
        extra.update(failure.fields())
    written = run.judge_input(
        first.candidates,
        first.nonce,
        prompts.SYNTHESIS_TASK,
        prompts.comparison_block(comparison, first.nonce),
    )
    outcome = yield from synthesis(run, written)
    if not outcome.ok:
        return fallback(run, failure_of(outcome), extra=extra)
    return run.finish(outcome.message, streamed=True, extra=extra)
