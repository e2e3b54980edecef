"""debate: members critique and revise each other's answers, then the judge writes the answer."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from langchain_fusion._core import prompts
from langchain_fusion._core.fencing import new_nonce
from langchain_fusion._core.graph import DebateGraph
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._runtime.modes.judging import failure_of, fallback, synthesis
from langchain_fusion._runtime.run import FusionRun
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult


def debate(run: FusionRun) -> Generator[Call | FanOut, Any, FusionResult]:
    s = run.settings
    graph = DebateGraph([m.name for m in run.members], s.topology)
    by_name = {m.name: m for m in run.members}
    for member in run.members:
        graph.add_turn(member.name, 0)
    try:
        yield from run.answer_phase()
    finally:
        for outcome in run.ledger.outcomes:
            graph.turns[f"r0:{outcome.name}"].status = outcome.status
    for round_ in range(1, s.debate_rounds + 1):
        active = graph.active()
        if len(active) < 2:
            break
        if run.agree(active):
            graph.stopped_early = True
            break
        nonce = new_nonce()
        inputs = {
            name: prompts.revision_messages(
                run.conversation,
                run.latest[name],
                run.candidates(graph.visible_to(name))[1],
                nonce,
                s.criteria,
            )
            for name in active
        }
        phase = [(by_name[name].model, messages) for name, messages in inputs.items()]
        if not run.affordable(f"debate round {round_}", phase):
            break
        calls = []
        for name, messages in inputs.items():
            graph.add_turn(name, round_)
            calls.append(
                Call(
                    by_name[name],
                    messages,
                    step="revise",
                    round=round_,
                    timeout=s.member_timeout,
                    max_tokens=s.max_tokens,
                )
            )
        quorum = None if s.quorum is None else min(s.quorum, len(calls))
        outcomes: list[Outcome] = yield FanOut(calls, quorum, s.grace)
        run.ledger.extend(outcomes)
        for outcome in outcomes:
            graph.turns[f"r{round_}:{outcome.name}"].status = outcome.status
            if outcome.ok and outcome.message is not None:
                run.latest[outcome.name] = outcome.message
        graph.rounds_run = round_
    final = [m.name for m in run.members if m.name in run.latest]
    extra: dict[str, Any] = {
        "debate": {**graph.to_dict(), "mermaid": graph.to_mermaid()},
        "agreed": run.agree(final),
    }
    rounds = graph.rounds_run
    shortcut = run.without_judge(final, rounds, extra)
    if shortcut is not None:
        return shortcut
    mapping, candidates = run.candidates(final)
    extra["labels"] = mapping
    task = prompts.DEBATE_FINAL_TASK.format(rounds=rounds)
    messages = run.judge_input(candidates, new_nonce(), task)
    if not run.affordable("judge", [(run.judge.model, messages)]):
        return run.over_budget(final, rounds=rounds, extra=extra)
    outcome = yield from synthesis(run, messages)
    if not outcome.ok:
        return fallback(run, failure_of(outcome), rounds=rounds, extra=extra)
    return run.finish(outcome.message, rounds=rounds, streamed=True, extra=extra)
