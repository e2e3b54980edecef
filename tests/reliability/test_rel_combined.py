"""Faults combined with the fusion's features, over real HTTP through `ChatOpenAI`.

The fault matrix (`test_rel_fault_matrix.py`) runs plain prompts; here a faulting member or
judge meets what else a fusion does:

- hedges (`hedge`, `hedge_after`): a primary that hangs, or fails after its backup started,
  is replaced by the backup; the report says which copy answered; the loser's request is
  closed; usage is what was billed. (A primary failing before `hedge_after`, a backup of
  another model and a sync hedge's loser: strict xfails, see below.)
- budgets (`max_cost_usd`, `prices`): a failing call costs nothing; the budget's `spent_usd`
  is exactly what the simulator billed (from reported costs, or priced from `prices` when
  streaming drops them); a judge over budget is skipped for the first member that answered.
- quorum and grace: a failure does not count towards the quorum; a member answering within
  the wait is in; a straggler is cancelled and its request closed; a quorum that cannot be
  reached ends in `NotEnoughAnswersError` at the member timeout.
- tools (`bind_tools`): a failing member is left out of the proposals; a failing judge in
  merge (its comparison, or its synthesis, the call that writes the tool calls) falls back
  to the first member's tool calls, streamed or not.
- structured output (`with_structured_output`) with a failing member or judge.
- images with a failing member: every member that can see gets the image, the failing one
  too; a text-only member sits out; when every seeing member fails, `NotEnoughAnswersError`.
  (A member that sits out is counted as a call to its model: a strict xfail.)

Each strict xfail is a bug found here, described in its reason.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Any

import pytest
from entries import wait_for
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel
from rel_helpers import ANSWERS, PROMPT, assert_usage_matches, call, openai_chat

from langchain_fusion import FusionChatModel, JudgeError, NotEnoughAnswersError
from langchain_fusion.sim import Simulator

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.usefixtures("warm_async"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # ChatOpenAI's structured output warns about serialising `parsed` (see docs/architecture.md).
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
]

#: How soon the simulator must see a cancelled request go, in seconds.
PROMPTLY = 1.0
CY = ANSWERS["rel/cy"]

#: The simulator's prices (scenario.yaml), as a fusion's `prices` table.
PRICES = {
    "rel/ada": {"prompt": 0.000001, "completion": 0.000004},
    "rel/bob": {"prompt": 0.000002, "completion": 0.000003},
    "rel/judge": {"prompt": 0.0000003, "completion": 0.0000006},
    "rel/f-500": {"prompt": 0.000001, "completion": 0.000002},
    "rel/f-broken": {"prompt": 0.000001, "completion": 0.000002},
}


def report_of(message: Any) -> dict[str, Any]:
    fused = message.response_metadata["fusion"]
    assert isinstance(fused, dict)
    return fused


def usage_of(message: Any) -> dict[str, Any]:
    usage = message.usage_metadata
    assert usage is not None
    return dict(usage)


def candidate(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["candidates"] if c["name"] == name)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["candidates"]}


def assert_tokens_billed(report: dict[str, Any], sim: Simulator) -> None:
    """Per model, the tokens in the report are the simulator's billed tokens, and the
    report's total usage is the simulator's total."""
    stats = sim.stats()
    billed = {
        name: (row.prompt_tokens, row.completion_tokens)
        for name, row in stats.models.items()
        if row.prompt_tokens or row.completion_tokens
    }
    reported = {
        name: (row["input_tokens"], row["output_tokens"])
        for name, row in report["usage_by_model"].items()
        if row["input_tokens"] or row["output_tokens"]
    }
    assert reported == billed
    assert report["usage"]["input_tokens"] == stats.totals.prompt_tokens
    assert report["usage"]["output_tokens"] == stats.totals.completion_tokens


async def idle(sim: Simulator, timeout: float = PROMPTLY) -> None:
    await wait_for(lambda: sim.stats().totals.in_flight == 0, timeout=timeout)


# -- hedges ---------------------------------------------------------------------------------


def hedged(sim: Simulator, primary: str, backup: Any = True, **settings: Any) -> FusionChatModel:
    """ada, bob and `h` (the hedged `primary`) in merge; the backup starts after 0.2 s."""
    pool = {
        "ada": openai_chat(sim, "rel/ada"),
        "bob": openai_chat(sim, "rel/bob"),
        "h": openai_chat(sim, primary),
    }
    return FusionChatModel(
        pool=pool,
        judge=openai_chat(sim, "rel/judge"),
        mode="merge",
        seed=3,
        hedge={"h": backup},
        hedge_after=0.2,
        deadline=8,
        **settings,
    )


def assert_merged_with_the_hedged_answer(message: Any) -> None:
    # The judge's synthesis: every distinct sentence, the preferred (rollback) answer first;
    # cy's sentence comes from the hedged member.
    assert message.content.startswith("Keep a tested rollback path")
    assert "Freeze writes during the migration window." in message.content


@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
async def test_a_hung_primary_is_replaced_by_its_backup(sim: Simulator, entry: str) -> None:
    """The primary's first request hangs 5 s; the backup (the same model) answers."""
    fusion = hedged(sim, "rel/c-hang-first")
    started = time.monotonic()
    message = await call(entry, fusion)
    assert time.monotonic() - started < 2.0

    assert_merged_with_the_hedged_answer(message)
    report = report_of(message)
    h = candidate(report, "h")
    assert (h["status"], h["hedge"], h["error"]) == ("ok", "backup", None)
    assert candidate(report, "ada").get("hedge") is None  # only hedged members say
    # The hung primary was closed by the fusion (abandoned), not by the simulator's 5 s.
    await idle(sim)
    row = sim.stats().models["rel/c-hang-first"]
    assert (row.requests, row.faults, row.abandoned, row.completed) == (2, {"hang": 1}, 1, 1)
    assert_tokens_billed(report, sim)
    assert message.usage_metadata["total_tokens"] == sim.stats().totals.total_tokens


