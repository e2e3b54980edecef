"""Every mode, sync and async, streaming and not, over pools of real clients.

Pools: three `ChatOpenAI`, three `ChatOpenRouter`, and a mix (two ChatOpenAI members, one
ChatOpenRouter member, a ChatOpenRouter judge). The fused answer is what the scenario's
judge writes; the report's per-model calls, tokens and cost are what `/stats` says was
served and billed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import (
    ANSWERS,
    ENTRIES,
    POOLS,
    PROMPT,
    SYNTHESIS,
    assert_matches_stats,
    call,
    chat,
    make_pool,
    pool_clients,
)
from langchain_core.messages import AIMessageChunk
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("warm_async")]

MODES = ["best_of", "merge", "debate", "vote"]
# Three different answers: vote finds no majority and asks the judge, as best_of does.
EXPECTED = {
    "best_of": ANSWERS["e2e/bob"],
    "merge": SYNTHESIS,
    "debate": SYNTHESIS,
    "vote": ANSWERS["e2e/bob"],
}
# verdict; comparison + synthesis; final synthesis; verdict among the tied answers
JUDGE_CALLS = {"best_of": 1, "merge": 2, "debate": 1, "vote": 1}
MEMBER_CALLS = {"best_of": 1, "merge": 1, "debate": 2, "vote": 1}  # debate: answer + revision


def fusion(sim: Simulator, kind: str, mode: str, **settings: Any) -> FusionChatModel:
    pool, judge = make_pool(sim, kind)
    settings.setdefault("debate_rounds", 1)
    return FusionChatModel(pool=pool, judge=judge, mode=mode, seed=3, **settings)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", POOLS)
async def test_fused_answer_and_accounting_match_the_simulator(
    sim: Simulator, kind: str, mode: str, entry: str
) -> None:
    msg = await call(entry, fusion(sim, kind, mode))

    assert msg.content == EXPECTED[mode]
    report = msg.response_metadata["fusion"]
    assert report["mode"] == mode
    assert [(c["name"], c["status"], c["calls"]) for c in report["candidates"]] == [
        (name, "ok", MEMBER_CALLS[mode]) for name in ("e2e/ada", "e2e/bob", "e2e/cy")
    ]
    assert report["judge"]["status"] == "ok"
    assert report["judge"]["calls"] == JUDGE_CALLS[mode]
    assert report["judge_fallback"] is False
    if mode in ("best_of", "vote"):
        assert report["winner"] == "e2e/bob"
    if mode == "vote":
        assert [v["count"] for v in report["votes"]] == [1, 1, 1]
    if mode == "debate":
        assert report["rounds"] == 1
    assert msg.response_metadata["finish_reason"] == "stop"

    stats = sim.stats()
    assert stats.models["e2e/judge"].requests == JUDGE_CALLS[mode]
    assert stats.totals.in_flight == 0
    assert stats.totals.abandoned == 0
    # Members are always called without streaming; a streaming fusion streams the judge's
    # synthesis (merge, debate), and nothing when the answer is a member's (best_of, vote).
    streamed = 1 if entry.endswith("stream") and mode in ("merge", "debate") else 0
    assert stats.models["e2e/judge"].stream_requests == streamed
    assert stats.totals.stream_requests == streamed

    _, judge_client = pool_clients(kind)
    dropped: frozenset[str] = frozenset()
    if streamed and judge_client == "openai":
        # ChatOpenAI drops OpenRouter's `usage.cost` when streaming: the judge's streamed
        # synthesis reaches the fusion with its tokens but without its cost. The client keeps
        # the tokens (stream_usage=True), and the report says its cost is incomplete.
        dropped = frozenset({"e2e/judge"})
        judge_cost = report["usage_by_model"]["e2e/judge"]["cost_usd"]
        if mode == "debate":
            assert judge_cost is None  # its only call was the streamed one
        else:
            assert 0 < judge_cost < stats.models["e2e/judge"].cost  # the comparison's cost
    assert_matches_stats(report, msg.usage_metadata, sim, cost_dropped=dropped)


@pytest.mark.parametrize(("kind", "entry"), [("openai", "stream"), ("mixed", "astream")])
async def test_streamed_merge_sends_the_judges_tokens_then_one_usage_chunk(
    sim: Simulator, kind: str, entry: str
) -> None:
    model = fusion(sim, kind, "merge")
    if entry == "stream":
        chunks = await asyncio.to_thread(lambda: list(model.stream(PROMPT)))
    else:
        chunks = [chunk async for chunk in model.astream(PROMPT)]

    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    text = [c.content for c in chunks if c.content]
    assert "".join(text) == SYNTHESIS
    assert len(text) > 5  # token by token, as the judge streamed them
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1
    assert chunks[-1] is with_usage[0]
    assert chunks[-1].chunk_position == "last"
    assert sim.stats().models["e2e/judge"].streams_completed == 1


class MemberAnswers(BaseTracer):
    """Keeps what each member answered, from the member runs traced under the fusion."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _end_trace(self, run: Run) -> None:
        super()._end_trace(run)
        self.runs.append(run)

    def of(self, name: str) -> list[str]:
        runs = sorted(
            (r for r in self.runs if r.name == f"fusion:member:{name}"),
            key=lambda r: r.start_time,
        )
        return [r.outputs["generations"][0][0]["text"] for r in runs if r.outputs]


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_debate_on_a_bank_question_revises_to_the_majority(
    sim: Simulator, entry: str
) -> None:
    """17*23: bob (accuracy 0) answers wrong, then joins the majority; the judge agrees."""
    answers = MemberAnswers()
    model = fusion(sim, "mixed", "debate", debate_rounds=2).with_config(callbacks=[answers])

    msg = await call(entry, model, "What is 17*23?")

    bob = answers.of("e2e/bob")
    assert len(bob) == 3 and bob[0].startswith("It is ") and bob[0] != "It is 391."
    assert bob[1:] == ["It is 391.", "It is 391."]
    assert answers.of("e2e/ada") == ["The answer is 391."] * 3
    # The final synthesis combines the (now agreeing) answers' sentences.
    assert msg.content == "The answer is 391. 391, clearly. It is 391."
    report = msg.response_metadata["fusion"]
    assert report["rounds"] == 2
    nodes = report["debate"]["nodes"]
    assert sorted((n["round"], n["member"], n["status"]) for n in nodes) == [
        (r, m, "ok") for r in range(3) for m in ("e2e/ada", "e2e/bob", "e2e/cy")
    ]
    assert_matches_stats(report, msg.usage_metadata, sim)


