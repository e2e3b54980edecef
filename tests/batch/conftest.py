"""A fast simulator for dataset runs and rate limits, and a clean limiter registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from batch_helpers import quick_scenario

from langchain_fusion._runtime import limits
from langchain_fusion.sim import Simulator, run_simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with run_simulator(quick_scenario()) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    limits.clear()
    yield
    limits.clear()
