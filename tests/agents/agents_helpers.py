"""Helpers of the agents tests: `ChatOpenAI` clients of the simulator, fusions, accounting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

SCENARIO_FILE = Path(__file__).with_name("scenarios") / "agents.yaml"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MODES = ("best_of", "merge", "debate", "vote")
MEMBERS = ("agents/ada", "agents/bob", "agents/cy")


def chat(sim: Simulator, model: str, **kwargs: Any) -> Any:
    """A `ChatOpenAI` on the simulator: no retries, usage in streams, a 10 s timeout."""
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    return ChatOpenAI(
        model=model,
        base_url=sim.openai_base_url,
        api_key="sk-test",
        stream_usage=True,
        **kwargs,
    )


def fusion(
    sim: Simulator,
    mode: str,
    judge: str = "agents/judge",
    members: tuple[str, ...] = MEMBERS,
    **settings: Any,
) -> FusionChatModel:
    """A fusion of `members` judged by `judge`, all `ChatOpenAI` clients of the simulator."""
    settings.setdefault("seed", 3)
    return FusionChatModel(
        pool=[chat(sim, name) for name in members],
        judge=chat(sim, judge),
        mode=mode,
        **settings,
    )


def report(message: BaseMessage) -> dict[str, Any]:
    """The fusion report of a fused message."""
    fused = message.response_metadata["fusion"]
    assert isinstance(fused, dict)
    return fused


def statuses(message: BaseMessage) -> dict[str, str]:
    """`{member name: status}` from a fused message's report."""
    return {c["name"]: c["status"] for c in report(message)["candidates"]}


def assert_usage_is_what_was_billed(messages: list[AIMessage], sim: Simulator) -> None:
    """The fused messages' usage, summed, is every token the simulator billed."""
    stats = sim.stats().totals
    assert sum(m.usage_metadata["input_tokens"] for m in messages if m.usage_metadata) == (
        stats.prompt_tokens
    )
    assert sum(m.usage_metadata["output_tokens"] for m in messages if m.usage_metadata) == (
        stats.completion_tokens
    )
    assert sum(report(m)["cost_usd"] for m in messages) == _approx(stats.cost)


def _approx(value: float) -> Any:
    import pytest

    return pytest.approx(value, rel=1e-9, abs=1e-12)
