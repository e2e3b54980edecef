"""Contracts with langchain-core's private API: every name `langchain_fusion/_compat.py` uses.

Each test states one assumption and fails with a message naming it and what in llm-fusion
depends on it, so that a langchain-core upgrade that breaks one says where to look.
"""

from __future__ import annotations

import contextvars
from typing import Any, ClassVar

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.globals import set_llm_cache
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers import context as tracer_context

from langchain_fusion import FusionChatModel, _compat
from langchain_fusion._tracing import children_context
from langchain_fusion.testing import FakeChatModel, FakeJudge


class Probe(FakeChatModel):
    """Records which private hooks LangChain calls, and with what."""

    seen: ClassVar[list[tuple[str, Any]]] = []
    streaming: bool = False

    def _generate_with_cache(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        Probe.seen.append(("_generate_with_cache", run_manager))
        return super()._generate_with_cache(messages, stop=stop, run_manager=run_manager, **kw)

    async def _agenerate_with_cache(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        Probe.seen.append(("_agenerate_with_cache", run_manager))
        return await super()._agenerate_with_cache(
            messages, stop=stop, run_manager=run_manager, **kw
        )

    def _get_llm_string(self, stop: Any = None, **kwargs: Any) -> str:
        Probe.seen.append(("_get_llm_string", None))
        return super()._get_llm_string(stop=stop, **kwargs)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        Probe.seen.append(("_stream", run_manager))
        yield from super()._stream(messages, stop, run_manager, **kw)


@pytest.fixture(autouse=True)
def _fresh_probe() -> None:
    Probe.seen = []


def test_invoke_goes_through_generate_with_cache_with_the_run_manager() -> None:
    Probe(responses=["hi"]).invoke("x")
    assert [name for name, _ in Probe.seen][:1] == ["_generate_with_cache"] and Probe.seen[0][
        1
    ] is not None, (
        "langchain-core no longer calls BaseChatModel._generate_with_cache(messages, stop, "
        "run_manager) from invoke: _compat.GenerationHooks (the fusion run's parent for "
        f"_stream) must move to what invoke calls now; calls seen: {Probe.seen}"
    )


async def test_ainvoke_goes_through_agenerate_with_cache_with_the_run_manager() -> None:
    await Probe(responses=["hi"]).ainvoke("x")
    assert Probe.seen and Probe.seen[0][0] == "_agenerate_with_cache" and Probe.seen[0][1], (
        "langchain-core no longer calls BaseChatModel._agenerate_with_cache(messages, stop, "
        f"run_manager) from ainvoke: _compat.GenerationHooks must move; seen: {Probe.seen}"
    )


def test_an_internally_streamed_invoke_calls_stream_without_a_run_manager_inside_the_hook() -> None:
    # The reason `GenerationHooks` exists: `_stream` gets no run manager when `invoke`
    # streams internally, so the parent must be set in `_generate_with_cache` around it.
    Probe(responses=["hi there"], streaming=True).invoke("x")
    names = [name for name, _ in Probe.seen]
    assert names[0] == "_generate_with_cache" and "_stream" in names, (
        "an invoke that streams internally no longer runs _stream inside "
        f"_generate_with_cache: {names}; review _compat.GenerationHooks"
    )


def test_the_cache_key_is_get_llm_string_and_the_fusion_extends_it() -> None:
    set_llm_cache(InMemoryCache())
    try:
        Probe(responses=["hi"], cache=True).invoke("x")
        assert ("_get_llm_string", None) in Probe.seen, (
            "langchain-core no longer builds the cache key with BaseChatModel._get_llm_string: "
            "FusionChatModel's key (each member's own key, _compat.GenerationHooks) is unused"
        )
    finally:
        set_llm_cache(None)
    a = FusionChatModel(pool=[FakeChatModel(model="m", responses=["a"])], judge=FakeJudge())
    b = FusionChatModel(pool=[FakeChatModel(model="m", responses=["b"])], judge=FakeJudge())
    assert isinstance(_compat.llm_string(a), str)
    assert _compat.llm_string(a) != _compat.llm_string(b), "members' own keys are not in it"


def test_convert_input_gives_the_messages_invoke_sends() -> None:
    messages = _compat.convert_input(FakeChatModel(), "hello")
    assert messages == [HumanMessage(content="hello")], (
        "BaseChatModel._convert_input(value).to_messages() changed: estimate_cost reads it"
    )


def test_llm_type_is_a_string_property() -> None:
    assert _compat.llm_type(FakeChatModel()) == "fake-chat-model", (
        "BaseChatModel._llm_type is no longer the model's type name: members.model_id reads it"
    )


def test_configure_hooks_hold_the_usage_callbacks_context_variable() -> None:
    hooks = _compat.configure_hook_vars()
    assert hooks and all(isinstance(v, contextvars.ContextVar) for v in hooks)
    with get_usage_metadata_callback() as handler:
        holding = [v for v in _compat.configure_hook_vars() if v.get() is handler]
        assert holding, (
            "get_usage_metadata_callback() no longer registers its handler through "
            "langchain_core.tracers.context._configure_hooks: children_context cannot clear "
            "it, and every member's usage would be counted twice"
        )
        with children_context():
            assert all(v.get() is None for v in holding), "children_context left it set"
        assert all(v.get() is handler for v in holding)


def test_a_changed_configure_hooks_entry_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracer_context, "_configure_hooks", [("not a context variable",)])
    with pytest.raises(RuntimeError, match="_configure_hooks"):
        _compat.configure_hook_vars()


def test_a_chain_step_sees_its_config_in_var_child_runnable_config() -> None:
    seen: list[Any] = []

    def step(value: str) -> str:
        seen.append(_compat.var_child_runnable_config.get())
        with children_context():
            seen.append(_compat.var_child_runnable_config.get())
        return value

    (RunnableLambda(lambda v: v) | RunnableLambda(step)).invoke("x", {"tags": ["outer"]})
    assert seen[0] is not None and "outer" in seen[0].get("tags", []), (
        "langchain-core no longer sets var_child_runnable_config while a chain runs a step: "
        "children_context clears the wrong variable (a member could inherit the chain's "
        "callbacks)"
    )
    assert seen[1] is None
