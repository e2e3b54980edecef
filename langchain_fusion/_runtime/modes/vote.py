"""vote: the majority of normalised answers wins; the judge picks only among tied leaders."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from langchain_fusion._core.agreement import normalise_answer
from langchain_fusion._core.fencing import message_text
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._runtime.modes.judging import choose
from langchain_fusion._runtime.run import FusionRun
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult


def vote(run: FusionRun) -> Generator[Call | FanOut, Any, FusionResult]:
    """The majority answer (normalised) wins.

    The judge picks only on ties or when every answer differs, among the leading answers.
    """
    answered: list[Outcome] = yield from run.answer_phase()
    names = [o.name for o in answered]
    shortcut = run.without_judge(names)
    if shortcut is not None:
        return shortcut
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(normalise_answer(message_text(run.latest[name])), []).append(name)
    tally = sorted(groups.values(), key=len, reverse=True)
    votes = [{"members": group, "count": len(group)} for group in tally]
    leader = tally[0]
    if len(leader) > 1 and (len(tally) == 1 or len(leader) > len(tally[1])):
        extra = {"votes": votes, "judge_skipped": "majority"}
        return run.finish(run.latest[leader[0]], winner=leader[0], extra=extra)
    tied = [group[0] for group in tally if len(group) == len(leader)]
    result: FusionResult = yield from choose(run, tied, extra={"votes": votes})
    return result
