"""The judge's phases the modes share.

A parsed judge call with one corrective retry, the judge writing the answer, the fallback
when the judge fails, and choosing one answer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from langchain_fusion._core import prompts
from langchain_fusion._core.fencing import message_text, new_nonce
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.verdict import Verdict, VerdictParseError, check_verdict, parse_verdict
from langchain_fusion._exceptions import JudgeError
from langchain_fusion._runtime.run import FusionRun, Steps
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult

T = TypeVar("T", bound=BaseModel)


def judge_parse(
    run: FusionRun,
    messages: list[BaseMessage],
    schema: type[T],
    step: str,
    parse: Callable[[Outcome], T],
) -> Steps:
    """A structured judge call with one corrective retry.

    Returns `(parsed or None, error or None, hard)`, `hard` meaning the judge itself
    failed (raised, timed out) rather than answered unreadably.
    """
    call = Call(
        run.judge,
        messages,
        role="judge",
        step=step,
        timeout=run.settings.judge_timeout,
        schema=schema,
    )
    error = ""
    for attempt in range(2):
        outcome: Outcome = yield call
        run.ledger.record(outcome)
        if not outcome.ok or outcome.message is None:
            return None, outcome.error or outcome.status, True
        try:
            return parse(outcome), None, False
        except VerdictParseError as exc:
            error = str(exc)
        if attempt == 0:
            call = Call(
                run.judge,
                prompts.corrective_messages(messages, message_text(outcome.message), error),
                role="judge",
                step=f"{step}-retry",
                timeout=run.settings.judge_timeout,
                schema=schema,
            )
    return None, f"unreadable judge reply after one corrective retry: {error}", False


def synthesis(run: FusionRun, messages: list[BaseMessage]) -> Steps:
    """The judge writes the answer (streamed to the caller when the driver streams)."""
    outcome: Outcome = yield Call(
        run.writer,
        messages,
        role="judge",
        step="synthesis",
        timeout=run.settings.judge_timeout,
        stream=True,
        stop=run.stop,
        max_tokens=run.settings.max_tokens,
    )
    run.ledger.record(outcome)
    return outcome


def fallback(
    run: FusionRun,
    error: str | None,
    rounds: int | None = None,
    extra: dict[str, Any] | None = None,
) -> FusionResult:
    """The judge failed: raise, or return the first answer in pool order, flagged."""
    extra = {**(extra or {}), "judge_fallback": True, "judge_error": error}
    if run.settings.on_judge_failure == "raise":
        raise JudgeError(
            f"the judge failed: {error}",
            answers=dict(run.latest),
            report=run.report(rounds=rounds, extra=extra),
        )
    first = next(m.name for m in run.members if m.name in run.latest)
    return run.finish(run.latest[first], winner=first, rounds=rounds, extra=extra)


def choose(
    run: FusionRun, names: list[str], extra: dict[str, Any] | None = None
) -> Generator[Call | FanOut, Any, FusionResult]:
    """The judge picks one of `names`' answers, returned as written."""
    mapping, candidates = run.candidates(names)
    labels = list(mapping)
    extra = {**(extra or {}), "labels": mapping}
    messages = run.judge_input(candidates, new_nonce(), prompts.verdict_task(labels))
    if not run.affordable("judge", [(run.judge.model, messages)]):
        return run.over_budget(names, extra=extra)

    def parse(outcome: Outcome) -> Verdict:
        if isinstance(outcome.structured, Verdict):
            return check_verdict(outcome.structured, labels)
        assert outcome.message is not None
        return parse_verdict(message_text(outcome.message), labels)

    verdict, error, _ = yield from judge_parse(run, messages, Verdict, "verdict", parse)
    if verdict is None:
        return fallback(run, error, extra=extra)
    winner = mapping[verdict.winner]
    extra["rationale"] = verdict.rationale
    return run.finish(run.latest[winner], winner=winner, extra=extra)
