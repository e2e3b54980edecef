"""merge: a structured comparison of the answers, then one answer keeping the best of all."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from langchain_fusion._core import prompts
from langchain_fusion._core.fencing import message_text, new_nonce
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.verdict import Comparison, parse_comparison
from langchain_fusion._runtime.modes.judging import fallback, judge_parse, synthesis
from langchain_fusion._runtime.run import FusionRun
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult


def merge(run: FusionRun) -> Generator[Call | FanOut, Any, FusionResult]:
    answered: list[Outcome] = yield from run.answer_phase()
    names = [o.name for o in answered]
    shortcut = run.without_judge(names)
    if shortcut is not None:
        return shortcut
    mapping, candidates = run.candidates(names)
    nonce = new_nonce()
    compare = run.judge_input(candidates, nonce, prompts.COMPARISON_TASK)
    # The synthesis reads what the comparison reads, plus the comparison.
    if not run.affordable("judge", [(run.judge.model, compare)] * 2):
        return run.over_budget(names, extra={"labels": mapping})

    def parse(outcome: Outcome) -> Comparison:
        if isinstance(outcome.structured, Comparison):
            return outcome.structured
        assert outcome.message is not None
        return parse_comparison(message_text(outcome.message))

    comparison, error, hard = yield from judge_parse(run, compare, Comparison, "compare", parse)
    extra: dict[str, Any] = {
        "labels": mapping,
        "comparison": comparison.model_dump() if comparison else None,
        "comparison_error": error,
    }
    if hard:
        return fallback(run, error, extra=extra)
    written = run.judge_input(
        candidates, nonce, prompts.SYNTHESIS_TASK, prompts.comparison_block(comparison, nonce)
    )
    outcome = yield from synthesis(run, written)
    if not outcome.ok:
        return fallback(run, outcome.error, extra=extra)
    return run.finish(outcome.message, streamed=True, extra=extra)