async def test_a_primary_failing_after_its_backup_started_leaves_the_backup_to_answer(
    sim: Simulator,
) -> None:
    """The primary's first token is due after 0.4 s, and comes as an error event; its
    backup started at 0.2 s (first token at 0.6 s) and answers."""
    fusion = hedged(sim, "rel/c-late-fail-first")
    message = await fusion.ainvoke(PROMPT)

    assert_merged_with_the_hedged_answer(message)
    h = candidate(report_of(message), "h")
    assert (h["status"], h["hedge"], h["error"]) == ("ok", "backup", None)
    await idle(sim)
    row = sim.stats().models["rel/c-late-fail-first"]
    assert (row.requests, row.faults, row.completed) == (2, {"error_chunk": 1}, 1)
    assert_tokens_billed(report_of(message), sim)


async def test_a_primary_failing_fast_is_replaced_by_its_backup(sim: Simulator) -> None:
    fusion = hedged(sim, "rel/c-500-first")
    message = await fusion.ainvoke(PROMPT)

    h = candidate(report_of(message), "h")
    assert (h["status"], h.get("hedge")) == ("ok", "backup")
    assert_merged_with_the_hedged_answer(message)
    await idle(sim)
    row = sim.stats().models["rel/c-500-first"]
    assert (row.requests, row.faults, row.completed) == (2, {"server_error": 1}, 1)
    assert_tokens_billed(report_of(message), sim)


async def test_a_backup_of_another_model_is_billed_to_that_model(sim: Simulator) -> None:
    fusion = hedged(sim, "rel/f-hang", backup=openai_chat(sim, "rel/cy"))
    message = await fusion.ainvoke(PROMPT)

    h = candidate(report_of(message), "h")
    assert (h["status"], h["hedge"]) == ("ok", "backup")
    await idle(sim)
    assert sim.stats().models["rel/f-hang"].abandoned == 1
    assert_tokens_billed(report_of(message), sim)


async def test_a_sync_hedges_loser_is_counted_or_flagged(sim: Simulator) -> None:
    """The primary's first request hangs 1 s, then answers; the backup won at 0.2 s."""
    fusion = hedged(sim, "rel/c-hang1-first")
    message = await asyncio.to_thread(fusion.invoke, PROMPT)
    report = report_of(message)
    assert candidate(report, "h")["hedge"] == "backup"

    await idle(sim, timeout=3.0)  # the loser's hang ends, its answer is sent (and billed)
    row = sim.stats().models["rel/c-hang1-first"]
    assert row.requests == 2
    if candidate(report, "h").get("abandoned") is not True:
        assert_tokens_billed(report, sim)  # then every billed token must be in the report


