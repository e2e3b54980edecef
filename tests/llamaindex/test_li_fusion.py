"""FusionLLM over in-process fakes: every mode through every method, LlamaIndex and mixed
pools, accounting, failures, validation and metadata."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from li_fakes import FakeLLM, fake_judge_llm
from li_helpers import STREAMING, call, fake
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.llms.function_calling import FunctionCallingLLM
from pydantic import ValidationError

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge
from llamaindex_fusion import (
    FusionInputError,
    FusionLLM,
    JudgeError,
    NotEnoughAnswersError,
)

pytestmark = pytest.mark.timeout(30)

MODES = ("best_of", "merge", "debate")
QUESTION = "What is the capital of France?"
ANSWERS = {
    "a": "Paris is the capital of France. It lies on the Seine.",
    "b": "Paris is the capital of France. It hosts the Louvre.",
    "c": "Paris is the capital of France.",
}
SENTENCES = {
    "Paris is the capital of France.",
    "It lies on the Seine.",
    "It hosts the Louvre.",
}


def sentences(text: str) -> set[str]:
    return {s.strip() + ("" if s.strip().endswith(".") else ".") for s in text.split(". ") if s}


def li_pool() -> tuple[list[Any], Any]:
    return [fake(name, answer) for name, answer in ANSWERS.items()], fake_judge_llm()


def mixed_pool() -> tuple[list[Any], Any]:
    pool = [
        fake("a", ANSWERS["a"]),
        FakeChatModel(model="b", responses=[ANSWERS["b"]]),
        fake("c", ANSWERS["c"], function_calling=False),
    ]
    return pool, FakeJudge()


POOLS = {"llamaindex": li_pool, "mixed": mixed_pool}


def check_usage(answer: Any, pool: list[Any], judge: Any) -> None:
    """The fused usage is every call's usage once: per model as the fakes reported it."""
    rows = answer.report["usage_by_model"]
    for model in [*pool, judge]:
        if isinstance(model, FakeLLM):
            name = model.model
            assert rows[name]["calls"] == model.calls
            assert rows[name]["input_tokens"] == sum(u["prompt_tokens"] for u in model.usages)
            assert rows[name]["output_tokens"] == sum(u["completion_tokens"] for u in model.usages)
    assert answer.usage["prompt_tokens"] == sum(r["input_tokens"] for r in rows.values())
    assert answer.usage["completion_tokens"] == sum(r["output_tokens"] for r in rows.values())
    assert answer.usage["total_tokens"] == sum(r["total_tokens"] for r in rows.values())


@pytest.mark.parametrize("pool_kind", POOLS)
@pytest.mark.parametrize("mode", MODES)
async def test_each_mode_through_every_method(method: str, mode: str, pool_kind: str) -> None:
    pool, judge = POOLS[pool_kind]()
    llm = FusionLLM(pool=pool, judge=judge, mode=mode, seed=5)
    answer = await call(llm, method, QUESTION)

    report = answer.report
    assert report["mode"] == mode
    assert answer.statuses() == {"a": "ok", "b": "ok", "c": "ok"}
    assert report["judge"]["status"] == "ok"
    if mode == "best_of":
        assert answer.text == ANSWERS[report["winner"]]
    else:
        assert sentences(answer.text) == SENTENCES  # every distinct sentence, fused
    if mode == "debate":
        assert report["rounds"] == 2
    json.dumps(report)  # JSON-serialisable, as the report must be
    check_usage(answer, pool, judge)
    # every LlamaIndex member read the question
    for member in pool:
        if isinstance(member, FakeLLM):
            assert QUESTION in member.inputs[0][-1].content
    if method in STREAMING:
        assert "".join(p.delta or "" for p in answer.parts) == answer.text
        if mode != "best_of":  # the judge's synthesis is streamed token by token
            assert len(answer.parts) > 3


