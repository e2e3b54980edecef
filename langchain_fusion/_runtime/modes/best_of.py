"""best_of: the judge picks the strongest answer, returned as it was written."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from langchain_fusion._core.outcome import Outcome
from langchain_fusion._runtime.modes.judging import choose
from langchain_fusion._runtime.run import FusionRun
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult


def best_of(run: FusionRun) -> Generator[Call | FanOut, Any, FusionResult]:
    answered: list[Outcome] = yield from run.answer_phase()
    names = [o.name for o in answered]
    shortcut = run.without_judge(names)
    if shortcut is not None:
        return shortcut
    result: FusionResult = yield from choose(run, names)
    return result
