"""Tail control: concurrency, quorum and grace, deadline, bounded concurrency.

Timing bounds are generous: each test compares against what a wrong implementation would
take (e.g. the serial sum), never a precise figure.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from langchain_fusion import FusionChatModel
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing import FakeChatModel, FakeJudge

QUESTION = "How long is the Loire?"


def fusion_report(message: BaseMessage) -> dict[str, Any]:
    return message.response_metadata["fusion"]


def statuses(message: BaseMessage) -> dict[str, str]:
    return {c["name"]: c["status"] for c in fusion_report(message)["candidates"]}


def pool(*latencies: float) -> list[FakeChatModel]:
    return [
        FakeChatModel(model=f"m{i}", responses=[f"Answer {i} is about 1000 km."], latency=s)
        for i, s in enumerate(latencies)
    ]


class Clock:
    def __enter__(self) -> Clock:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.start


# -- members run concurrently ---------------------------------------------------------------


def test_latency_is_the_slowest_member_not_the_sum_sync():
    fusion = FusionChatModel(pool=pool(0.2, 0.4, 0.8), judge=FakeJudge(latency=0.1), mode="best_of")
    with Clock() as clock:
        message = fusion.invoke(QUESTION)
    assert 0.85 <= clock.elapsed < 1.3  # serial would be 1.5 s
    assert set(statuses(message).values()) == {"ok"}


async def test_latency_is_the_slowest_member_not_the_sum_async():
    fusion = FusionChatModel(pool=pool(0.2, 0.4, 0.8), judge=FakeJudge(latency=0.1), mode="best_of")
    with Clock() as clock:
        message = await fusion.ainvoke(QUESTION)
    assert 0.85 <= clock.elapsed < 1.3
    assert set(statuses(message).values()) == {"ok"}


async def test_latency_is_the_slowest_member_when_streaming_async():
    fusion = FusionChatModel(pool=pool(0.2, 0.4, 0.8), judge=FakeJudge(latency=0.1), mode="merge")
    with Clock() as clock:
        chunks = [c async for c in fusion.astream(QUESTION)]
    # merge makes two judge calls (0.1 s each): serial would be 1.6 s.
    assert 0.95 <= clock.elapsed < 1.4
    assert chunks[-1].response_metadata["fusion"]["judge_fallback"] is False


# -- quorum and grace -----------------------------------------------------------------------


async def test_quorum_and_grace_cancel_the_straggler_async():
    members = pool(0.05, 0.05, 2.0)
    judge = FakeJudge()
    fusion = FusionChatModel(pool=members, judge=judge, mode="best_of", quorum=2, grace=0.05)
    with Clock() as clock:
        message = await fusion.ainvoke(QUESTION)
    assert clock.elapsed < 1.0
    assert statuses(message) == {"m0": "ok", "m1": "ok", "m2": "cancelled"}
    assert members[2].cancelled == 1  # the asyncio task really was cancelled
    seen = extract_candidates("\n".join(m.text for m in judge.inputs[0]))
    assert sorted(seen.values()) == ["Answer 0 is about 1000 km.", "Answer 1 is about 1000 km."]
    straggler = fusion_report(message)["candidates"][2]
    assert "quorum" in straggler["error"]
    assert "abandoned" not in straggler


def test_quorum_and_grace_abandon_the_straggler_sync():
    members = pool(0.05, 0.05, 2.0)
    fusion = FusionChatModel(pool=members, judge=FakeJudge(), mode="best_of", quorum=2, grace=0.05)
    with Clock() as clock:
        message = fusion.invoke(QUESTION)
    assert clock.elapsed < 1.0
    assert statuses(message) == {"m0": "ok", "m1": "ok", "m2": "cancelled"}
    # a thread cannot be interrupted: its call runs on, and the report says so
    assert fusion_report(message)["candidates"][2]["abandoned"] is True


def test_an_abandoned_sync_call_makes_the_cost_incomplete():
    members = [
        FakeChatModel(model=f"m{i}", responses=["x"], latency=lat, cost_per_token=0.001)
        for i, lat in enumerate((0.05, 0.05, 2.0))
    ]
    judge = FakeJudge(cost_per_token=0.001)
    complete = FusionChatModel(pool=members[:2], judge=judge, mode="best_of").invoke(QUESTION)
    assert fusion_report(complete)["cost_complete"] is True
    fusion = FusionChatModel(pool=members, judge=judge, mode="best_of", quorum=2, grace=0.05)
    assert fusion_report(fusion.invoke(QUESTION))["cost_complete"] is False


async def test_quorum_and_grace_when_streaming(stream_chunks):
    members = pool(0.05, 0.05, 2.0)
    fusion = FusionChatModel(pool=members, judge=FakeJudge(), mode="merge", quorum=2, grace=0.05)
    with Clock() as clock:
        chunks, error = await stream_chunks(fusion, QUESTION)
    assert error is None
    assert clock.elapsed < 1.0
    report = chunks[-1].response_metadata["fusion"]
    assert [c["status"] for c in report["candidates"]] == ["ok", "ok", "cancelled"]


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_grace_lets_a_close_straggler_in(entry):
    members = pool(0.05, 0.05, 0.2)
    judge = FakeJudge()
    fusion = FusionChatModel(pool=members, judge=judge, mode="best_of", quorum=2, grace=0.6)
    with Clock() as clock:
        message = fusion.invoke(QUESTION) if entry == "invoke" else await fusion.ainvoke(QUESTION)
    assert statuses(message) == {"m0": "ok", "m1": "ok", "m2": "ok"}
    assert len(extract_candidates("\n".join(m.text for m in judge.inputs[0]))) == 3
    assert clock.elapsed < 0.6  # it did not sit out the rest of the grace period


async def test_quorum_counts_answers_not_failures():
    members = [
        FakeChatModel(model="bad", error="boom"),
        *pool(0.05, 0.3),
    ]
    fusion = FusionChatModel(pool=members, judge=FakeJudge(), mode="best_of", quorum=2)
    message = await fusion.ainvoke(QUESTION)
    assert statuses(message) == {"bad": "error", "m0": "ok", "m1": "ok"}


# -- the overall deadline -------------------------------------------------------------------


async def test_the_deadline_bounds_the_whole_fusion_async():
    members = pool(0.05, 0.05, 2.0)
    fusion = FusionChatModel(pool=members, judge=FakeJudge(), mode="best_of", deadline=0.3)
    with Clock() as clock:
        message = await fusion.ainvoke(QUESTION)
    assert clock.elapsed < 1.0
    assert statuses(message)["m2"] == "timeout"
    assert "deadline" in fusion_report(message)["candidates"][2]["error"]
    assert members[2].cancelled == 1
    assert message.content in ("Answer 0 is about 1000 km.", "Answer 1 is about 1000 km.")


def test_the_deadline_bounds_the_whole_fusion_sync():
    members = pool(0.05, 0.05, 2.0)
    fusion = FusionChatModel(pool=members, judge=FakeJudge(), mode="best_of", deadline=0.3)
    with Clock() as clock:
        message = fusion.invoke(QUESTION)
    assert clock.elapsed < 1.0
    assert statuses(message)["m2"] == "timeout"
    assert message.content in ("Answer 0 is about 1000 km.", "Answer 1 is about 1000 km.")


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_the_deadline_covers_the_judge_too(entry):
    judge = FakeJudge(latency=2.0)
    fusion = FusionChatModel(pool=pool(0.05, 0.05), judge=judge, mode="best_of", deadline=0.4)
    with Clock() as clock:
        message = fusion.invoke(QUESTION) if entry == "invoke" else await fusion.ainvoke(QUESTION)
    assert clock.elapsed < 1.5
    report = fusion_report(message)
    assert report["judge"]["status"] == "timeout"
    assert report["judge_fallback"] is True
    assert message.content == "Answer 0 is about 1000 km."


async def test_the_deadline_bounds_a_debate():
    members = [
        FakeChatModel(model=f"m{i}", responses=[f"Take {i}."], latency=0.15) for i in range(2)
    ]
    fusion = FusionChatModel(
        pool=members, judge=FakeJudge(), mode="debate", debate_rounds=10, deadline=0.5
    )
    with Clock() as clock:
        message = await fusion.ainvoke(QUESTION)
    assert clock.elapsed < 1.2  # ten rounds would take 1.65 s
    assert message.content
    assert fusion_report(message)["rounds"] < 10


# -- bounded concurrency --------------------------------------------------------------------


def test_max_concurrency_one_serialises_members_sync():
    fusion = FusionChatModel(pool=pool(0.2, 0.2, 0.2), judge=FakeJudge(), mode="best_of")
    with Clock() as clock:
        fusion.invoke(QUESTION, max_concurrency=1)
    assert clock.elapsed >= 0.58
    with Clock() as clock:
        fusion.invoke(QUESTION)
    assert clock.elapsed < 0.5


async def test_max_concurrency_one_serialises_members_async():
    fusion = FusionChatModel(pool=pool(0.2, 0.2, 0.2), judge=FakeJudge(), mode="best_of")
    with Clock() as clock:
        await fusion.bind(max_concurrency=1).ainvoke(QUESTION)
    assert clock.elapsed >= 0.58
    with Clock() as clock:
        await fusion.ainvoke(QUESTION)
    assert clock.elapsed < 0.5


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_member_timeout_starts_when_the_call_starts_not_when_queued(entry):
    fusion = FusionChatModel(
        pool=pool(0.15, 0.15, 0.15),
        judge=FakeJudge(),
        mode="best_of",
        max_concurrency=1,
        member_timeout=0.35,
    )
    with Clock() as clock:
        message = fusion.invoke(QUESTION) if entry == "invoke" else await fusion.ainvoke(QUESTION)
    assert clock.elapsed >= 0.44
    assert set(statuses(message).values()) == {"ok"}


class SwallowsOneCancel(FakeChatModel):
    """A straggler that loses its first cancellation, as Python 3.11's `asyncio.wait_for`
    does when a streamed chunk lands together with it (langchain-openai reads every chunk
    of a streaming call under `wait_for`)."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        import asyncio

        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # dropped, as wait_for drops it
        await asyncio.sleep(5.0)  # ...and it reads on
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def test_a_straggler_that_loses_its_cancellation_is_cancelled_again():
    import asyncio

    straggler = SwallowsOneCancel(model="m2", responses=["Late."])
    members = [*pool(0.05, 0.05), straggler]
    fusion = FusionChatModel(pool=members, judge=FakeJudge(), mode="best_of", quorum=2)
    before = set(asyncio.all_tasks())
    with Clock() as clock:
        message = await fusion.ainvoke(QUESTION)
    assert statuses(message)["m2"] == "cancelled"
    # Without a second cancellation the fan-out gives up on the task after 1 s and leaves it
    # running; cancelled again, it ends at once.
    assert clock.elapsed < 0.9
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []
