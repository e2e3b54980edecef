"""A FusionChatModel whose members and judge are ChatOpenAI clients of the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(30)

RIGHT = {"The answer is 391.", "391, clearly."}


def _fusion(openai_model: Any, mode: str) -> FusionChatModel:
    pool = [openai_model("t/plain"), openai_model("t/wrong"), openai_model("t/other")]
    return FusionChatModel(pool=pool, judge=openai_model("t/judge"), mode=mode, seed=7)


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
def test_each_mode_answers_and_accounting_matches_stats(
    sim: Simulator, openai_model: Any, mode: str
) -> None:
    msg = _fusion(openai_model, mode).invoke("What is 17*23?")
    report = msg.response_metadata["fusion"]
    if mode == "best_of":  # the judge (rule oracle, accuracy 1) picks a right answer
        assert msg.content in RIGHT
    else:  # the synthesis combines the sentences of the answers that agree with the winner
        said = [s.strip() + "." for s in str(msg.content).split(".") if s.strip()]
        assert len(said) >= 2 and all("391" in s for s in said), msg.content
    assert [c["status"] for c in report["candidates"]] == ["ok", "ok", "ok"]
    assert report["judge"]["status"] == "ok"
    if mode == "best_of":
        assert report["winner"] in ("t/plain", "t/other")
    if mode == "debate":
        assert report["rounds"] >= 1
    stats = sim.stats()
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == stats.totals.prompt_tokens
    assert msg.usage_metadata["output_tokens"] == stats.totals.completion_tokens
    assert report["cost_usd"] == pytest.approx(stats.totals.cost, abs=1e-12)
    for name, row in report["usage_by_model"].items():
        served = stats.models[name]
        assert row["calls"] == served.requests
        assert (row["input_tokens"], row["output_tokens"]) == (
            served.prompt_tokens,
            served.completion_tokens,
        )
        assert row["cost_usd"] == pytest.approx(served.cost, abs=1e-12)


async def test_async_merge(sim: Simulator, openai_model: Any) -> None:
    msg = await _fusion(openai_model, "merge").ainvoke("What is 17*23?")
    assert msg.content in {"391, clearly. The answer is 391.", "The answer is 391. 391, clearly."}
    assert sim.stats().models["t/judge"].requests == 2  # comparison, then synthesis


async def test_async_quorum_straggler_is_abandoned_on_the_server(
    sim: Simulator, openai_model: Any
) -> None:
    pool = [openai_model("t/plain"), openai_model("t/other"), openai_model("t/hang")]
    fusion = FusionChatModel(
        pool=pool, judge=openai_model("t/judge"), mode="best_of", quorum=2, grace=0.1
    )
    msg = await fusion.ainvoke("What is 17*23?")
    statuses = [c["status"] for c in msg.response_metadata["fusion"]["candidates"]]
    assert statuses == ["ok", "ok", "cancelled"]
    deadline = time.monotonic() + 3
    while sim.stats().models["t/hang"].abandoned != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert sim.stats().models["t/hang"].in_flight == 0