# -- budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "failing"),
    [("ainvoke", "rel/f-500"), ("astream", "rel/f-broken")],
    ids=["plain-500", "stream-broken"],
)
async def test_a_failing_call_costs_nothing_in_the_budget(
    sim: Simulator, entry: str, failing: str
) -> None:
    """Plain: every call reports its cost. Streamed: ChatOpenAI drops the cost of streamed
    calls (members, the synthesis), so the budget prices them from `prices`; the cut stream
    left a partial answer without usage, which costs nothing."""
    streaming = entry == "astream"
    pool = {
        "bad": openai_chat(sim, failing, streaming=streaming),
        "ada": openai_chat(sim, "rel/ada", streaming=streaming),
        "bob": openai_chat(sim, "rel/bob", streaming=streaming),
    }
    fusion = FusionChatModel(
        pool=pool,
        judge=openai_chat(sim, "rel/judge"),
        mode="merge",
        seed=3,
        prices=PRICES,
        max_cost_usd=1.0,
    )
    message = await call(entry, fusion)

    report = report_of(message)
    assert statuses(report) == {"bad": "error", "ada": "ok", "bob": "ok"}
    assert message.content.startswith("Keep a tested rollback path")  # the judge wrote it
    assert report["judge"]["status"] == "ok"
    bad = candidate(report, "bad")
    assert (bad["usage"]["total_tokens"], bad["cost_usd"]) == (0, None)
    stats = sim.stats()
    assert stats.models[failing].requests == 1
    assert stats.models[failing].cost == 0.0
    budget = report["budget"]
    assert (budget["skipped"], budget["unpriced"]) == ([], [])
    assert budget["spent_usd"] == pytest.approx(stats.totals.cost, rel=1e-9, abs=1e-12)
    if streaming:  # the partial answer of the cut stream is kept, without usage
        assert stats.models[failing].unbilled_completion_tokens > 0
    assert_usage_matches(
        [report],
        sim,
        cost_known=frozenset() if streaming else None,
        usage=usage_of(message),
    )


@pytest.mark.parametrize("mode", ["best_of", "debate"])
async def test_a_judge_over_budget_is_skipped_for_the_first_answer_not_the_failed_member(
    sim: Simulator, mode: str
) -> None:
    """The failing member is first in pool order; the budget is spent by the answers."""
    pool = {
        "bad": openai_chat(sim, "rel/f-500"),
        "ada": openai_chat(sim, "rel/ada"),
        "bob": openai_chat(sim, "rel/bob"),
    }
    fusion = FusionChatModel(
        pool=pool,
        judge=openai_chat(sim, "rel/judge"),
        mode=mode,
        seed=3,
        debate_rounds=1,
        prices=PRICES,
        max_cost_usd=0.0001,  # the answers cost 0.00012
    )
    message = await fusion.ainvoke(PROMPT)

    report = report_of(message)
    assert statuses(report) == {"bad": "error", "ada": "ok", "bob": "ok"}
    assert message.content == ANSWERS["rel/ada"]
    assert report["winner"] == "ada"
    assert report["judge_skipped"] == "the judge would exceed max_cost_usd"
    expected = ["debate round 1", "judge"] if mode == "debate" else ["judge"]
    assert report["budget"]["skipped"] == expected
    stats = sim.stats()
    assert stats.models["rel/judge"].requests == 0
    assert {name: stats.models[name].requests for name in ("rel/ada", "rel/bob")} == {
        "rel/ada": 1,
        "rel/bob": 1,
    }
    assert report["budget"]["spent_usd"] == pytest.approx(stats.totals.cost, rel=1e-9)
    assert_usage_matches([report], sim, usage=usage_of(message))


