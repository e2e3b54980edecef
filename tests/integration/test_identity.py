"""What LangChain knows a fusion by: identifying params, cache keys, LangSmith params,
response metadata, the usage chunk of a stream, and its repr."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

MODES = ["best_of", "merge", "debate"]


def alpha() -> FakeChatModel:
    return FakeChatModel(model="alpha", responses=["Alpha thinks slowly."])


def beta() -> FakeChatModel:
    return FakeChatModel(model="beta", responses=["Beta thinks fast."])


def fusion(mode: str = "merge", **kwargs: Any) -> FusionChatModel:
    params: dict[str, Any] = {
        "pool": [alpha(), beta()],
        "judge": FakeJudge(prefer="Beta"),
        "mode": mode,
        "debate_rounds": 1,
        "seed": 1,
    }
    params.update(kwargs)
    return FusionChatModel(**params)


# -- identifying params and LangSmith params ---------------------------------------------------


def test_identifying_params_name_pool_judge_and_mode() -> None:
    params = fusion("debate")._identifying_params
    assert params["pool"] == ["alpha=alpha", "beta=beta"]
    assert params["judge"] == "fake-judge"
    assert params["mode"] == "debate"
    assert params["debate_rounds"] == 1


def test_identifying_params_use_pool_names() -> None:
    named = FusionChatModel(pool={"first": alpha(), "second": alpha()}, judge=FakeJudge())
    assert named._identifying_params["pool"] == ["first=alpha", "second=alpha"]
    listed = FusionChatModel(pool=[alpha(), alpha()], judge=FakeJudge())
    assert listed._identifying_params["pool"] == ["alpha=alpha", "alpha-2=alpha"]


def test_ls_params() -> None:
    model = fusion("best_of")
    params = model._get_ls_params()
    assert params["ls_provider"] == "llm-fusion"
    assert params["ls_model_type"] == "chat"
    assert params["ls_model_name"] == "fusion:best_of"
    assert "ls_stop" not in params
    # A per-call mode (`.bind(mode=...)`) is what the trace shows.
    assert model._get_ls_params(mode="debate")["ls_model_name"] == "fusion:debate"
    assert model._get_ls_params(stop=["END"])["ls_stop"] == ["END"]


# -- cache keys --------------------------------------------------------------------------------


def cached(model: FusionChatModel, cache: InMemoryCache) -> FusionChatModel:
    return model.model_copy(update={"cache": cache})


def member_calls(model: FusionChatModel) -> int:
    return sum(m.chat_model.calls for m in model.members)  # type: ignore[attr-defined]


def test_cache_serves_the_same_fusion() -> None:
    cache = InMemoryCache()
    model = cached(fusion("best_of"), cache)
    first = model.invoke("Who is faster?")
    calls = member_calls(model)
    again = model.invoke("Who is faster?")
    assert member_calls(model) == calls  # served from the cache
    assert again.content == first.content


def test_cache_keys_differ_by_mode_on_the_same_members() -> None:
    cache = InMemoryCache()
    best_of = cached(fusion("best_of"), cache)
    merge = best_of.model_copy(update={"mode": "merge"})  # the very same member objects
    assert best_of._get_llm_string() != merge._get_llm_string()
    answer = best_of.invoke("Who is faster?")
    assert answer.content == "Beta thinks fast."
    calls = member_calls(best_of)
    merged = merge.invoke("Who is faster?")
    assert member_calls(merge) == calls + 2  # the members were asked again
    assert merged.content != answer.content
    assert merged.response_metadata["fusion"]["mode"] == "merge"


def test_cache_keys_differ_by_per_call_mode() -> None:
    cache = InMemoryCache()
    model = cached(fusion("best_of"), cache)
    answer = model.invoke("Who is faster?")
    merged = model.bind(mode="merge").invoke("Who is faster?")
    assert merged.response_metadata["fusion"]["mode"] == "merge"
    assert merged.content != answer.content


@pytest.mark.parametrize(
    "other_pool",
    [
        pytest.param(lambda: [alpha(), FakeChatModel(model="gamma")], id="other-model"),
        pytest.param(
            lambda: [alpha(), FakeChatModel(model="beta", responses=["Beta changed its mind."])],
            id="same-model-other-settings",
        ),
        pytest.param(lambda: [alpha(), beta().bind(stop=["fast"])], id="bound-kwargs"),
        pytest.param(lambda: {"a": alpha(), "b": beta()}, id="other-names"),
        pytest.param(lambda: [alpha()], id="fewer-members"),
    ],
)
def test_cache_keys_differ_by_pool(other_pool: Any) -> None:
    cache = InMemoryCache()
    first = cached(fusion("merge"), cache)
    second = cached(fusion("merge", pool=other_pool()), cache)
    assert first._get_llm_string() != second._get_llm_string()
    first.invoke("Who is faster?")
    second.invoke("Who is faster?")
    assert member_calls(second) >= 1  # not served the first fusion's cached answer


def test_cache_keys_differ_by_judge() -> None:
    cache = InMemoryCache()
    first = cached(fusion("best_of"), cache)
    # (FakeJudge's own cache key ignores `prefer`, so the judges differ by model too)
    second = cached(fusion("best_of", judge=FakeJudge(model="judge-2", prefer="Alpha")), cache)
    assert first._get_llm_string() != second._get_llm_string()
    assert first.invoke("Who is faster?").content == "Beta thinks fast."
    assert second.invoke("Who is faster?").content == "Alpha thinks slowly."


def test_cache_key_has_no_secrets() -> None:
    member = ChatOpenAI(model="gpt-4o-mini", api_key="sk-KEEP-THIS-SECRET", max_retries=0)
    model = FusionChatModel(pool=[member, alpha()], judge=FakeJudge())
    assert "KEEP-THIS-SECRET" not in model._get_llm_string()


# -- the response ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_response_metadata(mode: str) -> None:
    message = await fusion(mode).ainvoke("Who is faster?")
    meta = message.response_metadata
    assert meta["model_name"] == f"llm-fusion/{mode}"
    assert meta["model_provider"] == "llm-fusion"
    assert meta["finish_reason"] == "stop"
    report = meta["fusion"]
    json.dumps(report)  # JSON-serialisable
    assert report["mode"] == mode
    assert [(c["name"], c["model"], c["status"]) for c in report["candidates"]] == [
        ("alpha", "alpha", "ok"),
        ("beta", "beta", "ok"),
    ]
    for key in ("latency_s", "usage", "cost_usd", "error"):
        assert all(key in c for c in report["candidates"])
    assert set(report["timings"]) >= {"total_s", "judge_s"}
    assert set(report["usage_by_model"]) == {"alpha", "beta", "fake-judge"}
    usage: dict[str, Any] = dict(message.usage_metadata or {})
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert usage[key] == sum(u[key] for u in report["usage_by_model"].values())
    if mode == "best_of":
        assert report["winner"] == "beta"
    if mode == "debate":
        assert report["rounds"] == 1


async def collect(model: Any, use_async: bool) -> list[AIMessageChunk]:
    if use_async:
        return [c async for c in model.astream("Who is faster?")]
    return list(model.stream("Who is faster?"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_stream_has_one_usage_chunk_and_it_is_last(mode: str, use_async: bool) -> None:
    model = fusion(mode)
    chunks = await collect(model, use_async)
    assert len(chunks) >= 2
    with_usage = [c for c in chunks if c.usage_metadata]
    with_name = [c for c in chunks if c.response_metadata.get("model_name")]
    assert with_usage == [chunks[-1]]
    assert with_name == [chunks[-1]]
    assert chunks[-1].chunk_position == "last"
    assert all(c.chunk_position is None for c in chunks[:-1])
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    invoked = await model.ainvoke("Who is faster?")
    assert full.usage_metadata == invoked.usage_metadata
    assert full.response_metadata["model_name"] == f"llm-fusion/{mode}"
    assert full.response_metadata["fusion"]["mode"] == mode
    assert full.text


# -- repr --------------------------------------------------------------------------------------


def test_repr_is_useful_and_keeps_secrets() -> None:
    member = ChatOpenAI(model="gpt-4o-mini", api_key="sk-KEEP-THIS-SECRET", max_retries=0)
    model = FusionChatModel(pool=[member, alpha()], judge=FakeJudge(), mode="debate")
    text = repr(model)
    assert text.startswith("FusionChatModel(")
    assert "mode='debate'" in text
    assert "gpt-4o-mini" in text and "model='alpha'" in text and "fake-judge" not in text
    assert "judge=FakeJudge(" in text
    assert "KEEP-THIS-SECRET" not in text
    assert "KEEP-THIS-SECRET" not in str(model)
    assert "KEEP-THIS-SECRET" not in str(model._identifying_params)
