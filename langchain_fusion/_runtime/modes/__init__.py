"""The four mode runners: best_of, merge, debate and vote, one module each.

Each runner is a generator over the pure core: it yields the calls it needs (`Call`,
`FanOut`), the driver performs them and sends back outcomes, and the runner returns a
`FusionResult`. The same runner serves the async and the sync driver, streaming or not.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from langchain_fusion._runtime.modes.best_of import best_of
from langchain_fusion._runtime.modes.debate import debate
from langchain_fusion._runtime.modes.merge import merge
from langchain_fusion._runtime.modes.vote import vote
from langchain_fusion._runtime.run import FusionRun
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult

Runner = Callable[[FusionRun], Generator[Call | FanOut, Any, FusionResult]]

RUNNERS: dict[str, Runner] = {
    "best_of": best_of,
    "merge": merge,
    "debate": debate,
    "vote": vote,
}


def plan(run: FusionRun) -> Generator[Call | FanOut, Any, FusionResult]:
    """The generator a driver runs for the run's mode."""
    return RUNNERS[run.settings.mode](run)
