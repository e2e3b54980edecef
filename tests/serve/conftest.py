"""Fixtures of the serve tests: one simulator and one server for the directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serve_helpers import SCENARIO_FILE, Served, serve

from langchain_fusion.sim import Simulator, run_simulator


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[Simulator]:
    with run_simulator(SCENARIO_FILE) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: Simulator) -> Simulator:
    """The directory's simulator with zeroed stats and request numbers."""
    shared_sim.reset()
    return shared_sim


@pytest.fixture(scope="session")
def shared_server(shared_sim: Simulator) -> Iterator[Served]:
    with serve(shared_sim) as served:
        yield served


@pytest.fixture
def server(shared_server: Served, sim: Simulator) -> Served:
    """The directory's server (no API keys), its simulator reset."""
    return shared_server
