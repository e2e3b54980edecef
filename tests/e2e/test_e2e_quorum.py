"""Quorum and grace over real HTTP: what happens to the straggler's request on the server.

Ada and bob answer in a few milliseconds; `e2e/slow` only after 2 s. With `quorum=2` the
fusion judges as soon as two members answered and the grace period passed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from e2e_helpers import ANSWERS, PROMPT, assert_matches_stats, chat
from entries import wait_for

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("warm_async")]

STRAGGLER_S = 2.0  # e2e/slow's time to first token (scenario.yaml)


def quorum_fusion(sim: Simulator, client: str, **straggler: Any) -> FusionChatModel:
    pool = [
        chat(sim, client, "e2e/ada"),
        chat(sim, client, "e2e/slow", **straggler),
        chat(sim, client, "e2e/bob"),
    ]
    return FusionChatModel(
        pool=pool,
        judge=chat(sim, client, "e2e/judge"),
        mode="best_of",
        quorum=2,
        grace=0.05,
        seed=3,
    )


def check_answer(msg: Any) -> dict[str, Any]:
    assert msg.content == ANSWERS["e2e/bob"]
    report: dict[str, Any] = msg.response_metadata["fusion"]
    assert [(c["name"], c["status"]) for c in report["candidates"]] == [
        ("e2e/ada", "ok"),
        ("e2e/slow", "cancelled"),
        ("e2e/bob", "ok"),
    ]
    assert report["candidates"][1]["error"] == "cancelled: quorum reached"
    assert report["winner"] == "e2e/bob"
    return report


@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
@pytest.mark.parametrize("client", ["openai", "openrouter"])
async def test_async_quorum_abandons_the_stragglers_request_and_finishes_early(
    sim: Simulator, client: str, entry: str
) -> None:
    model = quorum_fusion(sim, client)

    started = time.monotonic()
    if entry == "ainvoke":
        msg = await model.ainvoke(PROMPT)
    else:
        chunks = [chunk async for chunk in model.astream(PROMPT)]
        msg = chunks[0]
        for chunk in chunks[1:]:
            msg += chunk
    elapsed = time.monotonic() - started

    assert elapsed < STRAGGLER_S / 2  # well before the straggler would have answered
    report = check_answer(msg)
    assert report["timings"]["total_s"] < STRAGGLER_S / 2
    # The straggler's task was cancelled, which closed its connection: the simulator saw the
    # client go away before the first token, and billed nothing.
    await wait_for(lambda: sim.stats().models["e2e/slow"].abandoned == 1)
    row = sim.stats().models["e2e/slow"]
    assert (row.requests, row.completed, row.in_flight, row.completion_tokens) == (1, 0, 0, 0)
    # Here nothing was billed, but a fusion cannot know that: the provider may bill a
    # request cut off after it went out.
    assert_matches_stats(report, msg.usage_metadata, sim, given_up=True)
    assert report["candidates"][1]["usage_unknown"] is True


@pytest.mark.parametrize("client", ["openai", "openrouter"])
async def test_sync_quorum_returns_early_but_cannot_close_the_stragglers_request(
    sim: Simulator, client: str
) -> None:
    """What the sync path does with a straggler, documented.

    The sync driver runs members in threads, and a thread blocked in an HTTP read cannot be
    interrupted: the fusion returns as early as the async one, but the straggler's request
    stays open, its thread abandoned. The server finishes and bills it after the fusion
    returned; the report, written at return, shows it `cancelled` with no usage. The
    straggler's tokens are thus paid for but absent from the fusion's usage and cost.
    """
    model = quorum_fusion(sim, client)

    started = time.monotonic()
    msg = await asyncio.to_thread(model.invoke, PROMPT)
    elapsed = time.monotonic() - started

    assert elapsed < STRAGGLER_S / 2
    report = check_answer(msg)
    assert sim.stats().models["e2e/slow"].in_flight == 1  # still waiting on the server
    await wait_for(lambda: sim.stats().models["e2e/slow"].in_flight == 0)
    row = sim.stats().models["e2e/slow"]
    assert (row.abandoned, row.completed) == (0, 1)  # answered in full to an abandoned thread
    assert row.completion_tokens > 0 and row.cost > 0  # billed...
    unreported = report["usage_by_model"]["e2e/slow"]
    assert (unreported["calls"], unreported["output_tokens"]) == (1, 0)  # ...not reported
    assert unreported["cost_usd"] is None
    for name in ("e2e/ada", "e2e/bob", "e2e/judge"):  # the rest is exact
        billed = sim.stats().models[name]
        used = report["usage_by_model"][name]
        assert (used["input_tokens"], used["output_tokens"]) == (
            billed.prompt_tokens,
            billed.completion_tokens,
        )


async def test_sync_quorum_straggler_with_a_client_timeout_is_cut_by_the_client(
    sim: Simulator,
) -> None:
    """The only bound on an abandoned sync straggler is its own client's timeout."""
    model = quorum_fusion(sim, "openai", timeout=0.5)

    msg = await asyncio.to_thread(model.invoke, PROMPT)

    check_answer(msg)
    await wait_for(lambda: sim.stats().models["e2e/slow"].abandoned == 1)
    row = sim.stats().models["e2e/slow"]
    assert (row.completed, row.in_flight, row.completion_tokens) == (0, 0, 0)