# -- quorum and grace -----------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
async def test_a_failure_does_not_count_towards_the_quorum(sim: Simulator, entry: str) -> None:
    """quorum=2, grace=0.1 s: ada answers at once, bad fails at once, late answers after
    0.25 s (the quorum), slow would take 3 s. Were the failure counted, the grace would end
    at 0.1 s and leave late out."""
    pool = {
        "ada": openai_chat(sim, "rel/ada"),
        "bad": openai_chat(sim, "rel/f-500"),
        "late": openai_chat(sim, "rel/c-late"),
        "slow": openai_chat(sim, "rel/slow"),
    }
    fusion = FusionChatModel(
        pool=pool, judge=openai_chat(sim, "rel/judge"), mode="merge", seed=3, quorum=2, grace=0.1
    )
    started = time.monotonic()
    message = await call(entry, fusion)
    assert time.monotonic() - started < 2.0

    report = report_of(message)
    assert statuses(report) == {"ada": "ok", "bad": "error", "late": "ok", "slow": "cancelled"}
    assert candidate(report, "slow")["error"] == "cancelled: quorum reached"
    assert re.search(r"boom 500 \(rel\)", candidate(report, "bad")["error"])
    assert "Freeze writes during the migration window." in message.content  # late's answer
    await idle(sim)
    slow = sim.stats().models["rel/slow"]
    assert (slow.requests, slow.abandoned, slow.completed) == (1, 1, 0)
    assert_tokens_billed(report, sim)
    assert message.usage_metadata["total_tokens"] == sim.stats().totals.total_tokens


async def test_an_unreachable_quorum_ends_at_the_member_timeout(sim: Simulator) -> None:
    pool = {
        "ada": openai_chat(sim, "rel/ada"),
        "bad": openai_chat(sim, "rel/f-500"),
        "slow": openai_chat(sim, "rel/slow"),
    }
    fusion = FusionChatModel(
        pool=pool,
        judge=openai_chat(sim, "rel/judge"),
        mode="merge",
        quorum=2,
        min_successful=2,
        grace=0.1,
        member_timeout=0.5,
    )
    started = time.monotonic()
    with pytest.raises(NotEnoughAnswersError) as caught:
        await fusion.ainvoke(PROMPT)
    assert time.monotonic() - started < 2.0

    error = caught.value
    assert set(error.answers) == {"ada"}
    assert set(error.errors) == {"bad", "slow"}
    assert re.search(r"boom 500 \(rel\)", error.errors["bad"])
    assert error.errors["slow"] == "no answer within 0.5s"
    assert statuses(error.report) == {"ada": "ok", "bad": "error", "slow": "timeout"}
    await idle(sim)
    stats = sim.stats()
    assert (stats.models["rel/slow"].abandoned, stats.models["rel/judge"].requests) == (1, 0)
    assert_usage_matches([error.report], sim)


# -- tools ----------------------------------------------------------------------------------

TOOL_PROMPT = "Schedule the cutover of the migration."
ADA_CALL = {"name": "schedule_cutover", "args": {"day": "friday", "hours": 2}}
BOB_CALL = {
    "name": "schedule_cutover",
    "args": {"day": "sunday", "hours": 4, "note": "keep a rollback path"},
}


@tool
def schedule_cutover(day: str, hours: int, note: str = "") -> str:
    """Schedule the migration's cutover on a day, for a number of hours."""
    return f"scheduled on {day}"


def calls_of(message: Any) -> list[dict[str, Any]]:
    assert message.content == ""
    calls = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
    assert all(c["id"] for c in message.tool_calls)
    return calls


def tool_fusion(sim: Simulator, mode: str, judge: str = "rel/judge", bad: str | None = None) -> Any:
    pool = {"ada": openai_chat(sim, "rel/c-tool-ada"), "bob": openai_chat(sim, "rel/c-tool-bob")}
    if bad is not None:
        pool["bad"] = openai_chat(sim, bad)
    fusion = FusionChatModel(pool=pool, judge=openai_chat(sim, judge), mode=mode, seed=3)
    return fusion.bind_tools([schedule_cutover])


@pytest.mark.parametrize(
    ("mode", "entry", "bad"),
    [
        ("best_of", "ainvoke", "rel/f-500"),
        ("best_of", "astream", "rel/f-malformed"),
        ("merge", "ainvoke", "rel/f-malformed"),
        ("merge", "astream", "rel/f-500"),
    ],
)
async def test_tools_with_a_failing_member(sim: Simulator, mode: str, entry: str, bad: str) -> None:
    message = await call(entry, tool_fusion(sim, mode, bad=bad), TOOL_PROMPT)

    assert calls_of(message) == [BOB_CALL]  # the judge prefers bob's (rollback) proposal
    report = report_of(message)
    assert statuses(report) == {"ada": "ok", "bob": "ok", "bad": "error"}
    assert candidate(report, "bad")["error"]
    stats = sim.stats()
    assert [stats.models[f"rel/c-tool-{name}"].tool_calls for name in ("ada", "bob")] == [1, 1]
    # merge: the judge itself wrote the call (bound with the tools); best_of: bob's as is.
    assert stats.models["rel/judge"].tool_calls == (1 if mode == "merge" else 0)
    if mode == "best_of":
        assert report["winner"] == "bob"
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert_usage_matches(
        [report],
        sim,
        cost_known=frozenset() if entry == "astream" else None,
        usage=usage_of(message),
    )


