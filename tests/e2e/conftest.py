"""Fixtures of the e2e tests: one simulator for the directory, reset before each test.

Every test starts from zeroed stats and request numbers (`sim`), so fault schedules
(`requests: [1]`) restart. Helpers live in `e2e_helpers.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_helpers import CLIENTS, SCENARIO_FILE, chat

from langchain_fusion.sim import Scenario, Simulator, run_simulator


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return Scenario.from_file(SCENARIO_FILE)


@pytest.fixture(scope="session")
def shared_sim(scenario: Scenario) -> Iterator[Simulator]:
    with run_simulator(scenario) as sim:
        # Warm both clients up (imports, SDK and HTTP clients), so that first calls do not
        # eat into the short member timeouts the tests use.
        for client in CLIENTS:
            chat(sim, client, "e2e/ada").invoke("hello")
            list(chat(sim, client, "e2e/ada").stream("hello"))
        yield sim


@pytest.fixture
def sim(shared_sim: Simulator) -> Simulator:
    """The session's simulator with zeroed stats and request numbers."""
    shared_sim.reset()
    return shared_sim


@pytest.fixture(scope="session")
async def warm_async(shared_sim: Simulator) -> None:
    """One async call per client on the session loop (its HTTP clients are per loop)."""
    for client in CLIENTS:
        await chat(shared_sim, client, "e2e/ada").ainvoke("hello")
