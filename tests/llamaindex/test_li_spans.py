"""Instrumentation: member and judge calls are child spans of the fusion's span, streaming
too, and a LlamaIndex member's own spans and events nest under its call's span."""

from __future__ import annotations

import pytest
from li_fakes import fake_judge_llm
from li_helpers import Instrumentation, call, fake
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent

from langchain_fusion.testing import FakeChatModel
from llamaindex_fusion import FusionLLM

pytestmark = pytest.mark.timeout(30)


def short(span_id: str | None) -> str:
    return (span_id or "").rsplit("-", 5)[0]


@pytest.mark.parametrize("mode", ["merge", "debate"])
async def test_member_and_judge_calls_are_child_spans_of_the_fusion(
    instrumentation: Instrumentation, method: str, mode: str
) -> None:
    li_member = fake("a", "Paris is the capital. It is big.")
    pool = [li_member, FakeChatModel(model="b", responses=["Paris is the capital."])]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode=mode, debate_rounds=1)

    answer = await call(llm, method, "What is the capital of France?")

    spans = {s.id_: s for s in instrumentation.finished()}
    assert not instrumentation.spans.open_spans
    (fusion,) = [s for s in spans.values() if short(s.id_) == f"FusionLLM.{method}"]
    assert fusion.parent_id is None
    calls = [s for s in spans.values() if s.id_.startswith("fusion:")]
    assert calls and all(s.parent_id == fusion.id_ for s in calls)
    seen = {(s.tags["fusion_role"], s.tags["fusion_member"], s.tags["fusion_step"]) for s in calls}
    expected = {
        ("member", "a", "answer"),
        ("member", "b", "answer"),
        ("judge", "judge", "synthesis"),
    }
    assert expected <= seen
    if mode == "debate":
        assert {("member", "a", "revise"), ("member", "b", "revise")} <= seen
    # the calls' count is the report's: one span per call, none lost
    report = answer.report
    assert len(calls) == sum(c["calls"] for c in report["candidates"]) + report["judge"]["calls"]
    # a LlamaIndex member's (and judge's) own spans nest under the span of its call
    own = [s for s in spans.values() if short(s.id_).startswith("FakeLLM.")]
    assert own and all(spans[s.parent_id].id_.startswith("fusion:") for s in own if s.parent_id)
    assert all(s.parent_id for s in own)

    # events: the fusion's own start/end, and each LlamaIndex call's under its span, tagged
    events = instrumentation.events.events
    starts = [e for e in events if isinstance(e, LLMChatStartEvent)]
    ends = [e for e in events if isinstance(e, LLMChatEndEvent)]
    fusion_end = next(e for e in ends if e.span_id == fusion.id_) if "chat" in method else None
    if fusion_end is not None:
        assert fusion_end.response.additional_kwargs["fusion"]["mode"] == mode
    member_starts = [e for e in starts if e.tags.get("fusion_member") == "a"]
    assert member_starts
    assert all(
        short(spans[e.span_id].parent_id).startswith("fusion:member:a") for e in member_starts
    )


async def test_a_failed_call_drops_its_span(instrumentation: Instrumentation) -> None:
    pool = [fake("a", "fine."), fake("b", error="boom")]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="merge")
    await call(llm, "astream_chat", "Hello?")
    dropped = [s for s in instrumentation.spans.dropped_spans if s.id_.startswith("fusion:")]
    assert [s.tags["fusion_member"] for s in dropped] == ["b"]
    assert "boom" in dropped[0].metadata["error"]
    assert not instrumentation.spans.open_spans