@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
@pytest.mark.parametrize("judge", ["rel/judge-500", "rel/judge2-500", "rel/judge2-hang"])
async def test_tools_with_a_failing_judge_in_merge_fall_back_to_the_first_members_calls(
    sim: Simulator, judge: str, entry: str
) -> None:
    """The judge fails its comparison (judge-500) or its synthesis, the call bound with the
    tools that writes the calls (judge2-500; judge2-hang, past `judge_timeout`)."""
    fusion = tool_fusion(sim, "merge", judge=judge).bind(judge_timeout=0.4)
    message = await call(entry, fusion, TOOL_PROMPT)

    assert calls_of(message) == [ADA_CALL]  # the first member's calls, as proposed
    report = report_of(message)
    assert statuses(report) == {"ada": "ok", "bob": "ok"}
    assert (report["judge_fallback"], report["winner"]) == (True, "ada")
    if judge.endswith("hang"):
        assert report["judge"]["status"] == "timeout"
    else:
        assert re.search(r"boom 500 \(rel\)", report["judge_error"])
    assert report["judge"]["calls"] == (1 if judge == "rel/judge-500" else 2)
    assert message.response_metadata["finish_reason"] == "tool_calls"
    await idle(sim)
    assert sim.stats().models[judge].abandoned == (1 if judge.endswith("hang") else 0)
    assert_usage_matches([report], sim, usage=usage_of(message))


async def test_tools_with_a_judge_stream_broken_mid_call_raise_judge_error(sim: Simulator) -> None:
    """The judge's synthesis (its tool call, streamed) is cut after part of it was sent:
    sent chunks cannot be taken back, so `JudgeError` carries every member's calls."""
    fusion = tool_fusion(sim, "merge", judge="rel/judge2-broken")
    chunks: list[Any] = []
    with pytest.raises(JudgeError) as caught:
        async for chunk in fusion.astream(TOOL_PROMPT):
            chunks.append(chunk)
    assert chunks and chunks[0].tool_call_chunks  # part of the call went out
    error = caught.value
    assert {name: calls_of(m) for name, m in error.answers.items()} == {
        "ada": [ADA_CALL],
        "bob": [BOB_CALL],
    }
    assert error.report["judge"]["status"] == "error"
    assert_usage_matches([error.report], sim)


# -- structured output ----------------------------------------------------------------------

RISK_PROMPT = "Name the main risk of the migration."


class Risk(BaseModel):
    """The main risk of a plan."""

    risk: str
    severity: int


ADA_RISK = Risk(risk="data loss", severity=3)
BOB_RISK = Risk(risk="no tested rollback", severity=4)


@pytest.mark.parametrize(
    ("mode", "bad", "judge", "expected"),
    [
        ("best_of", "rel/f-500", "rel/judge", BOB_RISK),
        ("merge", "rel/f-malformed", "rel/judge", BOB_RISK),
        ("vote", "rel/f-errchunk", "rel/judge", BOB_RISK),
        ("merge", "rel/f-500", "rel/judge2-500", ADA_RISK),  # the judge fails too: fallback
    ],
)
async def test_structured_output_with_a_failing_member(
    sim: Simulator, mode: str, bad: str, judge: str, expected: Risk
) -> None:
    pool = {
        "ada": openai_chat(sim, "rel/c-tool-ada"),
        "bob": openai_chat(sim, "rel/c-tool-bob"),
        "bad": openai_chat(sim, bad),
    }
    fusion = FusionChatModel(pool=pool, judge=openai_chat(sim, judge), mode=mode, seed=3)
    result: Any = await fusion.with_structured_output(Risk, include_raw=True).ainvoke(RISK_PROMPT)

    assert result["parsing_error"] is None
    assert result["parsed"] == expected
    report = report_of(result["raw"])
    assert statuses(report) == {"ada": "ok", "bob": "ok", "bad": "error"}
    assert report["judge_fallback"] is (judge != "rel/judge")
    stats = sim.stats()
    # Every member that answered was asked for the object (a forced tool call each).
    assert [stats.models[f"rel/c-tool-{name}"].tool_calls for name in ("ada", "bob")] == [1, 1]
    assert_usage_matches([report], sim, usage=usage_of(result["raw"]))


