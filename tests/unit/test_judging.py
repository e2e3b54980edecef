"""Judging: passes against position bias, panels, self-votes, failures and the fallback rule.

The judges here are test-local fakes that read the prompt as a real judge would: the
candidates in the order shown (fence lines), and the labels in play.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import ValidationError

from langchain_fusion import FusionChatModel, JudgeError
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing import FakeChatModel, FakeJudge

QUESTION = "What is the capital of France?"
_SHOWN_RE = re.compile(r"^=+ BEGIN CANDIDATE ([A-Z]+) \[nonce:", re.MULTILINE)


def prompt_text(messages: list[BaseMessage]) -> str:
    return "\n".join(m.text for m in messages)


def shown(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    """`(label, text)` of the candidates in the order the prompt shows them."""
    text = prompt_text(messages)
    candidates = extract_candidates(text)
    return [(label, candidates[label]) for label in _SHOWN_RE.findall(text) if label in candidates]


def verdict(pick: Callable[[list[tuple[str, str]]], str]) -> Callable[[list[BaseMessage]], str]:
    """A judge's `respond`: a JSON verdict for the label `pick` chooses among those shown."""

    def respond(messages: list[BaseMessage]) -> str:
        return json.dumps({"winner": pick(shown(messages)), "rationale": "test"})

    return respond


def first_shown(candidates: list[tuple[str, str]]) -> str:
    return candidates[0][0]


def containing(word: str) -> Callable[[list[tuple[str, str]]], str]:
    def pick(candidates: list[tuple[str, str]]) -> str:
        return next((label for label, text in candidates if word in text), candidates[0][0])

    return pick


def judge(model: str, pick: Callable[[list[tuple[str, str]]], str]) -> FakeChatModel:
    return FakeChatModel(model=model, respond=verdict(pick))


def pool(answers: dict[str, str]) -> dict[str, FakeChatModel]:
    return {name: FakeChatModel(model=name, responses=[text]) for name, text in answers.items()}


def report_of(message: BaseMessage) -> dict[str, Any]:
    return message.response_metadata["fusion"]


# -- position bias: judge_passes ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_two_passes_of_a_first_shown_judge_tie_and_agreement_breaks_it(answer_invoke, seed):
    """A judge that always picks the first candidate shown picks two different answers in
    two passes (the second shows them reversed): agreement 0.5, and the tie goes to the
    tied answer that most other answers agree with (then pool order)."""
    answers = {"ada": "Lyon", "bob": "Paris", "cy": "paris."}
    agree_with = {"ada": 0, "bob": 1, "cy": 1}
    first = judge("judge-model", first_shown)
    fusion = FusionChatModel(
        pool=pool(answers), judge=first, mode="best_of", judge_passes=2, seed=seed
    )

    message = await answer_invoke(fusion, QUESTION)

    report = report_of(message)
    verdicts = report["verdicts"]
    assert [v["pass"] for v in verdicts] == [1, 2]
    assert verdicts[1]["order"] == verdicts[0]["order"][::-1]
    assert [v["winner"] for v in verdicts] == [v["order"][0] for v in verdicts]
    assert [v["status"] for v in verdicts] == ["ok", "ok"]
    assert report["judge_agreement"] == 0.5
    assert report["verdict_rule"] == "tie_most_agreed"
    tied = [v["winner"] for v in verdicts]
    expected = min(tied, key=lambda n: (-agree_with[n], list(answers).index(n)))
    assert report["winner"] == expected
    assert message.content == answers[expected]
    assert first.calls == 2
    # Fresh labels each pass: the label A is always the first candidate shown.
    assert [shown(i)[0][0] for i in first.inputs] == ["A", "A"]


async def test_passes_tie_is_broken_by_agreement_across_seeds():
    """Over a few seeds, some tie pairs Lyon (agreed with by none) with a Paris answer,
    and the Paris answer wins: the tie rule is agreement, not pool order."""
    winners = set()
    for seed in range(6):
        fusion = FusionChatModel(
            pool=pool({"ada": "Lyon", "bob": "Paris", "cy": "paris."}),
            judge=judge("judge-model", first_shown),
            mode="best_of",
            judge_passes=2,
            seed=seed,
        )
        report = report_of(await fusion.ainvoke(QUESTION))
        tied = {v["winner"] for v in report["verdicts"]}
        if "ada" in tied:
            assert report["winner"] != "ada"
            winners.add(report["winner"])
    assert winners  # at least one seed tied Lyon with a Paris answer


