"""Failure isolation, judge failures, and input validation through `FusionChatModel`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.runnables import ConfigurableField
from pydantic import ValidationError

from langchain_fusion import (
    FusionChatModel,
    FusionError,
    FusionInputError,
    FusionRunError,
    JudgeError,
    NotEnoughAnswersError,
)
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing import FakeChatModel, FakeJudge

QUESTION = "Which river runs through Paris?"


def fusion_report(message: BaseMessage) -> dict[str, Any]:
    return message.response_metadata["fusion"]


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["candidates"]}


def judged_texts(judge: FakeJudge, call: int = 0) -> list[str]:
    text = "\n".join(m.text for m in judge.inputs[call])
    return sorted(extract_candidates(text).values())


async def invoke(entry: str, runnable: Any, prompt: Any = QUESTION) -> Any:
    """invoke in a worker thread, or ainvoke."""
    if entry == "invoke":
        return await asyncio.to_thread(runnable.invoke, prompt)
    return await runnable.ainvoke(prompt)


# -- member failures ------------------------------------------------------------------------


async def test_a_member_that_raises_is_recorded_and_the_fusion_goes_on(answer):
    broken = FakeChatModel(model="broken", error="quota exceeded for this key")
    a = FakeChatModel(model="a", responses=["The Seine."])
    b = FakeChatModel(model="b", responses=["The Seine runs through Paris."])
    judge = FakeJudge(rule="longest")
    fusion = FusionChatModel(pool=[broken, a, b], judge=judge, mode="best_of")

    message = await answer(fusion, QUESTION)

    assert message.content == "The Seine runs through Paris."
    report = fusion_report(message)
    entry = by_name(report)["broken"]
    assert entry["status"] == "error"
    assert "quota exceeded for this key" in entry["error"]
    assert "FakeMemberError" in entry["error"]
    assert entry["usage"]["total_tokens"] == 0
    assert by_name(report)["a"]["error"] is None
    assert judged_texts(judge) == ["The Seine runs through Paris.", "The Seine."]


async def test_a_finish_reason_error_is_a_failure(answer_invoke):
    cut = FakeChatModel(model="cut", responses=["The Sei"], finish_reason="error")
    ok = FakeChatModel(model="ok", responses=["The Seine."])
    other = FakeChatModel(model="other", responses=["It is the Seine."])
    judge = FakeJudge()
    fusion = FusionChatModel(pool=[cut, ok, other], judge=judge, mode="merge")

    report = fusion_report(await answer_invoke(fusion, QUESTION))

    assert by_name(report)["cut"]["status"] == "error"
    assert "finish_reason" in by_name(report)["cut"]["error"]
    assert all("The Sei\n" not in "\n".join(m.text for m in i) for i in judge.inputs)
    assert judged_texts(judge) == ["It is the Seine.", "The Seine."]
    # The tokens it spent are still counted.
    assert report["usage_by_model"]["cut"]["output_tokens"] == 2


async def test_member_timeout_async_cancels_the_call():
    slow = FakeChatModel(model="slow", responses=["Late."], latency=2.0)
    fast = [FakeChatModel(model=f"f{i}", responses=[f"Fast {i}."]) for i in range(2)]
    fusion = FusionChatModel(
        pool=[slow, *fast], judge=FakeJudge(), mode="best_of", member_timeout=0.15
    )
    started = time.monotonic()
    message = await fusion.ainvoke(QUESTION)
    assert time.monotonic() - started < 1.2
    entry = by_name(fusion_report(message))["slow"]
    assert entry["status"] == "timeout"
    assert entry["error"]
    assert slow.cancelled == 1


def test_member_timeout_sync_abandons_the_call():
    slow = FakeChatModel(model="slow", responses=["Late."], latency=1.5)
    fast = [FakeChatModel(model=f"f{i}", responses=[f"Fast {i}."]) for i in range(2)]
    fusion = FusionChatModel(
        pool=[slow, *fast], judge=FakeJudge(), mode="best_of", member_timeout=0.15
    )
    started = time.monotonic()
    message = fusion.invoke(QUESTION)
    assert time.monotonic() - started < 1.2
    assert by_name(fusion_report(message))["slow"]["status"] == "timeout"
    assert message.content in ("Fast 0.", "Fast 1.")


async def test_not_enough_answers_raises_with_what_arrived(answer_invoke):
    a = FakeChatModel(model="a", error="rate limited")
    b = FakeChatModel(model="b", responses=["The Seine."])
    c = FakeChatModel(model="c", responses=["ignored"], finish_reason="error")
    judge = FakeJudge()
    fusion = FusionChatModel(pool=[a, b, c], judge=judge, mode="merge", min_successful=2)

    with pytest.raises(NotEnoughAnswersError) as caught:
        await answer_invoke(fusion, QUESTION)

    error = caught.value
    assert isinstance(error, FusionRunError)
    assert isinstance(error, FusionError)
    assert set(error.answers) == {"b"}
    assert error.answers["b"].content == "The Seine."
    assert set(error.errors) == {"a", "c"}
    assert "rate limited" in error.errors["a"]
    assert "finish_reason" in error.errors["c"]
    assert "min_successful" in str(error)
    assert judge.calls == 0
    usage = error.report["usage"]
    assert usage["input_tokens"] == 2 * len(QUESTION.split())  # b and c were both billed
    assert usage["output_tokens"] == 2 + 1
    assert by_name(error.report)["a"]["status"] == "error"


async def test_not_enough_answers_when_streaming(stream_chunks):
    fusion = FusionChatModel(
        pool=[FakeChatModel(model="a", error="down"), FakeChatModel(model="b", error="down")],
        judge=FakeJudge(),
        mode="merge",
    )
    chunks, error = await stream_chunks(fusion, QUESTION)
    assert chunks == []
    assert isinstance(error, NotEnoughAnswersError)
    assert set(error.errors) == {"a", "b"}
    assert error.answers == {}


# -- judge failures -------------------------------------------------------------------------


def pool_with_late_first() -> list[FakeChatModel]:
    """A failing member, then `first` (slower) and `second` (faster): pool order != speed."""
    return [
        FakeChatModel(model="broken", error="boom"),
        FakeChatModel(model="first", responses=["First in pool order."], latency=0.1),
        FakeChatModel(model="second", responses=["Second in pool order."]),
    ]


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
async def test_judge_failure_falls_back_to_the_first_member_that_answered(answer, mode):
    fusion = FusionChatModel(
        pool=pool_with_late_first(),
        judge=FakeJudge(error="judge is down"),
        mode=mode,
        debate_rounds=0,
    )

    message = await answer(fusion, QUESTION)

    assert message.content == "First in pool order."
    report = fusion_report(message)
    assert report["judge_fallback"] is True
    assert "judge is down" in report["judge_error"]
    assert report["winner"] == "first"
    assert report["judge"]["status"] == "error"
    # The judge call's failure is counted, the members' usage is not lost.
    assert report["usage_by_model"]["first"]["total_tokens"] > 0


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
async def test_judge_failure_can_raise_with_every_answer(answer_invoke, mode):
    fusion = FusionChatModel(
        pool=pool_with_late_first(),
        judge=FakeJudge(error="judge is down"),
        mode=mode,
        debate_rounds=0,
        on_judge_failure="raise",
    )
    with pytest.raises(JudgeError) as caught:
        await answer_invoke(fusion, QUESTION)
    error = caught.value
    assert isinstance(error, FusionError)
    assert "judge is down" in str(error)
    assert {k: v.content for k, v in error.answers.items()} == {
        "first": "First in pool order.",
        "second": "Second in pool order.",
    }
    assert error.report["judge_fallback"] is True
    assert error.report["usage"]["total_tokens"] > 0


async def test_an_unreadable_verdict_gets_one_corrective_retry_then_falls_back(answer):
    judge = FakeJudge(verdict_reply="no idea, they are all fine")
    fusion = FusionChatModel(pool=pool_with_late_first(), judge=judge, mode="best_of")

    message = await answer(fusion, QUESTION)

    assert judge.calls == 2
    retry = judge.inputs[1]
    assert retry[: len(judge.inputs[0])] == judge.inputs[0]
    assert "could not be read" in retry[-1].text
    assert message.content == "First in pool order."
    report = fusion_report(message)
    assert report["judge_fallback"] is True
    assert "corrective retry" in report["judge_error"]
    assert report["judge"]["calls"] == 2


async def test_a_valid_reply_on_the_corrective_retry_is_used(answer):
    def replies(messages: list[BaseMessage]) -> str:
        if "could not be read" in messages[-1].text:
            return '{"winner": "B", "rationale": "second look"}'
        return "I cannot decide."

    judge = FakeJudge(respond=replies)
    fusion = FusionChatModel(pool=pool_with_late_first(), judge=judge, mode="best_of")

    message = await answer(fusion, QUESTION)

    assert judge.calls == 2
    report = fusion_report(message)
    assert report["judge_fallback"] is False
    chosen = report["labels"]["B"]
    assert report["winner"] == chosen
    assert (
        message.content
        == {
            "first": "First in pool order.",
            "second": "Second in pool order.",
        }[chosen]
    )
    assert report["rationale"] == "second look"


async def test_an_invalid_label_is_unreadable_too(answer_invoke):
    judge = FakeJudge(verdict_reply='{"winner": "Q"}')
    fusion = FusionChatModel(pool=pool_with_late_first(), judge=judge, mode="best_of")
    report = fusion_report(await answer_invoke(fusion, QUESTION))
    assert judge.calls == 2
    assert report["judge_fallback"] is True
    assert "'Q'" in report["judge_error"]


@pytest.mark.parametrize("mode", ["merge", "debate"])
async def test_a_synthesis_stream_breaking_midway_raises_judge_error(stream_chunks, mode):
    a = FakeChatModel(model="a", responses=["The Seine runs through Paris. It is long."])
    b = FakeChatModel(model="b", responses=["The Seine. It flows to Le Havre."])
    fusion = FusionChatModel(
        pool=[a, b], judge=FakeJudge(fail_after_chunks=3), mode=mode, debate_rounds=0
    )

    chunks, error = await stream_chunks(fusion, QUESTION)

    assert 1 <= len(chunks) <= 3  # part of the answer was already sent
    assert all(c.content for c in chunks)
    assert isinstance(error, JudgeError)
    assert set(error.answers) == {"a", "b"}
    assert error.report["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("mode", ["merge", "debate"])
async def test_a_synthesis_stream_failing_before_any_token_falls_back(stream_chunks, mode):
    fusion = FusionChatModel(
        pool=pool_with_late_first(),
        judge=FakeJudge(fail_after_chunks=0),
        mode=mode,
        debate_rounds=0,
    )

    chunks, error = await stream_chunks(fusion, QUESTION)

    assert error is None
    assert "".join(c.content for c in chunks) == "First in pool order."
    report = chunks[-1].response_metadata["fusion"]
    assert report["judge_fallback"] is True
    assert "stream broken" in report["judge_error"]


async def test_a_broken_stream_does_not_matter_when_not_streaming(answer_invoke):
    a = FakeChatModel(model="a", responses=["The Seine."])
    b = FakeChatModel(model="b", responses=["It flows to Le Havre."])
    fusion = FusionChatModel(pool=[a, b], judge=FakeJudge(fail_after_chunks=1), mode="merge")
    message = await answer_invoke(fusion, QUESTION)
    assert fusion_report(message)["judge_fallback"] is False
    assert "It flows to Le Havre." in message.content
    assert "The Seine." in message.content


# -- validation: bad input fails before any model is called ---------------------------------


def counted_pool() -> list[FakeChatModel]:
    return [FakeChatModel(model=f"m{i}", responses=[f"Answer {i}."]) for i in range(3)]


async def test_an_empty_message_list_is_refused_before_any_call(answer):
    pool = counted_pool()
    judge = FakeJudge()
    fusion = FusionChatModel(pool=pool, judge=judge, mode="merge")
    with pytest.raises(FusionInputError) as caught:
        await answer(fusion, [])
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, FusionError)
    assert "non-empty" in str(caught.value)
    assert [m.calls for m in pool] == [0, 0, 0]
    assert judge.calls == 0


async def test_an_unknown_per_call_argument_is_refused(answer_invoke):
    pool = counted_pool()
    fusion = FusionChatModel(pool=pool, judge=FakeJudge())
    with pytest.raises(FusionInputError, match="temperature"):
        await answer_invoke(fusion.bind(temperature=0.2), QUESTION)
    assert [m.calls for m in pool] == [0, 0, 0]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"quorum": 99}, "quorum"),
        ({"min_successful": 4}, "min_successful"),
        ({"mode": "majority"}, "mode"),
        ({"grace": -1}, "grace"),
        ({"quorum": 1, "min_successful": 2}, "quorum"),
    ],
)
async def test_an_invalid_per_call_override_fails_before_any_call(answer, override, field):
    pool = counted_pool()
    fusion = FusionChatModel(pool=pool, judge=FakeJudge())
    with pytest.raises(ValidationError) as caught:
        await answer(fusion.bind(**override), QUESTION)
    assert field in str(caught.value)
    assert [m.calls for m in pool] == [0, 0, 0]


async def test_per_call_mode_and_settings_take_effect(answer_invoke):
    pool = counted_pool()
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="merge")
    report = fusion_report(await answer_invoke(fusion.bind(mode="debate", debate_rounds=1)))
    assert report["mode"] == "debate"
    assert report["rounds"] == 1
    assert [m.calls for m in pool] == [2, 2, 2]
    report = fusion_report(await answer_invoke(fusion.bind(mode="best-of", criteria="brevity")))
    assert report["mode"] == "best_of"
    # The instance itself is unchanged.
    assert fusion_report(await answer_invoke(fusion))["mode"] == "merge"


async def test_configurable_mode(answer_invoke):
    fusion = FusionChatModel(pool=counted_pool(), judge=FakeJudge(), mode="merge")
    configurable = fusion.configurable_fields(mode=ConfigurableField(id="fusion_mode"))
    chosen = configurable.with_config(configurable={"fusion_mode": "best_of"})
    assert fusion_report(await answer_invoke(chosen))["mode"] == "best_of"
    assert fusion_report(await answer_invoke(configurable))["mode"] == "merge"


def test_bad_configuration_fails_at_construction():
    with pytest.raises(ValidationError, match="min_successful"):
        FusionChatModel(pool=counted_pool(), judge=FakeJudge(), min_successful=5)
    with pytest.raises(ValidationError, match="quorum"):
        FusionChatModel(pool=counted_pool(), judge=FakeJudge(), quorum=4)
    with pytest.raises(ValidationError, match="mode"):
        FusionChatModel(pool=counted_pool(), judge=FakeJudge(), mode="majority")