@pytest.mark.parametrize("entry", ["stream", "ainvoke"])
async def test_vote_with_a_majority_never_calls_the_judge(sim: Simulator, entry: str) -> None:
    pool = {
        "ada-openai": chat(sim, "openai", "e2e/ada"),
        "bob": chat(sim, "openrouter", "e2e/bob"),
        "ada-openrouter": chat(sim, "openrouter", "e2e/ada"),
    }
    model = FusionChatModel(pool=pool, judge=chat(sim, "openai", "e2e/judge"), mode="vote")

    msg = await call(entry, model)

    assert msg.content == ANSWERS["e2e/ada"]
    report = msg.response_metadata["fusion"]
    assert report["winner"] == "ada-openai"
    assert report["judge_skipped"] == "majority"
    assert [v["members"] for v in report["votes"]] == [["ada-openai", "ada-openrouter"], ["bob"]]
    assert report["judge"]["status"] == "skipped"
    assert sim.stats().models["e2e/judge"].requests == 0
    assert_matches_stats(report, msg.usage_metadata, sim)


def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "sunny"


@pytest.mark.parametrize("entry", ["invoke", "astream"])
@pytest.mark.parametrize("mode", MODES)
async def test_tool_calls_reach_the_caller_in_every_mode(
    sim: Simulator, mode: str, entry: str
) -> None:
    """Every member proposes get_weather(San Francisco, CA); best_of and vote return a
    member's call as written, merge and debate the call the judge (bound with the same
    tools) writes from the candidates' proposals."""
    model = fusion(sim, "mixed", mode).bind_tools([get_weather])

    msg = await call(entry, model, "What is the weather in San Francisco, CA?")

    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        ("get_weather", {"location": "San Francisco, CA"})
    ]
    assert msg.tool_calls[0]["id"]
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    report = msg.response_metadata["fusion"]
    stats = sim.stats()
    members = [stats.models[n].tool_calls for n in ("e2e/ada", "e2e/bob", "e2e/cy")]
    assert members == [1, 1, 1]
    if mode == "debate":  # identical proposals agree: no revision round
        assert report["debate"]["stopped_early"] is True
    if mode == "vote":  # the same call from everyone: a majority, no judge
        assert report["judge_skipped"] == "majority"
    # The judge (ChatOpenRouter) answers its verdict (best_of) and comparison (merge) in
    # text, read by the library's parser (never the provider's structured output, which
    # can lose an off-schema reply and its usage), and writes the fused call in merge and
    # debate.
    judge_calls = {"best_of": 0, "merge": 1, "debate": 1, "vote": 0}[mode]
    assert stats.models["e2e/judge"].tool_calls == judge_calls
    assert_matches_stats(report, msg.usage_metadata, sim)
