"""Fusions whose pool and judge are OpenRouter slugs served by the simulator."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from langchain_fusion import FusionChatModel, NotEnoughAnswersError
from langchain_fusion._core.config import MODES
from langchain_fusion.providers import ChatOpenAICompatible
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(30)

RIGHT = {"The answer is 391.", "391, clearly."}


def is_right(text: str) -> bool:
    """Each sentence is a right answer (merge and debate combine the agreeing answers)."""
    said = [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]
    return bool(said) and all(s in RIGHT for s in said)


def _fusion(sim: Simulator, secret: str, pool: Any, **settings: Any) -> FusionChatModel:
    settings.setdefault("judge", "p/judge")
    return FusionChatModel(
        pool=pool, api_key=secret, base_url=sim.openrouter_base_url, seed=7, **settings
    )


def _assert_report_matches_stats(msg: Any, sim: Simulator) -> None:
    report = msg.response_metadata["fusion"]
    stats = sim.stats()
    assert msg.usage_metadata["input_tokens"] == stats.totals.prompt_tokens
    assert msg.usage_metadata["output_tokens"] == stats.totals.completion_tokens
    assert report["cost_usd"] == pytest.approx(stats.totals.cost, abs=1e-12)
    assert report["cost_complete"] is True
    served = {name: row for name, row in stats.models.items() if row.requests}
    assert set(report["usage_by_model"]) == set(served)
    for name, row in report["usage_by_model"].items():
        assert row["calls"] == served[name].completed  # one call, retries included
        assert (row["input_tokens"], row["output_tokens"]) == (
            served[name].prompt_tokens,
            served[name].completion_tokens,
        )
        assert row["cost_usd"] == pytest.approx(served[name].cost, abs=1e-12)


@pytest.mark.parametrize("mode", MODES)
async def test_every_mode_reports_what_the_simulator_served(
    sim: Simulator, secret: str, answer: Any, mode: str
) -> None:
    fusion = _fusion(sim, secret, ["p/plain", "p/wrong", "p/other"], mode=mode)
    msg = await answer(fusion, "What is 17*23?")
    report = msg.response_metadata["fusion"]
    assert "391" in msg.content  # the judge (oracle rule, accuracy 1) keeps a right answer
    assert [c["status"] for c in report["candidates"]] == ["ok", "ok", "ok"]
    assert all(c["cost_usd"] for c in report["candidates"])
    _assert_report_matches_stats(msg, sim)


async def test_a_mixed_pool(sim: Simulator, secret: str, answer_invoke: Any) -> None:
    local = ChatOpenAICompatible(model="p/other", base_url=sim.base_url + "/v1")  # no key
    fusion = _fusion(sim, secret, {"plain": "p/plain", "local": local}, mode="merge")
    msg = await answer_invoke(fusion, "What is 17*23?")
    assert [c["name"] for c in msg.response_metadata["fusion"]["candidates"]] == [
        "plain",
        "local",
    ]
    _assert_report_matches_stats(msg, sim)


async def test_a_mid_stream_error_is_a_member_failure(
    sim: Simulator, secret: str, answer_invoke: Any
) -> None:
    streaming = ChatOpenAICompatible(
        model="p/errchunk", base_url=sim.openrouter_base_url, api_key=secret, streaming=True
    )
    fusion = _fusion(sim, secret, {"a": "p/plain", "b": streaming, "c": "p/other"}, mode="merge")
    msg = await answer_invoke(fusion, "What is 17*23?")
    report = msg.response_metadata["fusion"]
    failed = report["candidates"][1]
    assert failed["status"] == "error"
    assert "mid-stream" in failed["error"]
    assert is_right(msg.content)  # the fusion answered without it
    assert sim.stats().models["p/errchunk"].stream_requests == 1


async def test_error_body_and_no_retry_are_reported(
    sim: Simulator, secret: str, answer_invoke: Any
) -> None:
    fusion = _fusion(sim, secret, ["p/plain", "p/errchunk", "p/429long"], mode="best_of")
    msg = await answer_invoke(fusion, "What is 17*23?")
    candidates = msg.response_metadata["fusion"]["candidates"]
    assert [c["status"] for c in candidates] == ["ok", "error", "error"]
    assert "reported an error" in candidates[1]["error"]
    assert "HTTP 429" in candidates[2]["error"] and "max_retry_delay" in candidates[2]["error"]
    assert sim.stats().models["p/429long"].requests == 1


async def test_rate_limited_member_retries_then_answers(
    sim: Simulator, secret: str, answer_invoke: Any
) -> None:
    fusion = _fusion(sim, secret, ["p/429", "p/other"], mode="merge")
    msg = await answer_invoke(fusion, "What is 17*23?")
    assert [c["status"] for c in msg.response_metadata["fusion"]["candidates"]] == ["ok", "ok"]
    row = sim.stats().models["p/429"]
    assert (row.requests, row.completed, row.faults) == (2, 1, {"rate_limit": 1})
    _assert_report_matches_stats(msg, sim)


def test_retry_after_past_the_deadline_fails_the_member_at_once(
    sim: Simulator, secret: str
) -> None:
    # Retry-After 5 s fits max_retry_delay (10 s) but not the fusion's 3 s deadline: the
    # member fails at once (no wasted request after the deadline), the others answer.
    fusion = _fusion(sim, secret, ["p/plain", "p/429five", "p/other"], mode="best_of", deadline=3)
    msg = fusion.invoke("What is 17*23?")
    failed = msg.response_metadata["fusion"]["candidates"][1]
    assert failed["status"] == "error"
    assert "deadline" in failed["error"]
    assert sim.stats().models["p/429five"].requests == 1


async def test_every_member_failing_raises_with_every_cause(sim: Simulator, secret: str) -> None:
    fusion = _fusion(sim, secret, ["p/400", "p/errchunk", "p/malformed"], mode="merge")
    with pytest.raises(NotEnoughAnswersError) as caught:
        await fusion.ainvoke("What is 17*23?")
    errors = caught.value.errors
    assert set(errors) == {"p/400", "p/errchunk", "p/malformed"}
    assert "HTTP 400" in errors["p/400"]
    assert "malformed JSON" in errors["p/malformed"]
    assert secret not in str(caught.value) and secret not in repr(caught.value.report)


async def test_quorum_straggler_is_abandoned_on_the_server(sim: Simulator, secret: str) -> None:
    fusion = _fusion(sim, secret, ["p/plain", "p/other", "p/hang"], mode="best_of", quorum=2)
    msg = await fusion.ainvoke("What is 17*23?")
    statuses = [c["status"] for c in msg.response_metadata["fusion"]["candidates"]]
    assert statuses == ["ok", "ok", "cancelled"]
    deadline = time.monotonic() + 5
    while sim.stats().models["p/hang"].abandoned != 1:  # its connection was closed
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
