"""Fixtures of the reliability tests: one simulator for the directory, idle and reset per test.

Helpers live in `rel_helpers.py`; the fault matrix's cases in `matrix.py`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from rel_helpers import CLIENTS, SCENARIO_FILE, chat, wait_idle

from langchain_fusion.sim import Scenario, Simulator, run_simulator

# Hypothesis keeps caches (unicode tables, constants) in a `.hypothesis` directory, by
# default in the working directory: keep it out of the repository.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "llm-fusion-hypothesis"))


@pytest.fixture(scope="session")
def rel_scenario() -> Scenario:
    return Scenario.from_file(SCENARIO_FILE)


@pytest.fixture(scope="session")
def rel_shared_sim(rel_scenario: Scenario) -> Iterator[Simulator]:
    with run_simulator(rel_scenario) as sim:
        # Warm both clients up (imports, SDK and HTTP clients), so that first calls do not
        # eat into the short timeouts the tests use.
        for client in CLIENTS:
            chat(sim, client, "rel/ada").invoke("hello")
            list(chat(sim, client, "rel/ada").stream("hello"))
        yield sim


@pytest.fixture
def sim(rel_shared_sim: Simulator) -> Simulator:
    """The session's simulator, idle (requests abandoned by earlier tests accounted), with
    zeroed stats and request numbers."""
    wait_idle(rel_shared_sim)
    rel_shared_sim.reset()
    return rel_shared_sim


@pytest.fixture(scope="session")
async def warm_async(rel_shared_sim: Simulator) -> None:
    """One async call per client on the session loop (its HTTP clients are per loop)."""
    for client in CLIENTS:
        await chat(rel_shared_sim, client, "rel/ada").ainvoke("hello")
