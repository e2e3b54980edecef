"""`FusionChatModel`: a LangChain chat model that fuses the answers of a pool of chat models.

The adapter translates between LangChain and the runtime; it holds no fusion logic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast
from uuid import uuid4

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.base import RunnableBindingBase
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from langchain_fusion._compat import GenerationHooks, convert_input, llm_string
from langchain_fusion._core.budget import Pricing, estimate_fusion, estimate_tokens
from langchain_fusion._core.config import resolve_settings
from langchain_fusion._runtime.chunks import last_chunk
from langchain_fusion._runtime.members import Member, unwrap_chat_model
from langchain_fusion._runtime.session import FusionBase
from langchain_fusion._runtime.steps import FusionResult
from langchain_fusion._runtime.tool_choice import normalise_tool_choice
from langchain_fusion._tracing import (
    STREAM_PARENT,
    Parent,
    child_config_factory,
    parent_of,
)


class FusionChatModel(GenerationHooks, FusionBase):
    """Runs one prompt through a pool of chat models in parallel and fuses their answers.

    A judge model fuses the answers in one of four modes: `best_of` picks the strongest
    answer and returns it as written, `merge` writes one answer from a structured comparison
    of all, `debate` lets the members critique and revise each other's answers before the
    judge writes the answer, and `vote` returns the majority answer (the judge breaks ties).

    Setup:
        ```bash
        pip install llm-fusion
        ```

    Instantiate:
        ```python
        from langchain_fusion import FusionChatModel

        fusion = FusionChatModel(pool=[model_a, model_b, model_c], judge=model_a, mode="merge")
        ```

    Invoke:
        ```python
        msg = fusion.invoke("Review this migration plan for operational risks.")
        msg.content                       # the fused answer
        msg.usage_metadata                # every token of every call, summed
        msg.response_metadata["fusion"]   # the fusion report
        ```

    Per-call settings:
        ```python
        fusion.bind(mode="debate", debate_rounds=1).invoke("...")
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    pool: list[Any] | dict[str, Any] = Field(...)
    """The members: chat models (optionally bound, retried, with fallbacks or config) or
    OpenRouter slugs (`"anthropic/claude-3.7-sonnet"`), as a list (names come from the
    models, made unique) or a dict `{name: chat model or slug}`."""

    judge: Any = Field(...)
    """The chat model (or OpenRouter slug) that judges and fuses the members' answers, or a
    list of them: a panel, whose verdicts are aggregated; its first judge writes the answer
    where one is written (merge, debate)."""

    # `api_key` and `base_url`, for the slugs, come from `SlugFields`.

    stop: list[str] | None = None
    """Stop sequences for every call of the fusion; a call's own `stop` replaces them. They
    reach the members in `best_of` (whose answer is returned as written) and the judge
    wherever it writes the answer."""

    streaming: bool = False
    """Whether `invoke` streams internally, as LangChain's `streaming` flag does for other
    chat models: callbacks get each token of the fused answer as it is written."""

    hedge: dict[str, Any] = Field(default_factory=dict)
    """Backups by member name: a chat model, or `True` for the same model again. A hedged
    member whose first token has not come after `hedge_after` seconds gets its backup
    started; the first copy to answer wins, the other is cancelled, and the report says
    which copy answered."""

    def _resolve_model_profile(self) -> ModelProfile | None:
        """The fusion's profile, derived from its members and judge."""
        return cast("ModelProfile", self._derived_profile())

    # -- LangChain identity -----------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "llm-fusion"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self._identity_params()

    def _cache_key_extra(self) -> str:
        """Each member's and judge's own cache key, after the fusion's parameters.

        Model ids alone are not enough: two pools of the same model with different settings
        (temperature, bound kwargs...) answer differently and must not share cached answers.
        """
        members, judges = self._participants()
        return "---" + repr([f"{m.name}:{_member_cache_key(m)}" for m in [*members, *judges]])

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="llm-fusion",
            ls_model_name=f"fusion:{kwargs.get('mode', self.mode)}",
            ls_model_type="chat",
        )
        stop = stop if stop is not None else self.stop
        if stop:
            params["ls_stop"] = stop
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        return params

    # -- preparing a run --------------------------------------------------------------------

    def estimate_cost(self, messages: LanguageModelInput, **overrides: Any) -> dict[str, Any]:
        """The worst-case cost of fusing `messages`, phase by phase, before running it.

        Input tokens are estimated at four characters a token; output is bounded by
        `max_tokens` (or assumed to be 1024 tokens a call). Prices come from `prices`; phases
        with an unpriced model have `cost_usd` None and list it under `unpriced`.

        Args:
            messages: The input, as for `invoke`.
            **overrides: Per-call settings, as for `bind` (e.g. `mode="debate"`).
        """
        settings = resolve_settings(self, overrides, len(self.pool))
        members, judges = self._participants()
        conversation = convert_input(self, messages)
        return estimate_fusion(
            mode=settings.mode,
            members=[m.model for m in members],
            judge=[j.model for j in judges],
            input_tokens=estimate_tokens(conversation),
            pricing=Pricing(settings.prices),
            max_tokens=settings.max_tokens,
            debate_rounds=settings.debate_rounds,
            judge_passes=settings.judge_passes,
        )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to every member that can call tools, and to the judge.

        In best_of the chosen member's tool calls are returned as proposed; in merge and
        debate the judge, bound with the same tools, writes the final message, which may be
        tool calls. Members that cannot call tools answer in text, or sit the call out
        (reported `skipped`) when `tool_choice` requires a tool call.

        Args:
            tools: Tools in any form LangChain accepts (functions, pydantic models,
                `BaseTool`s, OpenAI tool dicts).
            tool_choice: `"auto"`, `"any"` (a tool call is required), `"none"`, a tool
                name, or `True` (call the single tool).
            **kwargs: Further fusion settings for the bound calls (e.g. `mode`).
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        choice = normalise_tool_choice(tool_choice, formatted)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def _final_message(self, result: FusionResult) -> AIMessage:
        """The fused answer with the usage and report: the runner's message, not rebuilt."""
        return result.message.model_copy(
            update={
                "usage_metadata": result.usage,
                "response_metadata": self._response_metadata(result),
            }
        )

    def _response_metadata(self, result: FusionResult) -> dict[str, Any]:
        return {
            "model_name": f"llm-fusion/{result.report['mode']}",
            "model_provider": "llm-fusion",
            "finish_reason": "tool_calls" if result.message.tool_calls else "stop",
            "fusion": result.report,
        }

    def _chunk(self, item: AIMessageChunk | FusionResult) -> ChatGenerationChunk:
        """One item of the runtime's stream as LangChain's chunk; the result ends it."""
        if isinstance(item, FusionResult):
            return ChatGenerationChunk(
                message=last_chunk(item.usage, self._response_metadata(item))
            )
        return ChatGenerationChunk(message=item)

    def _parent(
        self,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> Parent:
        """The fusion run for the children: from the run manager, or set by the entry point."""
        if run_manager is None:
            stream_parent = STREAM_PARENT.get()
            return Parent(None) if stream_parent is None else stream_parent()
        return parent_of(run_manager, lambda: self._get_invocation_params(stop=stop, **kwargs))

    # LangChain calls `_stream` without a run manager when `invoke` streams internally (a
    # streaming handler is attached: LangGraph's `stream_mode="messages"`, `astream_events`):
    # the run manager reaches `_stream` through the same context variable as in `stream`.

    @contextmanager
    def _generation_scope(
        self,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> Iterator[None]:
        if run_manager is None:  # `_stream`'s parent is the one the entry point set, if any
            yield
            return
        token = STREAM_PARENT.set(lambda: self._parent(run_manager, stop, kwargs))
        try:
            yield
        finally:
            STREAM_PARENT.reset(token)

    # -- generation -------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        session = self._session(messages, kwargs, self._stop(stop))
        result = session.invoke(child_config_factory(self._parent(run_manager, stop, kwargs)))
        return ChatResult(generations=[ChatGeneration(message=self._final_message(result))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        session = self._session(messages, kwargs, self._stop(stop))
        config_for = child_config_factory(self._parent(run_manager, stop, kwargs))
        result = await session.ainvoke(config_for)
        return ChatResult(generations=[ChatGeneration(message=self._final_message(result))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        session = self._session(messages, kwargs, self._stop(stop))
        config_for = child_config_factory(self._parent(run_manager, stop, kwargs))
        for item in session.stream(config_for):
            chunk = self._chunk(item)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        session = self._session(messages, kwargs, self._stop(stop))
        config_for = child_config_factory(self._parent(run_manager, stop, kwargs))
        async for item in session.astream(config_for):
            chunk = self._chunk(item)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        """The call's stop sequences: its own, else the fusion's."""
        return stop if stop is not None else self.stop

    # -- streaming entry points: hand `_stream` its parent run ------------------------------

    def _stream_parent(self, config: RunnableConfig) -> Parent:
        """The fusion run's parent for its children; pins `config`'s callbacks to it.

        The configured manager becomes the config's callbacks, so that the fusion run and
        its children share the same handler instances: a LangSmith tracer enabled by the
        environment is otherwise created anew at each configuration, and children whose
        parent is unknown to their tracer instance are traced as separate root runs.
        """
        manager = CallbackManager.configure(
            config.get("callbacks"),
            self.callbacks,
            self.verbose,
            config.get("tags"),
            self.tags,
            config.get("metadata"),
            self.metadata,
        )
        config["callbacks"] = manager
        return Parent(
            run_id=config.get("run_id"),
            handlers=list(manager.handlers),
            tags=list(manager.inheritable_tags),
            metadata=dict(manager.inheritable_metadata),
        )

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the fused answer; see `BaseChatModel.stream`."""
        config = ensure_config(config)
        config["run_id"] = config.get("run_id") or uuid4()
        parent = self._stream_parent(config)
        iterator = super().stream(input, config, stop=stop, **kwargs)
        # LangChain calls `_stream` without a run manager: the parent reaches it through a
        # context variable set only while the stream starts, i.e. while `_stream` reads it.
        token = STREAM_PARENT.set(lambda: parent)
        try:
            first = next(iterator, None)
        finally:
            STREAM_PARENT.reset(token)
        if first is None:
            return
        yield first
        yield from iterator

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Stream the fused answer; see `BaseChatModel.astream`."""
        config = ensure_config(config)
        config["run_id"] = config.get("run_id") or uuid4()
        parent = self._stream_parent(config)
        iterator = super().astream(input, config, stop=stop, **kwargs)
        token = STREAM_PARENT.set(lambda: parent)
        try:
            first = await anext(iterator, None)
        finally:
            STREAM_PARENT.reset(token)
        if first is None:
            return
        yield first
        async for chunk in iterator:
            yield chunk


def _member_cache_key(member: Member) -> str:
    """A member's own cache key: its chat model's, with the kwargs bound around it."""
    bound: dict[str, Any] = {}
    runnable: Any = member.runnable
    while isinstance(runnable, RunnableBindingBase):
        bound = {**runnable.kwargs, **bound}  # outer bindings win, as when called
        runnable = runnable.bound
    chat_model = unwrap_chat_model(runnable) or member.chat_model
    return llm_string(chat_model, **bound)
