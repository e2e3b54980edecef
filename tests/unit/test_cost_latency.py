"""Needless judging skipped, budgets, output caps, cost estimates and hedging (behaviour only)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import PrivateAttr, ValidationError

from langchain_fusion import FusionChatModel
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing import FakeChatModel, FakeJudge


def report(message: Any) -> dict[str, Any]:
    return message.response_metadata["fusion"]


def members(*answers: str, latency: float = 0.0) -> list[FakeChatModel]:
    return [
        FakeChatModel(model=f"m{i}", responses=[a], latency=latency) for i, a in enumerate(answers)
    ]


# -- agreement gate -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
async def test_agreeing_members_skip_the_judge(answer, mode):
    judge = FakeJudge()
    fusion = FusionChatModel(
        pool=members("Paris.", "paris", " PARIS! "),
        judge=judge,
        mode=mode,
        skip_judge_on_agreement=True,
    )
    message = await answer(fusion, "Capital of France?")
    assert judge.calls == 0
    assert message.text == "Paris."  # the first answer in pool order, as written
    assert report(message)["judge_skipped"] == "the members agree"
    assert report(message)["agreed"] is True
    assert report(message)["judge"]["status"] == "skipped"


async def test_disagreeing_members_are_judged_and_the_gate_is_off_by_default():
    judge = FakeJudge()
    gated = FusionChatModel(
        pool=members("Paris.", "Lyon."), judge=judge, mode="best_of", skip_judge_on_agreement=True
    )
    await gated.ainvoke("Capital of France?")
    assert judge.calls == 1
    ungated = FusionChatModel(pool=members("Paris.", "Paris."), judge=judge, mode="best_of")
    await ungated.ainvoke("Capital of France?")
    assert judge.calls == 2


async def test_the_agreement_function_is_pluggable():
    judge = FakeJudge()
    seen: list[list[str]] = []

    def same_city(texts):
        seen.append(list(texts))
        return all("Paris" in t for t in texts)

    fusion = FusionChatModel(
        pool=members("It is Paris.", "Paris, of course."),
        judge=judge,
        mode="merge",
        skip_judge_on_agreement=True,
        agreement=same_city,
    )
    message = await fusion.ainvoke("Capital of France?")
    assert judge.calls == 0
    assert seen == [["It is Paris.", "Paris, of course."]]
    assert message.text == "It is Paris."


# -- vote -----------------------------------------------------------------------------------


async def test_vote_returns_the_majority_without_a_judge(answer):
    judge = FakeJudge()
    fusion = FusionChatModel(pool=members("Lyon.", "Paris.", "paris"), judge=judge, mode="vote")
    message = await answer(fusion, "Capital of France?")
    assert judge.calls == 0
    assert message.text == "Paris."
    rep = report(message)
    assert rep["winner"] == "m1"
    assert rep["votes"] == [
        {"members": ["m1", "m2"], "count": 2},
        {"members": ["m0"], "count": 1},
    ]


@pytest.mark.parametrize(
    ("answers", "judged"),
    [(("Paris.", "Lyon.", "Paris", "Lyon"), 2), (("Paris.", "Lyon.", "Nice."), 3)],
    ids=["tie", "all-differ"],
)
async def test_vote_asks_the_judge_on_ties_and_free_form_disagreement(answers, judged):
    judge = FakeJudge(prefer="Lyon")
    fusion = FusionChatModel(pool=members(*answers), judge=judge, mode="vote")
    message = await fusion.ainvoke("Capital of France?")
    assert judge.calls == 1
    assert len(extract_candidates("\n".join(m.text for m in judge.inputs[0]))) == judged
    assert message.text == "Lyon."
    assert report(message)["votes"][0]["count"] == (2 if judged == 2 else 1)


# -- max_tokens -----------------------------------------------------------------------------


class KwargsRecorder(FakeChatModel):
    _kwargs: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self._kwargs.append(kwargs)
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_max_tokens_caps_every_member_and_the_judges_answer():
    pool = [
        KwargsRecorder(model="a", responses=["Paris."]),
        KwargsRecorder(model="b", responses=["Lyon."]),
    ]
    judge = KwargsRecorder(model="judge", respond=lambda m: "Paris.")
    FusionChatModel(pool=pool, judge=judge, mode="debate", debate_rounds=1, max_tokens=64).invoke(
        "Capital of France?"
    )
    assert [k.get("max_tokens") for k in pool[0]._kwargs] == [64, 64]  # answer and revision
    assert [k.get("max_tokens") for k in judge._kwargs] == [64]


# -- budget ---------------------------------------------------------------------------------

PRICES = {
    "m0": {"prompt": 0.001, "completion": 0.002},
    "m1": {"prompt": 0.001, "completion": 0.002},
    "fake-judge": {"prompt": 0.01, "completion": 0.02},
}


async def test_a_judge_over_budget_is_skipped_and_reported():
    judge = FakeJudge()
    fusion = FusionChatModel(
        pool=members("Paris.", "Lyon."),
        judge=judge,
        mode="merge",
        prices=PRICES,
        max_cost_usd=0.5,
        max_tokens=100,
    )
    message = await fusion.ainvoke("Capital of France?")
    assert judge.calls == 0
    rep = report(message)
    assert rep["judge_skipped"] == "the judge would exceed max_cost_usd"
    assert rep["budget"]["skipped"] == ["judge"]
    assert rep["budget"]["spent_usd"] == pytest.approx(rep_cost(rep, PRICES))
    assert message.text == "Paris."  # the first answer in pool order


def rep_cost(rep: dict[str, Any], prices: dict[str, dict[str, float]]) -> float:
    total = 0.0
    for model, row in rep["usage_by_model"].items():
        price = prices[model]
        total += row["input_tokens"] * price["prompt"] + row["output_tokens"] * price["completion"]
    return total


async def test_a_generous_budget_lets_every_phase_run():
    judge = FakeJudge()
    fusion = FusionChatModel(
        pool=members("Paris.", "Lyon."), judge=judge, mode="merge", prices=PRICES, max_cost_usd=100
    )
    message = await fusion.ainvoke("Capital of France?")
    assert judge.calls == 2
    assert report(message)["budget"]["skipped"] == []


async def test_debate_stops_escalating_at_the_budget():
    pool = members("Paris.", "Lyon.")
    prices = {**PRICES, "fake-judge": {"prompt": 0.0, "completion": 0.0}}
    fusion = FusionChatModel(
        pool=pool,
        judge=FakeJudge(),
        mode="debate",
        debate_rounds=3,
        prices=prices,
        max_cost_usd=2.5,
        max_tokens=500,
    )
    message = await fusion.ainvoke("Capital of France?")
    rep = report(message)
    # each round's worst case is about 2 x 500 x 0.002 = 2 USD: round 1 fits, round 2 does not
    assert rep["rounds"] == 1
    assert rep["budget"]["skipped"] == ["debate round 2"]
    assert pool[0].calls == 2


async def test_unpriced_models_do_not_block_and_are_reported():
    judge = FakeJudge()
    fusion = FusionChatModel(
        pool=members("Paris.", "Lyon."), judge=judge, mode="best_of", max_cost_usd=0.01
    )
    message = await fusion.ainvoke("Capital of France?")
    assert judge.calls == 1
    assert report(message)["budget"]["unpriced"] == ["fake-judge", "m0", "m1"]


async def test_prices_are_learned_from_reported_costs():
    pool = [
        FakeChatModel(model="m0", responses=["Paris."], cost_per_token=0.01),
        FakeChatModel(model="m1", responses=["Lyon."], cost_per_token=0.01),
    ]
    judge = FakeJudge(cost_per_token=0.01)
    fusion = FusionChatModel(
        pool=pool, judge=judge, mode="debate", debate_rounds=2, max_cost_usd=0.5, max_tokens=50
    )
    message = await fusion.ainvoke("Capital of France?")
    rep = report(message)
    assert "debate round 1" in rep["budget"]["skipped"]
    # the members were priced from their reported costs; the judge had reported none yet
    assert rep["budget"]["unpriced"] == ["fake-judge"]


# -- estimate -------------------------------------------------------------------------------


def test_estimate_cost_prices_each_phase_before_running():
    pool = members("Paris.", "Lyon.")
    judge = FakeJudge()
    fusion = FusionChatModel(pool=pool, judge=judge, mode="merge", prices=PRICES, max_tokens=10)
    prompt = "x" * 400  # 100 tokens + 4 per message
    estimate = fusion.estimate_cost(prompt)
    assert pool[0].calls == pool[1].calls == judge.calls == 0
    answers = estimate["phases"][0]
    assert answers == {
        "phase": "answers",
        "calls": 2,
        "cost_usd": pytest.approx(2 * (104 * 0.001 + 10 * 0.002)),
        "unpriced": [],
    }
    judge_phase = estimate["phases"][-1]
    judged_input = 104 + 2 * 10 + 300
    assert judge_phase["calls"] == 2
    assert judge_phase["cost_usd"] == pytest.approx(2 * (judged_input * 0.01 + 10 * 0.02))
    assert estimate["total_usd"] == pytest.approx(answers["cost_usd"] + judge_phase["cost_usd"])
    debate = fusion.estimate_cost(prompt, mode="debate", debate_rounds=2)
    assert [p["phase"] for p in debate["phases"]] == ["answers", "round 1", "round 2", "judge"]
    unpriced = FusionChatModel(pool=pool, judge=judge).estimate_cost(prompt)
    assert unpriced["total_usd"] is None
    assert unpriced["phases"][0]["unpriced"] == ["m0", "m1"]


# -- hedging --------------------------------------------------------------------------------


async def test_a_late_member_is_hedged_by_its_backup_and_cancelled():
    slow = FakeChatModel(model="slow", responses=["Slow Paris."], latency=2.0)
    backup = FakeChatModel(model="backup", responses=["Backup Paris."], latency=0.05)
    fusion = FusionChatModel(
        pool={"a": slow, "b": FakeChatModel(model="b", responses=["Lyon."])},
        judge=FakeJudge(prefer="Backup"),
        mode="best_of",
        hedge={"a": backup},
        hedge_after=0.1,
    )
    start = time.monotonic()
    message = await fusion.ainvoke("Capital of France?")
    assert time.monotonic() - start < 1.5
    assert message.text == "Backup Paris."
    candidate = report(message)["candidates"][0]
    assert candidate["hedge"] == "backup"
    assert slow.cancelled == 1
    # The cancelled copy's tokens are nowhere: the report does not claim a complete cost.
    assert candidate["usage_unknown"] is True
    assert report(message)["cost_complete"] is False


def test_a_hedge_is_not_started_when_the_member_is_on_time_sync():
    member = FakeChatModel(model="a", responses=["Paris."], latency=0.02)
    backup = FakeChatModel(model="backup", responses=["Backup."])
    fusion = FusionChatModel(
        pool=[member, FakeChatModel(model="b", responses=["Lyon."])],
        judge=FakeJudge(prefer="Paris"),
        mode="best_of",
        hedge={"a": backup},
        hedge_after=1.0,
    )
    message = fusion.invoke("Capital of France?")
    assert message.text == "Paris."
    assert report(message)["candidates"][0]["hedge"] == "primary"
    assert backup.calls == 0


def test_a_late_member_is_hedged_in_sync_code_too():
    slow = FakeChatModel(model="slow", responses=["Slow."], latency=1.0)
    fusion = FusionChatModel(
        pool=[slow, FakeChatModel(model="b", responses=["Lyon."])],
        judge=FakeJudge(prefer="Again"),
        mode="best_of",
        hedge={"slow": FakeChatModel(model="again", responses=["Again."])},
        hedge_after=0.1,
    )
    start = time.monotonic()
    message = fusion.invoke("Capital of France?")
    assert time.monotonic() - start < 0.9
    assert message.text == "Again."
    assert report(message)["candidates"][0]["hedge"] == "backup"


async def test_a_backup_that_fails_early_leaves_the_primary_to_answer():
    primary = FakeChatModel(model="a", responses=["Paris."], latency=0.3)
    fusion = FusionChatModel(
        pool=[primary],
        judge=FakeJudge(),
        hedge={"a": FakeChatModel(model="bad", error="down")},
        hedge_after=0.05,
    )
    message = await fusion.ainvoke("Capital of France?")
    assert message.text == "Paris."
    assert report(message)["candidates"][0]["hedge"] == "primary"


@pytest.mark.parametrize(
    ("hedge", "match"),
    [({"nobody": True}, "not a pool member"), ({"a": "gpt-4o"}, "hedge\\['a'\\]")],
)
def test_hedges_are_validated_at_construction(hedge, match):
    with pytest.raises(ValidationError, match=match):
        FusionChatModel(pool=[FakeChatModel(model="a")], judge=FakeJudge(), hedge=hedge)


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_a_member_that_does_not_stream_can_be_hedged(entry):
    # A hedged member is read as a stream; one that does not stream yields one AIMessage.
    primary = FakeChatModel(model="a", responses=["Primary Paris."], disable_streaming=True)
    fusion = FusionChatModel(
        pool={"a": primary, "b": FakeChatModel(model="b", responses=["Lyon."])},
        judge=FakeJudge(prefer="Primary"),
        mode="best_of",
        hedge={"a": FakeChatModel(model="backup", responses=["Backup."], latency=1.0)},
        hedge_after=0.5,
    )
    if entry == "invoke":
        message = fusion.invoke("Capital of France?")
    else:
        message = await fusion.ainvoke("Capital of France?")
    assert message.text == "Primary Paris."
    assert report(message)["candidates"][0]["hedge"] == "primary"
    assert "usage_unknown" not in report(message)["candidates"][0]  # no backup started
