"""`FusionLLM`: a LlamaIndex LLM that fuses the answers of a pool of LLMs.

The adapter translates between LlamaIndex and the runtime; it holds no fusion logic. The
runtime is the one `FusionChatModel` drives: LlamaIndex members are wrapped as LangChain
chat models (`_member`), messages are converted both ways (`_messages`), and each member and
judge call is a span under the fusion's span (`_spans`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar, cast

from langchain_core.messages import AIMessageChunk
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool
from pydantic import ConfigDict, Field, SecretStr

from langchain_fusion._runtime.members import Member
from langchain_fusion._runtime.session import FusionBase
from langchain_fusion._runtime.steps import FusionResult
from langchain_fusion._runtime.tool_choice import normalise_tool_choice
from langchain_fusion._slugs import api_key_field
from llamaindex_fusion._compat import active_instrument_tags, active_span_id
from llamaindex_fusion._member import FUSION_HANDLERS, as_chat_model
from llamaindex_fusion._messages import (
    streamed_message,
    to_langchain_messages,
    to_llamaindex_message,
    tool_calls_of,
)
from llamaindex_fusion._spans import CallSpans, Scope, aclosing_spans, closing_spans
from llamaindex_fusion._tools import to_openai_tools

F = TypeVar("F", bound=Callable[..., Any])


def _chat_callback(fn: F) -> F:
    """LlamaIndex's `llm_chat_callback` (events, legacy callbacks), typed."""
    return cast(F, llm_chat_callback()(fn))


def _completion_callback(fn: F) -> F:
    """LlamaIndex's `llm_completion_callback`, typed."""
    return cast(F, llm_completion_callback()(fn))


