"""Fixtures of the agents tests: one simulator for the directory, reset before each test.

The scenario (`scenarios/agents.yaml`) scripts what each member answers to the agent task,
the RAG question, the invoice extraction and the image description; helpers live in
`agents_helpers.py`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents_helpers import SCENARIO_FILE, chat

from langchain_fusion.sim import Simulator, run_simulator


@pytest.fixture(scope="session")
def shared_agents_sim() -> Iterator[Simulator]:
    with run_simulator(SCENARIO_FILE) as sim:
        # Warm the client up (imports, SDK and HTTP clients) before the timed tests.
        chat(sim, "agents/ada").invoke("hello")
        yield sim


@pytest.fixture
def sim(shared_agents_sim: Simulator) -> Simulator:
    """The directory's simulator with zeroed stats."""
    shared_agents_sim.reset()
    return shared_agents_sim
