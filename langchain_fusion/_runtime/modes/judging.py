"""The judge's phases the modes share.

Judge calls read as text (`judge_parse`: every judge of the panel, every pass, at once, each
with one corrective retry), the judge writing the answer (`synthesis`), the fallback when
the judges fail, and choosing one answer by the verdicts' majority (`choose`).

The judge's reply is always read from its raw message, never through the provider's
structured-output method: `ChatOpenAI`'s default (`json_schema`) raises inside the SDK on
a reply that does not validate, and the message, with the usage the provider billed, is
lost with it. The prompts ask for JSON; the tolerant parser reads it from whatever the
judge sent (text, code fence, or a tool call it chose to make).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from langchain_core.messages import BaseMessage

from langchain_fusion._core import prompts
from langchain_fusion._core.fencing import Candidate, labels, message_text, new_nonce
from langchain_fusion._core.judging import (
    FALLBACK_RULE,
    Failure,
    JudgeVerdict,
    decide,
    main_failure,
    most_agreed,
    pass_orders,
)
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.verdict import JudgeFailure, VerdictParseError, parse_verdict
from langchain_fusion._exceptions import JudgeError
from langchain_fusion._runtime.members import Member
from langchain_fusion._runtime.run import FusionRun, Steps
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult

T = TypeVar("T")


@dataclass
class Shown:
    """The candidates as one pass shows them: `{label: member name}` and the judge input."""

    mapping: dict[str, str]
    candidates: list[Candidate]
    nonce: str


@dataclass
class Ask:
    """One judge call to make (with its corrective retry): who, at which pass, with what."""

    judge: Member
    pass_index: int
    shown: Shown
    messages: list[BaseMessage]


@dataclass
class Reply(Generic[T]):
    """What one `Ask` gave: the parsed value, or why not."""

    value: T | None = None
    failure: Failure | None = None
    hard: bool = False


def shown_passes(run: FusionRun, names: Sequence[str]) -> list[Shown]:
    """The candidates of `names` as each judge sees them at each pass.

    One order per judge and pass (`judge_passes` times the panel's size), from
    `pass_orders`: the first judge's pass 1 is the per-call shuffle, the next order its
    reverse, the later ones rotations, so that a panel's judges do not share one order and
    their position biases do not pull the same way. Labels are given afresh in the order
    shown (label `A` is always the first candidate shown).
    """
    first, _ = run.candidates(names)
    shown = []
    views = run.settings.judge_passes * len(run.judges)
    for order in pass_orders(list(first.values()), views):
        mapping = dict(zip(labels(len(order)), order, strict=True))
        candidates = [
            Candidate(label, message_text(run.latest[name])) for label, name in mapping.items()
        ]
        shown.append(Shown(mapping, candidates, new_nonce()))
    return shown


def asks_for(run: FusionRun, shown: Sequence[Shown], task: Callable[[Shown], str]) -> list[Ask]:
    """One call per judge and pass (the panel judges every pass), each with its own order."""
    asks: list[Ask] = []
    panel = len(run.judges)
    for pass_index in range(1, run.settings.judge_passes + 1):
        for seat, judge in enumerate(run.judges):
            view = shown[(pass_index - 1) * panel + seat]
            messages = run.judge_input(view.candidates, view.nonce, task(view))
            asks.append(Ask(judge, pass_index, view, messages))
    return asks


def judge_step(run: FusionRun, step: Call | FanOut) -> Steps:
    """Yield a judge step, adding its wall time to the run's judge time."""
    started = time.monotonic()
    result = yield step
    run.judge_s += time.monotonic() - started
    return result


def failure_of(outcome: Outcome) -> Failure:
    """The failure of a judge call that raised, timed out or ended in error."""
    raw = message_text(outcome.message) if outcome.message is not None else None
    reason: JudgeFailure = "timeout" if outcome.status == "timeout" else "upstream_error"
    return Failure(reason, outcome.error or outcome.status, raw or None)


def _read(outcome: Outcome, parse: Callable[[str], T]) -> Reply[T]:
    if not outcome.ok or outcome.message is None:
        return Reply(failure=failure_of(outcome), hard=True)
    text = message_text(outcome.message)
    try:
        return Reply(value=parse(text))
    except VerdictParseError as exc:
        return Reply(failure=Failure(exc.reason, str(exc), text))


def judge_parse(
    run: FusionRun, asks: Sequence[Ask], step: str, parse: Callable[[Ask, str], T]
) -> Generator[Call | FanOut, Any, list[Reply[T]]]:
    """Every ask at once, then one corrective retry (at once) for each unreadable reply.

    Every call is recorded, its usage with it, whatever became of its reply.
    """
    s = run.settings

    def call(ask: Ask, messages: list[BaseMessage], suffix: str = "") -> Call:
        return Call(
            ask.judge,
            messages,
            role="judge",
            step=step + suffix,
            timeout=s.judge_timeout,
            max_tokens=s.max_tokens,
        )

    outcomes: list[Outcome] = yield from judge_step(
        run, FanOut([call(ask, ask.messages) for ask in asks])
    )
    run.ledger.extend(outcomes)
    replies = [_read(o, partial(parse, a)) for a, o in zip(asks, outcomes, strict=True)]
    again = [i for i, reply in enumerate(replies) if reply.failure is not None and not reply.hard]
    if not again:
        return replies
    retries = []
    for index in again:
        failure = replies[index].failure
        assert failure is not None
        # An empty assistant turn is refused by some providers: say what it was.
        said = failure.raw or "(empty reply)"
        messages = prompts.corrective_messages(asks[index].messages, said, failure.error)
        retries.append(call(asks[index], messages, "-retry"))
    outcomes = yield from judge_step(run, FanOut(retries))
    run.ledger.extend(outcomes)
    for index, outcome in zip(again, outcomes, strict=True):
        ask = asks[index]
        reply = _read(outcome, partial(parse, ask))
        if reply.failure is not None and not reply.hard:
            reply.failure.error = (
                f"unreadable judge reply after one corrective retry: {reply.failure.error}"
            )
        replies[index] = reply
    return replies


def synthesis(run: FusionRun, messages: list[BaseMessage]) -> Steps:
    """The judge writes the answer (streamed to the caller when the driver streams)."""
    outcome: Outcome = yield from judge_step(
        run,
        Call(
            run.writer,
            messages,
            role="judge",
            step="synthesis",
            timeout=run.settings.judge_timeout,
            stream=True,
            stop=run.stop,
            max_tokens=run.settings.max_tokens,
        ),
    )
    run.ledger.record(outcome)
    return outcome


def fallback(
    run: FusionRun,
    failure: Failure | None,
    rounds: int | None = None,
    extra: dict[str, Any] | None = None,
) -> FusionResult:
    """No verdict: raise, or return the answer most other answers agree with, flagged.

    `failure` None means no judge failed, but no verdict counted (every one excluded by
    `judge_self_vote`): the answer is the fallback's, and nothing is raised.
    """
    extra = {**(extra or {}), "judge_fallback": True, "judge_fallback_rule": FALLBACK_RULE}
    if failure is not None:
        extra.update(failure.fields())
        if run.settings.on_judge_failure == "raise":
            raise JudgeError(
                f"the judge failed ({failure.reason}): {failure.error}",
                answers=dict(run.latest),
                report=run.report(rounds=rounds, extra=extra),
            )
    names = [m.name for m in run.members if m.name in run.latest]
    winner = most_agreed(names, names, run.agreement_counts(names))
    return run.finish(run.latest[winner], winner=winner, rounds=rounds, extra=extra)


def verdict_of(run: FusionRun, ask: Ask, reply: Reply[str]) -> JudgeVerdict:
    """The report's verdict of one ask; a vote for the judge's own model may be excluded."""
    verdict = JudgeVerdict(
        judge=ask.judge.name,
        model=ask.judge.model,
        pass_index=ask.pass_index,
        order=list(ask.shown.mapping.values()),
    )
    if reply.value is None:
        verdict.failure = reply.failure
        verdict.status = reply.failure.reason if reply.failure else "empty"
        return verdict
    verdict.winner = reply.value
    if run.excludes_self_vote(ask.judge, reply.value):
        verdict.status = "excluded"
    return verdict


def choose(
    run: FusionRun, names: list[str], extra: dict[str, Any] | None = None
) -> Generator[Call | FanOut, Any, FusionResult]:
    """The judges pick one of `names`' answers (majority of every judge and pass)."""
    shown = shown_passes(run, names)
    asks = asks_for(run, shown, lambda view: prompts.verdict_task(list(view.mapping)))
    extra = {**(extra or {}), "labels": shown[0].mapping}
    if not run.affordable("judge", [(a.judge.model, a.messages) for a in asks]):
        return run.over_budget(names, extra=extra)

    rationales: dict[int, str] = {}

    def parse(ask: Ask, text: str) -> str:
        verdict = parse_verdict(text, list(ask.shown.mapping))
        rationales[id(ask)] = verdict.rationale
        return ask.shown.mapping[verdict.winner]

    replies = yield from judge_parse(run, asks, "verdict", parse)
    verdicts = [verdict_of(run, a, r) for a, r in zip(asks, replies, strict=True)]
    extra["verdicts"] = [v.to_dict() for v in verdicts]
    decision = decide(verdicts, names, run.agreement_counts(names))
    if decision is None:
        failures = [v.failure for v in verdicts if v.failure is not None]
        return fallback(run, main_failure(failures), extra=extra)
    extra["judge_agreement"] = decision.agreement
    extra["verdict_rule"] = decision.rule
    extra["rationale"] = next(
        (
            rationales.get(id(a), "")
            for a, v in zip(asks, verdicts, strict=True)
            if v.valid and v.winner == decision.winner
        ),
        "",
    )
    return run.finish(run.latest[decision.winner], winner=decision.winner, extra=extra)
