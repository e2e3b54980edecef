"""A judge off protocol, over the simulator through `ChatOpenAI` members and judge.

The judges of `scenario.yaml` named `e2e/judge-<kind>` ignore `response_format`, forced
tool calls and JSON asked in words, as many self-hosted servers and real models sometimes
do: they answer in prose, in JSON under other keys, or not at all. Every judge call is
billed in the report as the simulator billed it, the corrective retry is made, and the
report names the cause.
"""

from __future__ import annotations

import pytest
from e2e_helpers import ANSWERS, PROMPT, assert_matches_stats, call, openai_chat, openrouter_chat

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

MEMBERS = ("e2e/ada", "e2e/bob", "e2e/cy")
KINDS = [("prose", "not_valid_json"), ("wrong_keys", "schema_mismatch"), ("empty", "empty")]


@pytest.mark.usefixtures("warm_async")
@pytest.mark.parametrize("entry", ["invoke", "astream"])
@pytest.mark.parametrize(("kind", "reason"), KINDS)
@pytest.mark.parametrize("mode", ["best_of", "merge"])
async def test_an_off_protocol_judge_is_billed_retried_and_named(
    sim: Simulator, mode: str, kind: str, reason: str, entry: str
) -> None:
    judge_model = f"e2e/judge-{kind}"
    fusion = FusionChatModel(
        pool=[openai_chat(sim, name) for name in MEMBERS],
        judge=openai_chat(sim, judge_model),
        mode=mode,
        seed=1,
    )

    msg = await call(entry, fusion)

    report = msg.response_metadata["fusion"]
    # Usage and cost: exactly what the simulator served and billed, every judge call in.
    # (ChatOpenAI drops the provider's cost of a streamed call: merge's synthesis, when the
    # fusion streams; the report then says the cost is incomplete.)
    streamed = mode == "merge" and entry == "astream"
    dropped = frozenset({judge_model}) if streamed else frozenset()
    assert_matches_stats(report, msg.usage_metadata, sim, cost_dropped=dropped)
    assert report["cost_complete"] is not streamed
    served = sim.stats().models[judge_model].requests
    # The verdict (best_of) or comparison (merge) and its one corrective retry; merge's
    # synthesis goes on without a comparison.
    assert served == {"best_of": 2, "merge": 3}[mode]
    assert report["judge"]["calls"] == served
    assert report["judge_failure"] == reason
    # The raw text of the judge's last reply (the retry's), as sent.
    raw = report["judge_raw"]
    if kind == "prose":
        assert raw and "{" not in raw
    elif kind == "wrong_keys":
        assert raw.startswith("{") and '"winner"' not in raw and '"consensus"' not in raw
    else:
        assert not raw  # nothing was sent
    if mode == "best_of":
        # No answer agrees with another: the fallback's rule keeps pool order.
        assert report["judge_fallback"] is True
        assert report["judge_fallback_rule"] == "most_agreed"
        assert msg.content == ANSWERS["e2e/ada"]
    else:
        assert report["judge_fallback"] is False
        assert report["comparison"] is None
        assert "unreadable judge reply after one corrective retry" in report["comparison_error"]
        assert msg.content  # the synthesis, written without the comparison


@pytest.mark.usefixtures("warm_async")
@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_a_panel_with_one_judge_down_answers_by_the_others(
    sim: Simulator, entry: str
) -> None:
    """Three judges (two clients), one answering 500: the two others agree on the answer
    that mentions a rollback (their `prefer`), and the third's failure is reported."""
    judges = [
        openai_chat(sim, "e2e/judge"),
        openai_chat(sim, "e2e/500"),
        openrouter_chat(sim, "e2e/judge-errchunk"),  # its fault is on request 2: not met
    ]
    fusion = FusionChatModel(
        pool=[openai_chat(sim, name) for name in MEMBERS], judge=judges, mode="best_of", seed=3
    )

    msg = await call(entry, fusion)

    report = msg.response_metadata["fusion"]
    assert_matches_stats(report, msg.usage_metadata, sim)
    assert msg.content == ANSWERS["e2e/bob"]
    statuses = [(v["judge"], v["status"], v["winner"]) for v in report["verdicts"]]
    assert statuses == [
        ("judge", "ok", "e2e/bob"),
        ("judge-2", "upstream_error", None),
        ("judge-3", "ok", "e2e/bob"),
    ]
    assert "boom 500 (e2e)" in report["verdicts"][1]["error"]
    assert report["judge_agreement"] == 1.0
    assert report["judge_fallback"] is False
    assert "judge_failure" not in report


@pytest.mark.usefixtures("warm_async")
async def test_a_panel_all_down_falls_back_with_every_call_counted(sim: Simulator) -> None:
    judges = [openai_chat(sim, f"e2e/{status}") for status in ("500", "502", "503")]
    fusion = FusionChatModel(
        pool=[openai_chat(sim, name) for name in MEMBERS], judge=judges, mode="best_of"
    )

    msg = await fusion.ainvoke(PROMPT)

    report = msg.response_metadata["fusion"]
    assert_matches_stats(report, msg.usage_metadata, sim)
    assert [v["status"] for v in report["verdicts"]] == ["upstream_error"] * 3
    assert report["judge_failure"] == "upstream_error"
    assert report["judge_fallback"] is True
    assert report["judge_fallback_rule"] == "most_agreed"
    assert msg.content == ANSWERS["e2e/ada"]  # no answer agrees with another: pool order