async def test_an_unbiased_judge_agrees_with_itself_over_three_passes(answer_invoke):
    sure = judge("judge-model", containing("Paris"))
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris", "cy": "Nice"}),
        judge=sure,
        mode="best_of",
        judge_passes=3,
        seed=3,
    )

    report = report_of(await answer_invoke(fusion, QUESTION))

    orders = [v["order"] for v in report["verdicts"]]
    assert orders[1] == orders[0][::-1]
    assert orders[2] == orders[0][1:] + orders[0][:1]  # pass 3: rotated by one
    assert report["winner"] == "bob"
    assert report["judge_agreement"] == 1.0
    assert report["verdict_rule"] == "majority"
    assert report["judge"]["calls"] == 3


async def test_vote_tie_break_uses_the_passes():
    first = judge("judge-model", first_shown)
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris"}),
        judge=first,
        mode="vote",
        judge_passes=2,
        seed=1,
    )

    report = report_of(await fusion.ainvoke(QUESTION))

    assert first.calls == 2
    assert report["judge_agreement"] == 0.5
    assert report["votes"] == [{"members": ["ada"], "count": 1}, {"members": ["bob"], "count": 1}]
    assert report["winner"] == "ada"  # no answer agrees with another: pool order


def test_judge_passes_must_be_at_least_one():
    with pytest.raises(ValidationError, match="judge_passes"):
        FusionChatModel(pool=pool({"ada": "x"}), judge=FakeJudge(), judge_passes=0)


# -- panels ---------------------------------------------------------------------------------


async def test_a_panel_answers_by_the_majority_of_the_judges_that_did_not_fail(answer):
    """Three judges, one raises: the other two decide, and the third's failure is reported."""
    good = judge("judge-a", containing("Paris"))
    down = FakeChatModel(model="judge-down", error="provider down")
    also = judge("judge-b", containing("Paris"))
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris", "cy": "Nice"}),
        judge=[good, down, also],
        mode="best_of",
        seed=2,
    )

    message = await answer(fusion, QUESTION)

    report = report_of(message)
    assert message.content == "Paris"
    assert report["winner"] == "bob"
    assert report["judge_fallback"] is False
    statuses = {v["judge"]: v["status"] for v in report["verdicts"]}
    assert statuses == {"judge": "ok", "judge-2": "upstream_error", "judge-3": "ok"}
    failed = next(v for v in report["verdicts"] if v["judge"] == "judge-2")
    assert "provider down" in failed["error"]
    assert failed["winner"] is None
    assert report["judge_agreement"] == 1.0
    judges = {j["name"]: j for j in report["judges"]}
    assert judges["judge-2"]["status"] == "error"
    assert judges["judge-3"]["calls"] == 1
    assert set(report["usage_by_model"]) == {"ada", "bob", "cy", "judge-a", "judge-b", "judge-down"}


@pytest.mark.parametrize("seed", range(4))
async def test_each_judge_of_a_panel_sees_its_own_order(seed):
    """Panel judges that always pick the first candidate shown pick three different
    answers: no two of them were shown the same order, so their position biases do not
    pull the same way (the tie then goes to the most agreed answer)."""
    panel = [judge(f"judge-{i}", first_shown) for i in range(3)]
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris", "cy": "paris"}),
        judge=panel,
        mode="best_of",
        seed=seed,
    )

    report = report_of(await fusion.ainvoke(QUESTION))

    orders = [tuple(v["order"]) for v in report["verdicts"]]
    assert len(set(orders)) == 3
    assert sorted(v["winner"] for v in report["verdicts"]) == ["ada", "bob", "cy"]
    assert [v["winner"] for v in report["verdicts"]] == [order[0] for order in orders]
    assert report["winner"] == "bob"  # bob and cy agree; bob first in pool order
    assert report["verdict_rule"] == "tie_most_agreed"


async def test_a_panel_all_down_falls_back_to_the_most_agreed_answer():
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris", "cy": "paris"}),
        judge=[FakeChatModel(model=f"j{i}", error="provider down") for i in range(3)],
        mode="best_of",
    )

    message = await fusion.ainvoke(QUESTION)

    report = report_of(message)
    assert message.content == "Paris"  # bob and cy agree; bob is first in pool order
    assert report["judge_fallback"] is True
    assert report["judge_fallback_rule"] == "most_agreed"
    assert report["judge_failure"] == "upstream_error"
    assert [v["status"] for v in report["verdicts"]] == ["upstream_error"] * 3