# -- images ---------------------------------------------------------------------------------

PNG = base64.b64encode(
    base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    )
).decode()


def with_image() -> list[HumanMessage]:
    return [
        HumanMessage(
            content=[
                {"type": "text", "text": PROMPT},
                {"type": "image", "base64": PNG, "mime_type": "image/png"},
            ]
        )
    ]


@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
async def test_images_with_a_failing_member(sim: Simulator, entry: str) -> None:
    pool = {
        "ada": openai_chat(sim, "rel/ada"),
        "bad": openai_chat(sim, "rel/f-500"),
        "bob": openai_chat(sim, "rel/bob"),
        "blind": openai_chat(sim, "rel/cy", profile={"image_inputs": False}),
    }
    fusion = FusionChatModel(pool=pool, judge=openai_chat(sim, "rel/judge"), mode="merge", seed=3)
    message = await call(entry, fusion, with_image())

    report = report_of(message)
    assert statuses(report) == {"ada": "ok", "bad": "error", "bob": "ok", "blind": "skipped"}
    assert candidate(report, "blind")["error"] == "does not accept image inputs"
    assert message.content.startswith("Keep a tested rollback path")
    stats = sim.stats().models
    seen = {name: (stats[name].requests, stats[name].images) for name in stats}
    assert seen["rel/ada"] == seen["rel/bob"] == seen["rel/f-500"] == (1, 1)
    assert seen["rel/cy"] == (0, 0)
    assert seen["rel/judge"] == (2, 2)  # comparison and synthesis, each with the image
    # Tokens, image tokens included, are what was billed (the skipped member's "call" is
    # left to test_a_skipped_member_is_reported_without_a_call).
    assert_tokens_billed(report, sim)
    assert message.usage_metadata["total_tokens"] == sim.stats().totals.total_tokens
    called = {name: row["calls"] for name, row in report["usage_by_model"].items()}
    assert {name: called[name] for name in ("rel/ada", "rel/bob", "rel/f-500", "rel/judge")} == {
        "rel/ada": 1,
        "rel/bob": 1,
        "rel/f-500": 1,
        "rel/judge": 2,
    }


async def test_images_with_every_seeing_member_failing(sim: Simulator) -> None:
    pool = {
        "bad": openai_chat(sim, "rel/f-500"),
        "worse": openai_chat(sim, "rel/f-429"),
        "blind": openai_chat(sim, "rel/cy", profile={"image_inputs": False}),
    }
    fusion = FusionChatModel(pool=pool, judge=openai_chat(sim, "rel/judge"), mode="best_of")
    with pytest.raises(NotEnoughAnswersError) as caught:
        await fusion.ainvoke(with_image())

    error = caught.value
    assert statuses(error.report) == {"bad": "error", "worse": "error", "blind": "skipped"}
    assert error.errors["blind"] == "does not accept image inputs"
    assert re.search(r"slow down \(rel\)", error.errors["worse"])
    stats = sim.stats().models
    assert (stats["rel/f-500"].images, stats["rel/f-429"].images) == (1, 1)
    assert (stats["rel/cy"].requests, stats["rel/judge"].requests) == (0, 0)
    assert_tokens_billed(error.report, sim)


async def test_a_skipped_member_is_reported_without_a_call(sim: Simulator) -> None:
    pool = {
        "ada": openai_chat(sim, "rel/ada"),
        "bob": openai_chat(sim, "rel/bob"),
        "blind": openai_chat(sim, "rel/cy", profile={"image_inputs": False}),
    }
    fusion = FusionChatModel(pool=pool, judge=openai_chat(sim, "rel/judge"), mode="best_of")
    message = await fusion.ainvoke(with_image())

    report = report_of(message)
    assert candidate(report, "blind")["status"] == "skipped"
    assert sim.stats().models["rel/cy"].requests == 0
    assert candidate(report, "blind")["calls"] == 0
    assert_usage_matches([report], sim, usage=usage_of(message))
