"""A fast simulator for dataset runs and rate limits, and a clean limiter registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_fusion._runtime import limits
from langchain_fusion.sim import Scenario, SimModel, Simulator, run_simulator
from langchain_fusion.sim._stats import most_within as max_in_window

__all__ = ["MODELS", "max_in_window", "quick_scenario"]

MODELS = ("t/alpha", "t/beta", "t/gamma")


def quick_scenario(ttft: float = 0.02, faults: dict[str, list[dict]] | None = None) -> Scenario:
    """Three fast models; `t/gamma` is the judge. Optional faults per model."""
    return Scenario(
        name="batch",
        models=[
            SimModel(
                name=name,
                ttft=ttft,
                prompt_price=1e-6,
                completion_price=2e-6,
                faults=(faults or {}).get(name, []),
            )
            for name in MODELS
        ],
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with run_simulator(quick_scenario()) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    limits.clear()
    yield
    limits.clear()