async def test_a_panel_judge_does_not_vote_for_its_own_models_answer():
    """judge_self_vote defaults to "exclude" for a panel: a judge that is also a pool
    member's model has its vote for that member's answer discarded."""
    pool_models = pool({"ada": "Lyon", "bob": "Paris", "cy": "Nice"})
    vain = judge("ada", containing("Lyon"))  # the same model as member ada
    fair = judge("judge-b", containing("Paris"))
    fusion = FusionChatModel(pool=pool_models, judge=[vain, fair], mode="best_of", seed=4)

    report = report_of(await fusion.ainvoke(QUESTION))

    statuses = {v["judge"]: (v["status"], v["winner"]) for v in report["verdicts"]}
    assert statuses == {"judge": ("excluded", "ada"), "judge-2": ("ok", "bob")}
    assert report["winner"] == "bob"
    assert report["judge_agreement"] == 1.0
    assert "self_judging" not in report

    allowed = report_of(
        await fusion.ainvoke(QUESTION, judge_self_vote="allow")
    )  # both votes count: a tie, and neither answer agrees with another: pool order
    assert [v["status"] for v in allowed["verdicts"]] == ["ok", "ok"]
    assert allowed["verdict_rule"] == "tie_most_agreed"
    assert allowed["winner"] == "ada"


async def test_a_single_judge_that_is_a_member_is_reported_self_judging():
    members = pool({"ada": "Lyon", "bob": "Paris"})
    fusion = FusionChatModel(pool=members, judge=judge("ada", containing("Lyon")), mode="best_of")

    report = report_of(await fusion.ainvoke(QUESTION))

    assert report["self_judging"] is True
    assert report["winner"] == "ada"  # a single judge's self-vote is allowed by default
    excluded = report_of(await fusion.ainvoke(QUESTION, judge_self_vote="exclude"))
    assert excluded["verdicts"][0]["status"] == "excluded"
    assert excluded["judge_fallback"] is True  # no vote counted: the fallback's rule
    assert "judge_failure" not in excluded


async def test_a_merge_panel_unions_the_comparisons_and_the_first_judge_writes():
    answers = {"ada": "Paris is the capital.", "bob": "Paris is the capital. It is on the Seine."}
    first = FakeJudge(model="judge-a")
    second = FakeJudge(model="judge-b")
    fusion = FusionChatModel(
        pool=pool(answers), judge=[first, second], mode="merge", judge_passes=2, seed=5
    )

    message = await fusion.ainvoke(QUESTION)

    report = report_of(message)
    assert first.calls == 3  # two comparisons (one per pass), then the synthesis
    assert second.calls == 2  # two comparisons
    assert len(report["verdicts"]) == 4
    comparison = report["comparison"]
    assert comparison["consensus"] == ["Paris is the capital."]
    # Pass 2 shows the candidates reversed under fresh labels; its points are translated
    # to the labels of pass 1, so the union holds each point once.
    assert comparison["unique_insights"] == [
        f"{label}: It is on the Seine." for label, name in report["labels"].items() if name == "bob"
    ]
    synthesis = first.inputs[-1]
    assert "## Comparison" in prompt_text(synthesis)
    assert message.content.startswith("Paris is the capital.")


async def test_debate_final_answer_is_written_by_the_first_judge():
    first = FakeJudge(model="judge-a")
    second = FakeJudge(model="judge-b")
    fusion = FusionChatModel(
        pool=pool({"ada": "Paris.", "bob": "Lyon."}),
        judge=[first, second],
        mode="debate",
        debate_rounds=1,
    )

    await fusion.ainvoke(QUESTION)

    assert first.calls == 1
    assert second.calls == 0


# -- off-protocol judges --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I pick the second one, it reads best.", "not_valid_json"),
        ('{"pick": "A", "why": "it reads best"}', "schema_mismatch"),
        ("", "empty"),
        ('{"winner": "Q", "rationale": "it reads best"}', "refused_label"),
    ],
)
async def test_an_off_protocol_judge_is_retried_once_then_named(answer_invoke, reply, reason):
    off = FakeChatModel(model="judge-model", responses=[reply])
    fusion = FusionChatModel(pool=pool({"ada": "Lyon", "bob": "Paris"}), judge=off, mode="best_of")

    message = await answer_invoke(fusion, QUESTION)

    report = report_of(message)
    assert off.calls == 2
    assert "could not be read" in off.inputs[1][-1].text
    assert report["judge_failure"] == reason
    assert report["judge_raw"] == reply
    assert report["judge_fallback"] is True
    assert report["judge"]["calls"] == 2
    # Both judge calls are billed in the report, whatever became of their replies.
    words = [len(prompt_text(i).split()) for i in off.inputs]
    assert report["usage_by_model"]["judge-model"]["input_tokens"] == sum(words)