async def test_usage_is_in_raw_for_token_counters_and_cost_is_summed() -> None:
    pool = [fake(n, a, cost_per_token=0.001) for n, a in ANSWERS.items()]
    judge = fake_judge_llm(cost_per_token=0.002)
    answer = await call(FusionLLM(pool=pool, judge=judge, mode="merge"), "achat", QUESTION)
    usages = [u for m in [*pool, judge] for u in m.usages]
    assert answer.usage["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert answer.usage["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
    assert answer.usage["cost"] == pytest.approx(sum(u["cost"] for u in usages))
    assert answer.report["cost_usd"] == pytest.approx(sum(u["cost"] for u in usages))
    assert answer.raw["usage_metadata"]["input_tokens"] == answer.usage["prompt_tokens"]


def test_a_token_counting_handler_counts_every_token_once() -> None:
    """A member sharing the fusion's callback manager (as `Settings.llm` does) is not counted
    a second time by the handlers that already count the fusion."""
    counter = TokenCountingHandler(tokenizer=lambda text: text.split())
    manager = CallbackManager([counter])
    shared = fake("a", ANSWERS["a"], callback_manager=manager)
    pool = [shared, fake("b", ANSWERS["b"]), FakeChatModel(model="c", responses=[ANSWERS["c"]])]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="merge", callback_manager=manager)

    response = llm.chat([ChatMessage(role="user", content=QUESTION)])

    assert len(counter.llm_token_counts) == 1  # the fusion's own call, not the member's
    assert counter.prompt_llm_token_count == response.raw["usage"]["prompt_tokens"]
    assert counter.completion_llm_token_count == response.raw["usage"]["completion_tokens"]
    assert shared.callback_manager is manager  # the member itself is left as it was
    assert shared.calls == 1


async def test_per_call_settings_override_the_fields() -> None:
    pool, judge = li_pool()
    llm = FusionLLM(pool=pool, judge=judge, mode="merge")
    answer = await call(llm, "achat", QUESTION, mode="debate", debate_rounds=1)
    assert answer.report["mode"] == "debate"
    assert answer.report["rounds"] == 1


async def test_a_failing_member_is_reported_and_the_fusion_goes_on(method: str) -> None:
    pool = [fake("a", ANSWERS["a"]), fake("b", error="upstream down"), fake("c", ANSWERS["c"])]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="merge")
    answer = await call(llm, method, QUESTION)
    assert answer.statuses() == {"a": "ok", "b": "error", "c": "ok"}
    failed = next(c for c in answer.report["candidates"] if c["name"] == "b")
    assert "upstream down" in failed["error"]
    assert sentences(answer.text) == {"Paris is the capital of France.", "It lies on the Seine."}


async def test_a_quorum_cancels_a_slow_llamaindex_member() -> None:
    slow = fake("slow", "Late.", latency=5)
    pool = [fake("a", ANSWERS["a"]), fake("b", ANSWERS["b"]), slow]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="best_of", quorum=2, grace=0.05)
    started = time.monotonic()
    answer = await call(llm, "astream_chat", QUESTION)
    assert time.monotonic() - started < 2
    assert answer.statuses() == {"a": "ok", "b": "ok", "slow": "cancelled"}
    assert answer.text in (ANSWERS["a"], ANSWERS["b"])


@pytest.mark.parametrize("method", ["achat", "chat"])
async def test_a_late_llamaindex_member_is_hedged_by_its_backup(method: str) -> None:
    slow = fake("slow", "Slow Paris.", latency=2.0)
    llm = FusionLLM(
        pool={"a": slow, "b": FakeChatModel(model="b", responses=["Lyon."])},
        judge=fake_judge_llm(prefer="Backup"),
        mode="best_of",
        hedge={"a": fake("backup", "Backup Paris.")},
        hedge_after=0.1,
    )
    started = time.monotonic()
    answer = await call(llm, method, QUESTION)
    assert time.monotonic() - started < 1.5
    assert answer.text == "Backup Paris."
    assert answer.report["candidates"][0]["hedge"] == "backup"