class FusionLLM(FunctionCallingLLM, FusionBase):
    """Runs one prompt through a pool of LLMs in parallel and fuses their answers.

    The LlamaIndex face of llm-fusion: a `FunctionCallingLLM`, so it drops in wherever
    LlamaIndex takes an `llm=` (query and chat engines, `FunctionAgent`, `ReActAgent`,
    `Settings.llm`). Pool and judge take LlamaIndex LLMs, LangChain chat models and
    OpenRouter slugs (`"openai/gpt-4o"`, with `api_key` or `OPENROUTER_API_KEY`), mixed.
    The fusion is the one `FusionChatModel` runs (see `mode`): `best_of` picks the strongest
    answer and returns it as written, `merge` writes one answer from a structured comparison
    of all, `debate` lets the members critique and revise each other's answers before the
    judge writes the answer, and `vote` returns the majority answer.

    Setup:
        ```bash
        pip install "llm-fusion[llamaindex]"
        ```

    Instantiate:
        ```python
        from llamaindex_fusion import FusionLLM

        llm = FusionLLM(pool=[llm_a, llm_b, llm_c], judge=llm_a, mode="merge")
        llm = FusionLLM(
            pool=["openai/gpt-4o", "anthropic/claude-3.7-sonnet", llm_c], judge="openai/gpt-4o"
        )
        ```

    Use:
        ```python
        response = llm.chat([ChatMessage(role="user", content="Why is the sky blue?")])
        response.message.content                 # the fused answer
        response.raw["usage"]                    # every token of every call, summed
        response.additional_kwargs["fusion"]     # the fusion report
        index.as_query_engine(llm=llm)           # or any other LlamaIndex component
        ```

    Per-call settings are keyword arguments of each method, e.g.
    `llm.chat(messages, mode="debate", debate_rounds=1)`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    _slug_alternative: ClassVar[str] = "a LlamaIndex LLM or a LangChain chat model"

    pool: list[Any] | dict[str, Any] = Field(..., exclude=True, repr=False)
    """The members: LlamaIndex LLMs, LangChain chat models (optionally bound, retried,
    with fallbacks or config) and OpenRouter slugs (`"anthropic/claude-3.7-sonnet"`), mixed,
    as a list (names come from the models, made unique) or a dict `{name: model or slug}`."""

    judge: Any = Field(..., exclude=True, repr=False)
    """The LlamaIndex LLM, LangChain chat model or OpenRouter slug that judges and fuses the
    answers, or a list of them: a panel, whose verdicts are aggregated; its first judge
    writes the answer where one is written (merge, debate)."""

    api_key: SecretStr | None = api_key_field(exclude=True)
    """OpenRouter API key for the slugs in `pool` and `judge`; default: the
    `OPENROUTER_API_KEY` environment variable. Never shown in reprs, reports or errors, and
    left out of `model_dump`/`to_dict`/`to_json`, like the pool. (`base_url`, where slugs are
    sent, comes from `SlugFields`.)"""

    hedge: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)
    """Backups by member name: a LlamaIndex LLM or LangChain chat model, or `True` for the
    same model again. A hedged member whose first token has not come after `hedge_after`
    seconds gets its backup started; the first to answer wins, the other is cancelled."""

    @classmethod
    def _as_model(cls, value: Any, where: str) -> Any:
        """LlamaIndex LLMs are wrapped as LangChain chat models; others are taken as given."""
        return as_chat_model(value, where)

    @classmethod
    def class_name(cls) -> str:
        """The class name LlamaIndex shows in payloads and serialisation."""
        return "FusionLLM"

    def __repr_args__(self) -> Any:
        yield from self._identity_params().items()

    @property
    def judge_member(self) -> Member:
        """The (first) judge as the runtime calls it."""
        return self._judge_members()[0]

    @property
    def metadata(self) -> LLMMetadata:
        """What LlamaIndex needs to know to use the fusion like any LLM.

        The context window and output size are the smallest known among the pool and the
        judge (every one of them reads the conversation, and any of them may write the
        answer); it calls tools (`is_function_calling_model`) when at least `min_successful`
        members can (the others sit out a call that requires one) and, outside `best_of`,
        the judge too, since it writes the final answer: the rule of `FusionChatModel`'s
        profile.
        """
        profile = self._derived_profile()
        return LLMMetadata(
            context_window=profile.get("max_input_tokens", DEFAULT_CONTEXT_WINDOW),
            num_output=profile.get("max_output_tokens", DEFAULT_NUM_OUTPUTS),
            is_chat_model=True,
            is_function_calling_model=profile["tool_calling"],
            model_name=f"llm-fusion/{self.mode}",
        )

    # -- running a call -------------------------------------------------------------------

    def _scope(self, span_id: str | None) -> Scope:
        """Context for the fusion's calls: its span, and its callback handlers to avoid."""
        return Scope(
            [
                (active_span_id, span_id),
                (active_instrument_tags, active_instrument_tags.get()),
                (FUSION_HANDLERS, tuple(self.callback_manager.handlers)),
            ]
        )

    @staticmethod
    def _response(result: FusionResult) -> ChatResponse:
        usage = result.usage
        report = result.report
        raw = {
            "model": f"llm-fusion/{report['mode']}",
            "usage": {
                "prompt_tokens": usage["input_tokens"],
                "completion_tokens": usage["output_tokens"],
                "total_tokens": usage["total_tokens"],
                "cost": report.get("cost_usd"),
            },
            "usage_metadata": dict(usage),
        }
        return ChatResponse(
            message=to_llamaindex_message(result.message),
            raw=raw,
            delta="",
            additional_kwargs={"fusion": report},
        )

    @classmethod
    def _responses(cls, items: Iterator[AIMessageChunk | FusionResult]) -> ChatResponseGen:
        so_far: AIMessageChunk | None = None
        for item in items:
            if isinstance(item, FusionResult):
                yield cls._response(item)
                continue
            so_far = item if so_far is None else so_far + item
            yield ChatResponse(message=streamed_message(so_far), delta=item.text)

    @classmethod
    async def _aresponses(
        cls, items: AsyncIterator[AIMessageChunk | FusionResult]
    ) -> ChatResponseAsyncGen:
        so_far: AIMessageChunk | None = None
        async for item in items:
            if isinstance(item, FusionResult):
                yield cls._response(item)
                continue
            so_far = item if so_far is None else so_far + item
            yield ChatResponse(message=streamed_message(so_far), delta=item.text)

    # -- fusing: the undecorated implementations ----------------------------------------------

    def _fuse(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        session = self._session(to_langchain_messages(messages), kwargs)
        spans = CallSpans(active_span_id.get())
        try:
            result = session.invoke(spans.config_for, lambda: self._scope(spans.parent_id))
        finally:
            spans.close_all()
        return self._response(result)

    async def _afuse(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        session = self._session(to_langchain_messages(messages), kwargs)
        spans = CallSpans(active_span_id.get())
        try:
            result = await session.ainvoke(spans.config_for, lambda: self._scope(spans.parent_id))
        finally:
            spans.close_all()
        return self._response(result)

    def _fuse_stream(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseGen:
        session = self._session(to_langchain_messages(messages), kwargs)  # raises here
        spans = CallSpans(active_span_id.get())
        steps = session.stream(spans.config_for, lambda: self._scope(spans.parent_id))
        return self._responses(closing_spans(steps, spans))

    def _afuse_stream(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseAsyncGen:
        session = self._session(to_langchain_messages(messages), kwargs)  # raises here
        spans = CallSpans(active_span_id.get())
        steps = session.astream(spans.config_for, lambda: self._scope(spans.parent_id))
        return self._aresponses(aclosing_spans(steps, spans))

    # -- chat -------------------------------------------------------------------------------

    @_chat_callback
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Fuse the pool's answers to `messages`.

        Args:
            messages: The conversation.
            **kwargs: Per-call fusion settings (`mode`, `debate_rounds`...), and `tools`
                and `tool_choice` as `chat_with_tools` prepares them.

        Returns:
            The fused answer; the report is in `additional_kwargs["fusion"]`, the usage of
            every call in `raw["usage"]`.
        """
        return self._fuse(messages, kwargs)

    @_chat_callback
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async `chat`."""
        return await self._afuse(messages, kwargs)

    @_chat_callback
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the fused answer; the last response carries the report and the usage."""
        return self._fuse_stream(messages, kwargs)

    @_chat_callback
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async `stream_chat`."""
        return self._afuse_stream(messages, kwargs)

    # -- completion -------------------------------------------------------------------------

    @staticmethod
    def _prompt(prompt: str) -> list[ChatMessage]:
        return [ChatMessage(role=MessageRole.USER, content=prompt)]

    @staticmethod
    def _completion(response: ChatResponse, text: str | None = None) -> CompletionResponse:
        return CompletionResponse(
            text=response.message.content or "" if text is None else text,
            delta=response.delta,
            raw=response.raw,
            additional_kwargs=response.additional_kwargs,
        )

    @_completion_callback
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Fuse the pool's answers to `prompt`, sent as one user message.

        Args:
            prompt: The prompt.
            formatted: Ignored (a fusion is a chat model: no completion template applies).
            **kwargs: Per-call fusion settings.
        """
        return self._completion(self._fuse(self._prompt(prompt), kwargs))

    @_completion_callback
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async `complete`."""
        return self._completion(await self._afuse(self._prompt(prompt), kwargs))

    @_completion_callback
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream the fused answer to `prompt`."""
        responses = self._fuse_stream(self._prompt(prompt), kwargs)

        def gen() -> CompletionResponseGen:
            text = ""
            for response in responses:
                text += response.delta or ""
                yield self._completion(response, text)

        return gen()

    @_completion_callback
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async `stream_complete`."""
        responses = self._afuse_stream(self._prompt(prompt), kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            text = ""
            async for response in responses:
                text += response.delta or ""
                yield self._completion(response, text)

        return gen()

    # -- tools ------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The `chat` arguments for a call with tools: OpenAI tool dicts and `tool_choice`.

        Args:
            tools: LlamaIndex tools; the fusion proposes calls, the caller runs them.
            user_msg: A last user message to add to `chat_history`.
            chat_history: The conversation.
            verbose: Unused.
            allow_parallel_tool_calls: When False, only the first proposed call is kept.
            tool_required: Require a tool call (`tool_choice="any"` for the fusion).
            tool_choice: `"auto"`, `"none"`, `"required"`, or a tool's name.
            **kwargs: Per-call fusion settings.
        """
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            prepared["tools"] = to_openai_tools(tools)
            choice = normalise_tool_choice(tool_choice, prepared["tools"], tool_required)
            if choice is not None:
                prepared["tool_choice"] = choice
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first proposed tool call unless parallel calls are allowed."""
        if not allow_parallel_tool_calls:
            calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
            extra = calls[1:]
            if extra:
                response.message.blocks = [
                    b for b in response.message.blocks if not any(b is e for e in extra)
                ]
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The tool calls of a response; while streaming, from the partial JSON so far.

        Raises:
            ValueError: when there is no tool call and `error_on_no_tool_call` is set.
        """
        calls = tool_calls_of(response.message)
        if not calls and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return [
            ToolSelection(tool_id=c.get("id") or "", tool_name=c["name"], tool_kwargs=c["args"])
            for c in calls
        ]
