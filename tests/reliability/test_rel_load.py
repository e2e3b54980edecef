"""Load: many concurrent fusions over real HTTP with about 10% of member calls faulted.

The simulator's `load/*` members fail at random, drawn from the scenario seed: 429, 500,
502, 503, malformed JSON, a cut body, an error in the body (each 1-2%), or hang for 1.5 s
before answering (1%). Every fusion must end with an answer or the documented error
(`NotEnoughAnswersError` when all three members failed); nothing else may be raised; every
failure is in a report; and the per-model usage summed over every report equals what the
simulator billed.

100 concurrent fusions by default: 200 take about 25 s of one core through ChatOpenAI
(4-5 calls a fusion, the simulator in the same process). Run the full variant with
`RELIABILITY_LOAD_FUSIONS=200 pytest tests/reliability/test_rel_load.py`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from entries import wait_for
from rel_helpers import (
    PROMPT,
    assert_every_fault_reported,
    assert_usage_matches,
    call,
    faults_by_kind,
    openai_chat,
    run_concurrently,
)

from langchain_fusion import FusionChatModel, JudgeError, NotEnoughAnswersError
from langchain_fusion.sim import Simulator

FUSIONS = int(os.environ.get("RELIABILITY_LOAD_FUSIONS", "100"))
MODES = ("best_of", "merge", "debate", "vote")
MEMBERS = ("load/ada", "load/bob", "load/cy")


@pytest.mark.timeout(110)
@pytest.mark.usefixtures("warm_async")
async def test_concurrent_fusions_with_random_faults(sim: Simulator) -> None:
    pool = {name.split("/")[1]: openai_chat(sim, name, timeout=60) for name in MEMBERS}
    judge = openai_chat(sim, "load/judge", timeout=60)

    async def fusion(i: int) -> Any:
        model = FusionChatModel(
            pool=pool, judge=judge, mode=MODES[i % 4], seed=i, debate_rounds=1, deadline=90
        )
        return await call("astream" if i % 2 else "ainvoke", model)

    results, elapsed = await run_concurrently(fusion(i) for i in range(FUSIONS))
    assert not any(isinstance(r, JudgeError) for r in results)  # the judge never fails here
    reports = [
        r.report if isinstance(r, NotEnoughAnswersError) else r.response_metadata["fusion"]
        for r in results
    ]
    answered = sum(1 for r in results if not isinstance(r, BaseException))
    assert answered >= FUSIONS * 0.95  # all three members failing is rare (about 1 in 1,000)

    await wait_for(lambda: sim.stats().totals.in_flight == 0, timeout=5.0)
    stats = sim.stats()
    requests = sum(stats.models[name].requests for name in MEMBERS)
    faults = faults_by_kind(stats, MEMBERS)
    assert 0.05 * requests < sum(faults.values()) < 0.15 * requests, (requests, faults)
    # Every faulted call, and no other, is a failure in a report, with its error (a hang
    # only delays its answer). A member that fails is out of the fusion (debate included),
    # so each failed candidate is one failed call.
    assert_every_fault_reported(reports, faults)
    # Usage summed over every report is what the simulator billed, model by model. The
    # judge's streamed answers reach the fusion without their cost (ChatOpenAI drops it).
    assert_usage_matches(reports, sim, cost_known=frozenset(MEMBERS))
    assert elapsed < 90
    assert PROMPT