async def test_the_raw_reply_is_truncated_in_the_report():
    off = FakeChatModel(model="judge-model", responses=["no verdict " * 200])
    fusion = FusionChatModel(pool=pool({"ada": "Lyon", "bob": "Paris"}), judge=off, mode="best_of")

    report = report_of(await fusion.ainvoke(QUESTION))

    assert len(report["judge_raw"]) == 501 and report["judge_raw"].endswith("…")


async def test_a_verdict_made_as_a_tool_call_is_read():
    """Whatever path produced the judge's text: a tool call's arguments are read too."""

    def respond(messages: list[BaseMessage]) -> AIMessage:
        label = containing("Paris")(shown(messages))
        call = {"name": "Verdict", "args": {"winner": label}, "id": "c1", "type": "tool_call"}
        return AIMessage(content="", tool_calls=[call])

    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris"}),
        judge=FakeChatModel(model="judge-model", respond=respond),
        mode="best_of",
    )

    report = report_of(await fusion.ainvoke(QUESTION))

    assert report["winner"] == "bob"
    assert report["judge_fallback"] is False


async def test_a_judge_failure_raises_with_its_reason_when_asked():
    off = FakeChatModel(model="judge-model", responses=["nope"])
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris"}),
        judge=off,
        mode="best_of",
        on_judge_failure="raise",
    )

    with pytest.raises(JudgeError, match="not_valid_json") as caught:
        await fusion.ainvoke(QUESTION)

    assert caught.value.report["judge_failure"] == "not_valid_json"
    assert set(caught.value.answers) == {"ada", "bob"}


async def test_a_timed_out_judge_is_named_timeout():
    slow = FakeJudge(model="judge-model", latency=1.0)
    fusion = FusionChatModel(
        pool=pool({"ada": "Lyon", "bob": "Paris", "cy": "paris"}),
        judge=slow,
        mode="best_of",
        judge_timeout=0.1,
    )

    message = await fusion.ainvoke(QUESTION)

    report = report_of(message)
    assert report["judge_failure"] == "timeout"
    assert message.content == "Paris"  # the most agreed answer
    assert report["cost_complete"] is False  # the timed-out call may have been billed


# -- budgets count the passes and the judges ------------------------------------------------


def test_estimate_cost_counts_passes_and_judges():
    prices = {m: {"prompt": 1e-6, "completion": 1e-6} for m in ("ada", "bob", "j1", "j2")}
    members = pool({"ada": "x", "bob": "y"})
    judges = [FakeJudge(model="j1"), FakeJudge(model="j2")]
    one = FusionChatModel(pool=members, judge=judges[0], mode="best_of", prices=prices)
    panel = FusionChatModel(
        pool=members, judge=judges, mode="best_of", judge_passes=3, prices=prices
    )

    single = one.estimate_cost(QUESTION)["phases"][-1]
    many = panel.estimate_cost(QUESTION)["phases"][-1]

    assert single["calls"] == 1
    assert many["calls"] == 6
    assert many["cost_usd"] == pytest.approx(6 * single["cost_usd"])
    merge = panel.estimate_cost(QUESTION, mode="merge")["phases"][-1]
    assert merge["calls"] == 7  # six comparisons and one synthesis


async def test_max_cost_counts_every_pass_and_judge():
    prices = {m: {"prompt": 1e-6, "completion": 1e-6} for m in ("ada", "bob", "j1", "j2")}
    members = pool({"ada": "Lyon", "bob": "Paris"})
    judges = [FakeJudge(model="j1"), FakeJudge(model="j2")]
    budget = FusionChatModel(pool=members, judge=judges, mode="best_of", prices=prices)
    probe = budget.estimate_cost(QUESTION, judge_passes=1)["phases"][-1]["cost_usd"]
    # The worst case of one pass of two judges, estimated before the run (each candidate
    # at its max output): enough for one pass, not for four.
    limit = probe

    fits = report_of(await budget.ainvoke(QUESTION, max_cost_usd=limit))
    skipped = report_of(await budget.ainvoke(QUESTION, max_cost_usd=limit, judge_passes=4))

    assert fits["budget"]["skipped"] == []
    assert skipped["budget"]["skipped"] == ["judge"]