async def test_too_few_answers_raise_with_what_arrived() -> None:
    pool = [fake("a", ANSWERS["a"]), fake("b", error="down"), fake("c", error="down")]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), min_successful=2)
    with pytest.raises(NotEnoughAnswersError) as caught:
        await call(llm, "achat", QUESTION)
    assert set(caught.value.answers) == {"a"}
    assert set(caught.value.errors) == {"b", "c"}


async def test_a_failing_judge_falls_back_or_raises() -> None:
    pool, _ = li_pool()
    broken = fake("judge-model", error="judge down")
    answer = await call(FusionLLM(pool=pool, judge=broken, mode="merge"), "achat", QUESTION)
    assert answer.report["judge_fallback"] is True
    assert answer.text == ANSWERS["a"]  # the first pool member that answered
    strict = FusionLLM(pool=pool, judge=broken, mode="merge", on_judge_failure="raise")
    with pytest.raises(JudgeError) as caught:
        await call(strict, "chat", QUESTION)
    assert set(caught.value.answers) == {"a", "b", "c"}


# -- construction-time validation -----------------------------------------------------------


def _error(cls: type, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        cls(**kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"pool": ["gpt-4o"]}, "pool[0] is the string 'gpt-4o', which is not an OpenRouter"),
        ({"pool": [FakeLLM(), 42]}, "pool[1] is a int, which is neither a LlamaIndex LLM"),
        ({"pool": {"x": object()}}, "pool['x'] is a object"),
        ({"pool": []}, "pool is empty"),
        ({"pool": {"judge": FakeLLM()}}, "pool has the name 'judge'"),
        ({"pool": [FakeLLM()], "judge": "gpt"}, "judge is the string 'gpt'"),
        ({"pool": [FakeLLM(), FakeLLM()], "min_successful": 3}, "min_successful (3) is greater"),
        ({"pool": [FakeLLM(), FakeLLM()], "quorum": 3}, "quorum (3) is greater"),
        ({"mode": "fastest"}, "unknown mode 'fastest'"),
        ({"capabilities": {"nobody": {"tool_calling": False}}}, "'nobody', which is not a pool"),
        ({"hedge": {"nobody": True}}, "hedge names 'nobody', which is not a pool member"),
        ({"hedge": {"a": "gpt"}}, "hedge['a'] is the string 'gpt'"),
    ],
)
def test_bad_configuration_fails_at_construction_naming_the_field(
    kwargs: dict[str, Any], expected: str
) -> None:
    base: dict[str, Any] = {"pool": [FakeLLM(model="a"), FakeLLM(model="b")], "judge": FakeLLM()}
    message = _error(FusionLLM, **{**base, **kwargs})
    assert expected in message
    if "LlamaIndex" not in expected and "string" not in expected and "is a" not in expected:
        # the same configuration error, word for word, as FusionChatModel's
        lc = {
            k: ([FakeChatModel(), FakeChatModel()] if k == "pool" else v) for k, v in base.items()
        }
        lc["judge"] = FakeJudge()
        for key, value in kwargs.items():
            if key == "pool" and isinstance(value, list) and value:
                value = [FakeChatModel(model=f"m{i}") for i in range(len(value))]
            if key == "pool" and isinstance(value, dict) and value:
                value = {k: FakeChatModel() for k in value}
            lc[key] = value
        assert expected in _error(FusionChatModel, **lc)


async def test_bad_input_fails_before_any_call() -> None:
    pool, judge = li_pool()
    llm = FusionLLM(pool=pool, judge=judge)
    with pytest.raises(FusionInputError, match="no messages"):
        llm.chat([])
    with pytest.raises(FusionInputError, match=r"unknown per-call argument.*temperature"):
        llm.chat([ChatMessage(role="user", content="hi")], temperature=0.3)
    with pytest.raises(ValidationError, match="min_successful"):
        await llm.astream_chat([ChatMessage(role="user", content="hi")], min_successful=9)
    with pytest.raises(FusionInputError):
        llm.stream_complete("hi", top_p=0.5)
    assert all(m.calls == 0 for m in [*pool, judge])


