"""Where the report's usage and cost could part from what the provider billed.

Each of these was a bug found by this suite (docs/reliability.md, "Bugs found", 1, 3, 4):

- a judge whose LangChain `stream()` yields one `AIMessage` (it does not stream: explicit
  `streaming=False`, `disable_streaming=True`, or no `_stream`) still judges a streamed merge
  or debate, and its billed answer is counted;
- a successful call that reports no usage (ChatOpenAI's structured output with
  `streaming=True`) makes the report say its cost is incomplete;
- so does a call cancelled after the provider may have billed it (a timeout or quorum
  racing the reply);
- a judge reply holding deeply nested JSON is an unreadable reply (a judge failure), not a
  `RecursionError` that loses every member answer.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field
from rel_helpers import NoStreamChat, TinyChat, call, openai_chat

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator
from langchain_fusion.testing import FakeChatModel, FakeJudge

pytestmark = [pytest.mark.timeout(30)]


def members() -> dict[str, TinyChat]:
    return {
        "ada": TinyChat(model="ada", answer="Rehearse the cutover."),
        "bob": TinyChat(model="bob", answer="Keep a tested rollback path."),
    }


@pytest.mark.parametrize("entry", ["stream", "astream"])
@pytest.mark.parametrize("mode", ["merge", "debate"])
async def test_a_judge_that_does_not_stream_still_judges_a_streamed_fusion(
    mode: str, entry: str
) -> None:
    fusion = FusionChatModel(pool=members(), judge=NoStreamChat(model="judge"), mode=mode)

    msg = await call(entry, fusion)

    report = msg.response_metadata["fusion"]
    assert (report["judge"]["status"], report["judge_fallback"]) == ("ok", False)
    assert str(msg.content).startswith("Keep a tested rollback path.")


@pytest.mark.usefixtures("warm_async")
@pytest.mark.parametrize("judge_kwargs", [{"streaming": False}, {"disable_streaming": True}])
async def test_a_non_streaming_judge_is_counted_over_http(
    sim: Simulator, judge_kwargs: dict[str, Any]
) -> None:
    pool = {name: openai_chat(sim, f"rel/{name}") for name in ("ada", "bob", "cy")}
    judge = openai_chat(sim, "rel/judge", **judge_kwargs)
    fusion = FusionChatModel(pool=pool, judge=judge, mode="debate", debate_rounds=1, seed=1)

    msg = await call("astream", fusion)

    report = msg.response_metadata["fusion"]
    billed = sim.stats().models["rel/judge"]
    assert report["judge"]["status"] == "ok"
    assert report["usage_by_model"]["rel/judge"]["output_tokens"] == billed.completion_tokens


@pytest.mark.usefixtures("warm_async")
@pytest.mark.parametrize("mode", ["best_of", "vote"])
async def test_a_call_without_usage_makes_the_cost_incomplete(sim: Simulator, mode: str) -> None:
    """ChatOpenAI with `streaming=True` drops the usage of its structured output (the
    judge's verdict): the simulator billed tokens the report lacks, and every other call
    reported its usage and cost."""
    pool = {name: openai_chat(sim, f"rel/{name}") for name in ("ada", "bob", "cy")}
    judge = openai_chat(sim, "rel/judge", streaming=True)
    fusion = FusionChatModel(pool=pool, judge=judge, mode=mode, seed=1)

    msg = await fusion.ainvoke("Review this migration plan for operational risks.")

    report = msg.response_metadata["fusion"]
    billed = sim.stats().models["rel/judge"]
    counted = report["usage_by_model"]["rel/judge"]
    exact = (counted["input_tokens"], counted["output_tokens"]) == (
        billed.prompt_tokens,
        billed.completion_tokens,
    )
    assert exact or report["cost_complete"] is False


class BilledThenSlow(FakeChatModel):
    """A provider that bills the answer at once, then is slow to deliver it."""

    delay: float = 1.0
    billed: list[int] = Field(default_factory=list)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self._answer(messages, 0)
        assert answer.usage_metadata is not None
        self.billed.append(answer.usage_metadata["total_tokens"])
        await asyncio.sleep(self.delay)  # the reply is in transit
        return ChatResult(generations=[ChatGeneration(message=answer)])


@pytest.mark.parametrize("how", ["member_timeout", "quorum"])
async def test_a_call_cancelled_after_billing_makes_the_cost_incomplete(how: str) -> None:
    priced: dict[str, Any] = {"cost_per_token": 1e-6}  # every other call's cost is known
    late = BilledThenSlow(model="late", responses=["A late answer."], billed=[], **priced)
    pool: dict[str, Any] = {
        "ada": FakeChatModel(model="ada", responses=["Cut over."], latency=0.2, **priced),
        "bob": FakeChatModel(model="bob", responses=["Roll back."], latency=0.2, **priced),
        "late": late,
    }
    settings = {"member_timeout": 0.4} if how == "member_timeout" else {"quorum": 2}
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(**priced), mode="best_of", **settings)

    msg = await fusion.ainvoke("Question?")

    report = msg.response_metadata["fusion"]
    assert report["candidates"][2]["status"] in ("timeout", "cancelled")
    assert late.billed  # the provider billed the call the fusion gave up on
    assert report["cost_usd"] is not None
    assert report["cost_complete"] is False


DEEP = '{"winner": "A", "rationale": ' + "[" * (sys.getrecursionlimit() + 10) + "}"


class DeepJudge(TinyChat):
    """A judge without structured output whose every reply nests JSON too deep."""

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(DEEP)


@pytest.mark.parametrize("mode", ["best_of", "merge"])
async def test_a_judge_reply_of_deeply_nested_json_is_a_judge_failure(mode: str) -> None:
    pool = {
        "ada": FakeChatModel(model="ada", responses=["Rehearse the cutover."]),
        "bob": FakeChatModel(model="bob", responses=["Keep a rollback path."]),
    }
    fusion = FusionChatModel(pool=pool, judge=DeepJudge(model="judge"), mode=mode)

    msg = await fusion.ainvoke("Question?")

    report = msg.response_metadata["fusion"]
    if mode == "best_of":  # an unreadable verdict, after one corrective retry: fallback
        assert report["judge_fallback"] is True
        assert msg.content == "Rehearse the cutover."
    else:  # an unreadable comparison: the synthesis goes on without it
        assert report["comparison"] is None
        assert "unreadable judge reply" in report["comparison_error"]
