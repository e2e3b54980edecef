"""OpenRouter slugs in `FusionChatModel`: resolution, configuration errors, secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from pydantic import SecretStr, ValidationError

from langchain_fusion import ChatOpenAICompatible, FusionChatModel
from langchain_fusion.providers import OPENROUTER_BASE_URL
from langchain_fusion.sim import Simulator
from langchain_fusion.testing import FakeChatModel

pytestmark = pytest.mark.timeout(30)


def _chat_models(fusion: FusionChatModel) -> list[Any]:
    return [m.chat_model for m in fusion.members]


@pytest.mark.usefixtures("no_openrouter_env")
def test_slugs_resolve_to_openrouter_members(secret: str) -> None:
    fusion = FusionChatModel(
        pool=["anthropic/claude-3.7-sonnet", "google/gemini-2.0-flash-001:free"],
        judge="openai/gpt-4o",
        api_key=secret,
    )
    assert fusion.pool == ["anthropic/claude-3.7-sonnet", "google/gemini-2.0-flash-001:free"]
    assert fusion.judge == "openai/gpt-4o"  # the user's values are kept
    models = _chat_models(fusion)
    assert all(isinstance(m, ChatOpenAICompatible) for m in models)
    assert [m.model for m in models] == [
        "anthropic/claude-3.7-sonnet",
        "google/gemini-2.0-flash-001:free",
    ]
    assert {m.base_url for m in models} == {OPENROUTER_BASE_URL}
    assert all(m.api_key is not None and m.api_key.get_secret_value() == secret for m in models)
    assert fusion._identifying_params["pool"] == [
        "anthropic/claude-3.7-sonnet=anthropic/claude-3.7-sonnet",
        "google/gemini-2.0-flash-001:free=google/gemini-2.0-flash-001:free",
    ]
    assert fusion._identifying_params["judge"] == "openai/gpt-4o"
    # Resolved once: the same member objects (and connection pool) from call to call.
    assert _chat_models(fusion)[0] is models[0]


def test_key_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENROUTER_API_BASE", "http://127.0.0.1:1/api/v1")
    fusion = FusionChatModel(pool=["a/b", "c/d"], judge="a/b")
    assert isinstance(fusion.api_key, SecretStr)
    assert fusion.api_key.get_secret_value() == "sk-from-env"
    assert fusion.base_url == "http://127.0.0.1:1/api/v1"
    assert {m.base_url for m in _chat_models(fusion)} == {"http://127.0.0.1:1/api/v1"}


@pytest.mark.usefixtures("no_openrouter_env")
def test_a_slug_without_a_key_fails_at_construction() -> None:
    with pytest.raises(ValidationError) as caught:
        FusionChatModel(pool=[FakeChatModel(), "openai/gpt-4o"], judge=FakeChatModel())
    message = str(caught.value)
    assert "pool[1]" in message and "'openai/gpt-4o'" in message
    assert "api_key" in message and "OPENROUTER_API_KEY" in message
    with pytest.raises(ValidationError, match="judge is the string 'openai/gpt-4o', an OpenRouter"):
        FusionChatModel(pool=[FakeChatModel()], judge="openai/gpt-4o")
    # No slug, no key needed.
    assert FusionChatModel(pool=[FakeChatModel()], judge=FakeChatModel()).api_key is None


@pytest.mark.parametrize("bad", ["gpt-4o", "openai/", "/gpt-4o", "open ai/gpt", ""])
def test_a_string_that_is_not_a_slug_is_refused(bad: str, secret: str) -> None:
    with pytest.raises(ValidationError, match=r"not an OpenRouter slug: write 'vendor/model'"):
        FusionChatModel(pool=[bad, FakeChatModel()], judge=FakeChatModel(), api_key=secret)


def test_mixed_pools_and_dict_pools(secret: str) -> None:
    fake = FakeChatModel(model="local-fake")
    fusion = FusionChatModel(
        pool={"claude": "anthropic/claude-3.7-sonnet", "local": fake},
        judge=fake,
        api_key=secret,
    )
    members = fusion.members
    assert [m.name for m in members] == ["claude", "local"]
    assert isinstance(members[0].chat_model, ChatOpenAICompatible)
    assert members[1].chat_model is fake


def test_one_connection_pool_for_all_slug_members(secret: str, sim: Simulator) -> None:
    fusion = FusionChatModel(
        pool=["p/plain", "p/other", "p/wrong"],
        judge="p/judge",
        api_key=secret,
        base_url=sim.openrouter_base_url,
    )
    models = [*_chat_models(fusion), fusion._resolved()[1]]
    assert len({id(m._sync_client()) for m in models}) == 1
    fusion.invoke("What is 17*23?")
    assert [m.chat_model for m in fusion.members] == models[:3]  # same objects after a call


def test_changing_a_field_resolves_again(secret: str) -> None:
    fusion = FusionChatModel(pool=["a/b"], judge="a/b", api_key=secret)
    first = _chat_models(fusion)[0]
    moved = fusion.model_copy(update={"base_url": "http://127.0.0.1:2/api/v1"})
    assert _chat_models(moved)[0].base_url == "http://127.0.0.1:2/api/v1"
    assert _chat_models(fusion)[0] is first


class _Capture(BaseTracer):
    """Keeps every run (member, judge and fusion runs), serialised."""

    def __init__(self) -> None:
        super().__init__(_schema_format="original+chat")
        self.dumped: list[str] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _end_trace(self, run: Run) -> None:
        self.dumped.append(run.model_dump_json())
        super()._end_trace(run)


def test_the_key_is_never_shown(secret: str, sim: Simulator) -> None:
    fusion = FusionChatModel(
        pool=["p/plain", "p/429long", "p/other"],
        judge="p/judge",
        api_key=secret,
        base_url=sim.openrouter_base_url,
        mode="best_of",
    )
    tracer = _Capture()
    msg = fusion.invoke("What is 17*23?", config={"callbacks": [tracer]})
    report = msg.response_metadata["fusion"]
    assert report["candidates"][1]["status"] == "error"  # its error text is in the report
    texts = [
        repr(fusion),
        str(fusion),
        fusion.model_dump_json(),
        repr(fusion.model_dump()),
        json.dumps(fusion._identifying_params, default=str),
        fusion._get_llm_string(),
        json.dumps(report, default=str),
        repr(msg),
        *tracer.dumped,
    ]
    assert tracer.dumped  # the tracer did see the member runs
    for text in texts:
        assert secret not in text
    # Validation errors never show it, not even in their structured form.
    for bad in (
        {"pool": ["bad"]},
        {"pool": ["a/b"], "min_successful": 3},
        {"pool": ["a/b"], "capabilities": {"nobody": {}}},
    ):
        with pytest.raises(ValidationError) as caught:
            FusionChatModel(judge="a/b", api_key=secret, **bad)
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value.errors())
    with pytest.raises(ValidationError) as caught:
        ChatOpenAICompatible(model="a/b", base_url="nowhere", api_key=secret)
    assert secret not in repr(caught.value.errors())
