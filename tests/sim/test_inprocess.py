"""SimChatModel answers in process what the simulator serves over HTTP, billed the same."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_fusion import FusionChatModel
from langchain_fusion._core.fencing import Candidate, new_nonce
from langchain_fusion._core.prompts import judge_messages, verdict_task
from langchain_fusion.sim import Scenario, SimChatModel, Simulator

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("model", "prompt"),
    [
        ("t/plain", "hello"),
        ("t/wrong", "What is 17*23?"),
        ("t/judge", "judge"),
        ("t/prose-judge", "judge"),
    ],
)
def test_same_answer_and_usage_as_over_http(
    sim: Simulator, scenario: Scenario, openai_model: Any, model: str, prompt: str
) -> None:
    messages: list[Any] = [HumanMessage(prompt)]
    if prompt == "judge":
        texts = [Candidate("A", "It is 401."), Candidate("B", "The answer is 391.")]
        messages = judge_messages(messages, texts, new_nonce(), verdict_task(["A", "B"]))
    local = SimChatModel(scenario=scenario, model=model).invoke(messages)
    remote = openai_model(model).invoke(messages)
    assert local.content == remote.content
    assert local.usage_metadata is not None and remote.usage_metadata is not None
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert local.usage_metadata[key] == remote.usage_metadata[key]  # type: ignore[literal-required]
    served = sim.stats().models[model]
    assert local.response_metadata["token_usage"]["cost"] == pytest.approx(served.cost)


def test_a_fusion_of_in_process_models_is_billed_as_the_scenario_prices(
    scenario: Scenario,
) -> None:
    pool = [SimChatModel(scenario=scenario, model=m) for m in ("t/plain", "t/wrong", "t/other")]
    judge = SimChatModel(scenario=scenario, model="t/judge")
    msg = FusionChatModel(pool=pool, judge=judge, mode="best_of", seed=1).invoke("What is 17*23?")
    assert msg.content in ("The answer is 391.", "391, clearly.")
    report = msg.response_metadata["fusion"]
    assert report["cost_complete"] is True
    assert [m.calls for m in pool] == [1, 1, 1] and judge.calls == 1


def test_unknown_model_is_refused(scenario: Scenario) -> None:
    with pytest.raises(ValueError, match="not in the scenario; use one of: t/plain"):
        SimChatModel(scenario=scenario, model="t/nope")
