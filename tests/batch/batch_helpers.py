"""The batch tests' fast simulated models."""

from __future__ import annotations

from langchain_fusion.sim import Scenario, SimModel
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