def test_pool_members_are_named_after_their_models_and_made_unique() -> None:
    llm = FusionLLM(pool=[fake("m"), fake("m"), FakeChatModel(model="m")], judge=FakeJudge())
    assert [m.name for m in llm.members] == ["m", "m-2", "m-3"]
    named = FusionLLM(pool={"first": fake("m"), "second": FakeChatModel()}, judge=FakeJudge())
    assert [m.name for m in named.members] == ["first", "second"]


# -- metadata -------------------------------------------------------------------------------


def test_metadata_derives_limits_and_tool_calling_from_the_pool() -> None:
    pool = [fake("a", context_window=8000), fake("b", context_window=4000, num_output=300)]
    llm = FusionLLM(pool=pool, judge=fake("j", context_window=16000), mode="merge")
    meta = llm.metadata
    assert isinstance(llm, FunctionCallingLLM)
    assert (meta.context_window, meta.num_output) == (4000, 300)
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == "llm-fusion/merge"

    # One rule with `FusionChatModel.profile`: at least `min_successful` members call tools
    # (the others sit out a call that requires one).
    mixed = [*pool, fake("c", function_calling=False)]
    assert FusionLLM(pool=mixed, judge=fake("j")).metadata.is_function_calling_model
    text_only = FusionLLM(pool=mixed, judge=fake("j"), min_successful=3)
    assert not text_only.metadata.is_function_calling_model
    lc_member = FusionLLM(pool=[*pool, FakeChatModel()], judge=FakeJudge())
    assert lc_member.metadata.is_function_calling_model  # LangChain members that bind tools
    plain_judge = fake("j", function_calling=False)
    assert not FusionLLM(pool=pool, judge=plain_judge).metadata.is_function_calling_model
    assert FusionLLM(
        pool=pool, judge=plain_judge, mode="best_of"
    ).metadata.is_function_calling_model
    overridden = FusionLLM(
        pool=pool, judge=fake("j"), capabilities={"a": {"tool_calling": False}}, min_successful=2
    )
    assert not overridden.metadata.is_function_calling_model


def test_secrets_stay_out_of_repr_payload_and_dumps() -> None:
    from llama_index.llms.openai_like import OpenAILike

    secret = "sk-very-secret-key"
    member = OpenAILike(model="m", api_key=secret, api_base="http://127.0.0.1:9/v1")
    llm = FusionLLM(pool=[member, fake("b")], judge=fake("j"))
    for text in (repr(llm), str(llm), json.dumps(llm.to_payload()), llm.model_dump_json()):
        assert secret not in text
    assert "m=m" in repr(llm)


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
async def test_a_panel_of_llamaindex_judges_over_two_passes(method: str) -> None:
    """FusionLLM takes a list of LlamaIndex judges: every judge at every pass, the majority
    of those that answered, and the one that failed reported."""
    judges = [
        fake_judge_llm(model="li-judge-a", prefer="Seine"),
        fake("li-judge-down", error="judge down"),
        fake_judge_llm(model="li-judge-b", prefer="Seine"),
    ]
    llm = FusionLLM(
        pool=[fake("a", "The Loire."), fake("b", "The Seine."), fake("c", "The Rhone.")],
        judge=judges,
        mode="best_of",
        judge_passes=2,
    )

    answer = await call(llm, method, "Which river runs through Paris?")

    assert answer.text == "The Seine."
    verdicts = answer.report["verdicts"]
    assert len(verdicts) == 6
    assert {v["judge"] for v in verdicts if v["status"] == "upstream_error"} == {"judge-2"}
    assert {v["winner"] for v in verdicts if v["status"] == "ok"} == {"b"}
    assert answer.report["judge_agreement"] == 1.0
    assert answer.usage["prompt_tokens"] == sum(
        row["input_tokens"] for row in answer.report["usage_by_model"].values()
    )
