"""`FusionLLM` enters the fusion's deadline and retry scope, as `FusionChatModel` does.

A slug member (`ChatOpenAICompatible`) whose first request gets a 429 with a `Retry-After`
longer than the time left must not wait it out: the retry would start after the fusion's
deadline, so the call fails at once and the fusion answers from the others, within the
deadline. Through every calling method.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from li_helpers import SCENARIO, call

from langchain_fusion.sim import Scenario, Simulator, run_simulator
from llamaindex_fusion import FusionLLM

pytestmark = [pytest.mark.timeout(60)]

DEADLINE = 1.0
RETRY_AFTER = 1.5  # fits max_retry_delay, not the deadline
KEY = "sk-li-deadline"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    late = {
        "name": "t/late",
        "template": "Late: {answer}.",
        # every request rate-limited: a retry made would fail too, and show in the stats
        "faults": [{"kind": "rate_limit", "retry_after": RETRY_AFTER, "message": "slow down"}],
    }
    scenario = {**SCENARIO, "name": "li-deadline", "models": [*SCENARIO["models"], late]}
    with run_simulator(Scenario.model_validate(scenario)) as simulator:
        yield simulator


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_a_slug_members_retry_under_fusion_llm_stops_at_the_deadline(
    sim: Simulator, method: str
) -> None:
    llm = FusionLLM(
        pool={"plain": "t/plain", "late": "t/late"},
        judge="t/judge",
        api_key=KEY,
        base_url=sim.openrouter_base_url,
        mode="best_of",
        deadline=DEADLINE,
        seed=1,
    )
    started = time.monotonic()
    answer = await call(llm, method, "What is 17*23?")
    elapsed = time.monotonic() - started

    assert elapsed < DEADLINE, f"the retry waited out its Retry-After ({elapsed:.2f}s)"
    late = next(c for c in answer.report["candidates"] if c["name"] == "late")
    assert late["status"] == "error"
    assert "would start after the fusion's deadline" in late["error"], late["error"]
    assert answer.statuses()["plain"] == "ok"
    assert "391" in answer.text
