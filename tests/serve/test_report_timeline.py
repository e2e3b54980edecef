"""The report's timeline: one entry per call, with its start, first token and end."""

from __future__ import annotations

import json

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge


def test_timeline_has_every_call_with_its_times_and_status():
    pool = {
        "a": FakeChatModel(responses=["Paris"], latency=0.02),
        "b": FakeChatModel(error="provider down"),
        "c": FakeChatModel(responses=["Lyon"], latency=2.0),
        "d": FakeChatModel(responses=["Paris, on the Seine"], latency=0.04),
    }
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="merge", quorum=2, grace=0.05)
    *_, last = fusion.stream("What is the capital of France?")
    report = last.response_metadata["fusion"]
    json.dumps(report)  # still JSON-serialisable
    timeline = report["timeline"]
    by_name = {(e["name"], e["step"]): e for e in timeline}
    assert by_name[("b", "answer")]["status"] == "error"
    assert by_name[("c", "answer")]["status"] == "cancelled"
    assert by_name[("a", "answer")]["status"] == "ok"
    for entry in timeline:
        assert 0 <= entry["start_s"] <= entry["end_s"] < 2.0
    # the cancelled straggler ended when the grace ran out, long before its answer was due
    assert by_name[("c", "answer")]["end_s"] < 1.0
    judge_calls = [e for e in timeline if e["role"] == "judge"]
    first_answers = by_name[("d", "answer")]["end_s"]
    assert judge_calls and all(e["start_s"] >= first_answers for e in judge_calls)
    streamed = [e for e in judge_calls if e["first_token_s"] is not None]
    assert streamed, "the judge's streamed answer records its first token"
    for e in streamed:
        assert e["start_s"] <= e["first_token_s"] <= e["end_s"]
