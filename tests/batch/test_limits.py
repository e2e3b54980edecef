"""Per-model rate limits shared by every fusion in the process, on the simulator."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from batch_helpers import MODELS, max_in_window, quick_scenario
from pydantic import ValidationError

from langchain_fusion import ChatOpenAICompatible, FusionChatModel
from langchain_fusion._core.config import RateLimit
from langchain_fusion._runtime import limits
from langchain_fusion.sim import Simulator, run_simulator

WINDOW = 1
RPM = 100  # per window: 300 calls a model take three windows
#: How far a request's arrival at the simulator may lag its admission: a burst of 100
#: requests opens its connections and is serialised by the client's CPU (two cores shared
#: with the in-process simulator). The limiter keeps this margin (`margin_s`), so that the
#: simulator, counting on arrival, sees at most the limit in any window.
LAG_S = 1.5


def fusion_on(sim: Simulator, rate_limits: dict, **settings: object) -> FusionChatModel:
    return FusionChatModel(
        pool=[MODELS[0], MODELS[1]],
        judge=MODELS[2],
        api_key="sk-test",
        base_url=sim.openrouter_base_url,
        rate_limits=rate_limits,
        mode="best_of",  # one judge call a fusion
        **settings,
    )


async def test_300_concurrent_fusions_stay_under_every_models_limit(sim: Simulator) -> None:
    limit = {"rpm": RPM, "window_s": WINDOW, "margin_s": LAG_S}
    # Three fusion objects share the limiters: the registry is per process, not per fusion.
    fusions = [fusion_on(sim, {m: limit for m in MODELS}) for _ in range(3)]
    started = time.monotonic()
    results = await asyncio.gather(*(fusions[i % 3].ainvoke(f"Question {i}?") for i in range(300)))
    elapsed = time.monotonic() - started
    assert all(r.response_metadata["fusion"]["judge"]["status"] == "ok" for r in results)
    stats = sim.stats()
    for model in MODELS:
        times = stats.models[model].request_times
        assert len(times) == 300
        assert max_in_window(times, WINDOW) <= RPM, model
        # The check can fail: a window a little longer than the margin spans two bursts.
        assert max_in_window(times, 2 * WINDOW + LAG_S) > RPM
    # 300 calls at 100 per window: the third hundred cannot start before two windows.
    assert elapsed >= 2 * (WINDOW + LAG_S)


def test_sync_and_async_fusions_share_one_limit(sim: Simulator) -> None:
    limit = {MODELS[2]: {"rpm": 20, "window_s": 1, "margin_s": LAG_S}}
    fusion = fusion_on(sim, limit)
    errors: list[BaseException] = []

    def sync_side() -> None:
        try:
            fusion.batch([f"Sync {i}?" for i in range(20)])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sync_side)
    thread.start()

    async def async_side() -> None:
        await asyncio.gather(*(fusion.ainvoke(f"A {i}?") for i in range(20)))

    asyncio.run(asyncio.wait_for(async_side(), 30))
    thread.join(30)
    assert not errors
    times = sim.stats().models[MODELS[2]].request_times
    assert len(times) == 40
    assert max_in_window(times, 1) <= 20


def test_limiter_admits_exactly_the_limit_per_moving_window() -> None:
    limits.register({"m": RateLimit(rpm=5, window_s=1, margin_s=0)})
    limiter = limits.limiter_for("m")
    assert limiter is not None
    admitted = []
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        if limiter.try_admit(1) == 0.0:
            admitted.append(time.time())
        time.sleep(0.005)
    assert max_in_window(admitted, 1.0) == 5
    assert 10 <= len(admitted) <= 15


def test_tokens_per_window_hold_too() -> None:
    limits.register({"m": RateLimit(tpm=100, window_s=1, margin_s=0)})
    limiter = limits.limiter_for("m")
    assert limiter is not None
    assert limiter.try_admit(60) == 0.0
    wait = limiter.try_admit(60)
    assert 0.5 < wait <= 1.0  # the 60 tokens taken must leave the window first
    assert limiter.try_admit(40) == 0.0


@pytest.mark.parametrize("max_retries", [0, 2])
async def test_429_storm_pauses_the_model_for_every_fusion(max_retries: int) -> None:
    # The judge's first request gets a 429 asking for 1 s. Without retries the call fails
    # with it; with retries (the slug client's default) the client waits and retries, and
    # the limiter hears of the 429 as the client receives it: either way it pauses the
    # model for every fusion.
    faults = {MODELS[2]: [{"kind": "rate_limit", "requests": [1], "retry_after": 1.0}]}
    with run_simulator(quick_scenario(faults=faults)) as sim:

        def model(name: str) -> ChatOpenAICompatible:
            return ChatOpenAICompatible(
                model=name,
                base_url=sim.openai_base_url,
                api_key="sk-test",
                max_retries=max_retries,
            )

        fusion = FusionChatModel(
            pool=[model(MODELS[0]), model(MODELS[1])],
            judge=model(MODELS[2]),
            rate_limits={MODELS[2]: {"rpm": 1000}},
            mode="best_of",
        )

        async def one(i: int) -> tuple[float, float, str]:
            await asyncio.sleep(0.05 * i)  # fusions arrive over 1 s
            started = time.time()
            message = await fusion.ainvoke(f"Storm {i}?")
            return started, time.time(), message.response_metadata["fusion"]["judge"]["status"]

        results = await asyncio.gather(*(one(i) for i in range(20)))
        spans = [(start, end) for start, end, _ in results]
        times = sorted(sim.stats().models[MODELS[2]].request_times)
        faults_seen = sim.stats().models[MODELS[2]].faults
    assert faults_seen == {"rate_limit": 1}
    # every fusion called the judge once (the retried call twice); none was dropped
    assert len(times) == 20 + (max_retries > 0)
    judged = [status for _, _, status in results]
    assert judged.count("ok") == 20 - (max_retries == 0)  # a retried 429 costs no answer
    throttled_at = times[0]
    # Nothing reached the judge model in the second after the 429 ...
    assert times[1] - throttled_at >= 0.9
    # ... so every fusion that started in that second waited for the pause to end.
    waiting = [end for start, end in spans if throttled_at + 0.1 < start < throttled_at + 0.8]
    assert len(waiting) >= 10
    assert all(end >= throttled_at + 0.95 for end in waiting)


async def test_waiting_for_a_slot_counts_against_the_deadline(sim: Simulator) -> None:
    fusion = fusion_on(sim, {MODELS[2]: {"rpm": 1, "window_s": 30}}, deadline=1.0)
    first = await fusion.ainvoke("First?")
    assert first.response_metadata["fusion"]["judge"]["status"] == "ok"
    started = time.monotonic()
    second = await fusion.ainvoke("Second?")
    assert time.monotonic() - started < 3
    report = second.response_metadata["fusion"]
    assert report["judge_fallback"]  # no slot for the judge before the deadline
    assert sim.stats().models[MODELS[2]].requests == 1


def test_a_sync_call_gives_up_waiting_at_its_timeout(sim: Simulator) -> None:
    fusion = fusion_on(sim, {MODELS[0]: {"rpm": 1, "window_s": 30}}, member_timeout=0.5)
    fusion.invoke("First?")
    started = time.monotonic()
    second = fusion.invoke("Second?")
    assert time.monotonic() - started < 3
    statuses = {c["name"]: c["status"] for c in second.response_metadata["fusion"]["candidates"]}
    assert statuses[MODELS[0]] == "timeout"
    assert sim.stats().models[MODELS[0]].requests == 1


@pytest.mark.parametrize(
    ("value", "named"),
    [({"m": {}}, "rpm, tpm or both"), ({"m": {"rpm": 0}}, "rpm"), ({"m": {"rmp": 5}}, "rmp")],
)
def test_bad_rate_limits_fail_at_construction(value: dict, named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        FusionChatModel(pool=["a/b"], judge="a/b", api_key="k", rate_limits=value)


def test_a_second_fusion_with_other_figures_gets_the_stricter() -> None:
    limits.register({"m": RateLimit(rpm=100, tpm=1000)})
    limits.register({"m": RateLimit(rpm=1, window_s=1)})
    limiter = limits.limiter_for("m")
    assert limiter is not None
    assert limiter.limit == RateLimit(rpm=1, tpm=16, window_s=1)


async def test_streamed_judge_calls_wait_for_their_slot_too(sim: Simulator) -> None:
    # merge streams the judge's final answer (stream_call): both twins wait there too.
    fusion = FusionChatModel(
        pool=[MODELS[0], MODELS[1]],
        judge=MODELS[2],
        api_key="sk-test",
        base_url=sim.openrouter_base_url,
        mode="merge",
        rate_limits={MODELS[2]: {"rpm": 2, "window_s": 1, "margin_s": 0.2}},
    )
    started = time.monotonic()
    chunks = [c async for c in fusion.astream("Streamed A?")]
    chunks += await asyncio.to_thread(lambda: list(fusion.stream("Streamed B?")))
    elapsed = time.monotonic() - started
    assert chunks
    # Two fusions, two judge calls each (comparison, then the streamed answer): the
    # third and fourth call wait for the first two to leave the window.
    times = sim.stats().models[MODELS[2]].request_times
    assert len(times) == 4
    assert max_in_window(times, 1.0) <= 2
    assert elapsed >= 1.2


def test_fusionllm_takes_rate_limits_too() -> None:
    pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed")
    from llamaindex_fusion import FusionLLM

    llm = FusionLLM(pool=["a/b"], judge="a/b", api_key="k", rate_limits={"a/b": {"rpm": 5}})
    assert llm.rate_limits["a/b"].rpm == 5
