"""LlamaIndex LLMs as LangChain chat models, so that the runtime can call them as members.

The runtime works on LangChain messages and runnables; a LlamaIndex LLM in a fusion's pool
(or as its judge) is wrapped in a small private adapter that converts messages both ways,
passes tools to a `FunctionCallingLLM`'s `chat_with_tools` (and its async and streaming
variants), and reports usage as `usage_metadata` and the provider's cost, if any, in
`response_metadata["token_usage"]["cost"]`. LangChain chat models are used as they are.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool as LangChainTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler as LIHandler
from llama_index.core.llms.function_calling import FunctionCallingLLM
from pydantic import ConfigDict, Field

from langchain_fusion._runtime.cancel import cancel_and_wait
from langchain_fusion._runtime.chunks import last_chunk
from langchain_fusion._runtime.members import unwrap_chat_model
from langchain_fusion._runtime.tool_choice import tool_name
from llamaindex_fusion._messages import (
    finish_reason,
    new_call_id,
    raw_error,
    raw_usage,
    to_llamaindex_messages,
    tool_calls_of,
    usage_metadata,
)
from llamaindex_fusion._tools import to_llamaindex_tools

ACCEPTED = (
    "a LlamaIndex LLM (OpenAILike, OpenRouter, any llama_index LLM) or a LangChain chat model "
    "(BaseChatModel, optionally wrapped with .bind(...), .with_retry(...), "
    ".with_fallbacks([...]) or .with_config(...))"
)

#: The legacy callback handlers that see the fusion's own call (its token counter...):
#: members that share them are called without them, so no token is counted twice.
FUSION_HANDLERS: contextvars.ContextVar[tuple[LIHandler, ...]] = contextvars.ContextVar(
    "llamaindex_fusion_handlers", default=()
)


def li_model_id(llm: BaseLLM) -> str:
    """A LlamaIndex LLM's model identifier: its metadata's `model_name`, else its `model`."""
    try:
        name = llm.metadata.model_name
    except Exception:
        name = None
    if isinstance(name, str) and name and name != "unknown":
        return name
    for attr in ("model", "model_name"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(llm).__name__


def can_call_tools(llm: BaseLLM) -> bool:
    """Whether a LlamaIndex LLM takes tools (a `FunctionCallingLLM` that says it calls them)."""
    if not isinstance(llm, FunctionCallingLLM):
        return False
    try:
        return bool(llm.metadata.is_function_calling_model)
    except Exception:
        return False


def _cut(text: str, stop: list[str] | None) -> str:
    if not stop:
        return text
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


class LlamaIndexChatModel(BaseChatModel):
    """A LlamaIndex LLM seen as a LangChain chat model (text, images; no tools)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: BaseLLM = Field(exclude=True, repr=False)
    """The wrapped LlamaIndex LLM, called as given."""

    model_name: str
    """The LLM's model identifier (names the member and groups its usage)."""

    cache: bool | None = False
    """Never cached by LangChain: its cache key could not tell two LLMs' settings apart."""

    @property
    def _llm_type(self) -> str:
        return f"llamaindex:{type(self.llm).__name__}"

    def _resolve_model_profile(self) -> ModelProfile | None:
        """What the LLM's metadata says: its limits and whether it calls tools."""
        try:
            meta = self.llm.metadata
        except Exception:
            return None
        profile: dict[str, Any] = {
            "text_inputs": True,
            "text_outputs": True,
            "tool_calling": can_call_tools(self.llm),
        }
        if meta.context_window > 0:
            profile["max_input_tokens"] = meta.context_window
        if meta.num_output > 0:
            profile["max_output_tokens"] = meta.num_output
        return cast("ModelProfile", profile)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "llm_class": type(self.llm).__name__}

    # -- the call ---------------------------------------------------------------------------

    def _target(self) -> BaseLLM:
        """The LLM to call: without the fusion's own legacy callback handlers, if it shares any.

        A member that reports to the handlers that already see the fusion's call (say a
        `TokenCountingHandler` set on `Settings.callback_manager`) would be counted twice.
        """
        shared = FUSION_HANDLERS.get()
        manager = getattr(self.llm, "callback_manager", None)
        handlers = list(getattr(manager, "handlers", None) or [])
        if not shared or not any(any(h is s for s in shared) for h in handlers):
            return self.llm
        own = [h for h in handlers if not any(h is s for s in shared)]
        return self.llm.model_copy(update={"callback_manager": CallbackManager(own)})

    def _tools(self, kwargs: dict[str, Any]) -> tuple[list[Any], bool]:
        """The bound tools as LlamaIndex tools, and whether a tool call is required."""
        return [], False

    def _call(self, llm: BaseLLM, method: str, messages: list[BaseMessage], kwargs: Any) -> Any:
        """Call `llm.<method>` (`chat`, `achat`, `stream_chat`, `astream_chat`).

        Its `_with_tools` twin when tools are bound; returns what the method returns.
        """
        history = to_llamaindex_messages(messages)
        tools, required = self._tools(kwargs)
        if not tools:
            return getattr(llm, method)(history, **self._options(kwargs))
        assert isinstance(llm, FunctionCallingLLM)
        return getattr(llm, f"{method}_with_tools")(
            tools,
            chat_history=history,
            allow_parallel_tool_calls=True,
            tool_required=required,
            **self._options(kwargs),
        )

    @staticmethod
    def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
        """Call options LlamaIndex LLMs take as keyword arguments (`max_tokens`)."""
        return {"max_tokens": kwargs["max_tokens"]} if kwargs.get("max_tokens") else {}

    def _tool_calls(self, llm: BaseLLM, response: ChatResponse) -> list[ToolCall]:
        return tool_calls_of(response.message)

    def _message(
        self, llm: BaseLLM, responses: Sequence[ChatResponse], stop: list[str] | None = None
    ) -> AIMessage:
        """The answer as a LangChain message, from the last response of a call.

        Usage, cost, finish reason and error are taken from whichever response carries them
        (a stream reports usage in its last chunk).
        """
        last = responses[-1]
        usage = next((u for u in map(raw_usage, reversed(responses)) if u), None)
        reason = next((r for r in map(finish_reason, reversed(responses)) if r), None)
        error = next((e for e in map(raw_error, responses) if e), None)
        tool_calls = [
            ToolCall(name=c["name"], args=c["args"], id=c.get("id") or new_call_id())
            for c in self._tool_calls(llm, last)
        ]
        metadata: dict[str, Any] = {
            "model_name": self.model_name,
            "finish_reason": reason or ("tool_calls" if tool_calls else "stop"),
        }
        if usage:
            metadata["token_usage"] = usage
        if error:
            metadata["error"] = str(error)
        return AIMessage(
            content=_cut(last.message.content or "", stop),
            tool_calls=tool_calls,
            usage_metadata=usage_metadata(usage),
            response_metadata=metadata,
        )

    @staticmethod
    def _final_chunk(message: AIMessage) -> AIMessageChunk:
        return last_chunk(message.usage_metadata, message.response_metadata, message)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llm = self._target()
        response = self._call(llm, "chat", messages, kwargs)
        message = self._message(llm, [response], stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llm = self._target()
        response = await self._call(llm, "achat", messages, kwargs)
        message = self._message(llm, [response], stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llm = self._target()
        stream = self._call(llm, "stream_chat", messages, kwargs)
        responses: list[ChatResponse] = []
        sent = 0
        try:
            for response in stream:
                responses.append(response)
                delta = _delta(response, sent)
                if delta:
                    sent += len(delta)
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager is not None:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk
        finally:
            # A sync LlamaIndex OpenAI stream closed early keeps its HTTP response open until
            # the garbage collector runs (the openai stream sits in a reference cycle that
            # LlamaIndex never closes: run-llama/llama_index#13503); async reads are
            # cancelled instead (see `_astream`).
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if not responses:
            raise RuntimeError(f"{self.model_name}: the stream ended without any output")
        yield ChatGenerationChunk(message=self._final_chunk(self._message(llm, responses)))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        llm = self._target()
        items: asyncio.Queue[ChatResponse | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            stream = await self._call(llm, "astream_chat", messages, kwargs)
            async for response in stream:
                await items.put(response)

        async def pumped() -> None:
            try:
                await pump()
                await items.put(None)
            except Exception as exc:
                await items.put(exc)

        # LlamaIndex's OpenAI streams do not close their HTTP response when closed early
        # (their generators never close the openai stream): reading the stream in a task,
        # cancelled when the reader leaves, lets the cancellation close it inside httpx.
        task = asyncio.create_task(pumped())
        responses: list[ChatResponse] = []
        sent = 0
        try:
            while (item := await items.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                responses.append(item)
                delta = _delta(item, sent)
                if delta:
                    sent += len(delta)
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk
        finally:
            await cancel_and_wait([task])
        if not responses:
            raise RuntimeError(f"{self.model_name}: the stream ended without any output")
        yield ChatGenerationChunk(message=self._final_chunk(self._message(llm, responses)))


def _delta(response: ChatResponse, sent: int) -> str:
    """The new text of a streamed response: its `delta`, else what its content added."""
    if isinstance(response.delta, str):
        return response.delta
    return (response.message.content or "")[sent:]


class LlamaIndexToolChatModel(LlamaIndexChatModel):
    """A LlamaIndex `FunctionCallingLLM` seen as a LangChain chat model that binds tools."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | LangChainTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; they reach the LLM's `chat_with_tools` as LlamaIndex tools.

        Args:
            tools: Tools in any form LangChain accepts.
            tool_choice: `"auto"`, `"none"` (no tools are sent), `"any"`/`"required"`/`True`
                (a tool call is required), or a tool name (only that tool is sent, and a
                call is required).
            **kwargs: Further call arguments (LangChain's `ls_*` hints are ignored).
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _tools(self, kwargs: dict[str, Any]) -> tuple[list[Any], bool]:
        tools = kwargs.get("tools") or []
        choice = kwargs.get("tool_choice")
        if not tools or choice == "none" or choice is False:
            return [], False
        name = tool_name(choice) if choice is not True else None
        if name is not None:
            tools = [t for t in tools if t.get("function", t).get("name") == name] or tools
        required = name is not None or choice in ("any", "required", True)
        return to_llamaindex_tools(tools), required

    def _tool_calls(self, llm: BaseLLM, response: ChatResponse) -> list[ToolCall]:
        if not isinstance(llm, FunctionCallingLLM):
            return tool_calls_of(response.message)
        try:
            selections = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        except NotImplementedError:
            return tool_calls_of(response.message)
        return [
            ToolCall(name=s.tool_name, args=dict(s.tool_kwargs), id=s.tool_id or None)
            for s in selections
        ]


def as_chat_model(value: Any, where: str) -> Any:
    """A pool entry or judge as the runtime takes it.

    LlamaIndex LLMs are wrapped; LangChain chat models (and their wrappers) are taken as
    they are.

    Raises:
        ValueError: naming `where` (e.g. `pool[2]`) and what is accepted.
    """
    if isinstance(value, BaseLLM):
        cls = LlamaIndexToolChatModel if can_call_tools(value) else LlamaIndexChatModel
        return cls(llm=value, model_name=li_model_id(value))
    if isinstance(value, str):
        raise ValueError(f"{where} is the string {value!r}: pass {ACCEPTED}")
    if unwrap_chat_model(value) is None:
        raise ValueError(
            f"{where} is a {type(value).__name__}, which is neither a LlamaIndex LLM nor a "
            f"LangChain chat model: pass {ACCEPTED}"
        )
    return value
