"""`FakeChatModel`: a scripted chat model with latency, failures, tool calls and usage."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from langchain_fusion._core.verdict import json_objects
from langchain_fusion.testing._tools import choose_tool, last_human_text, tool_args, tool_call


class FakeMemberError(RuntimeError):
    """The error a `FakeChatModel` raises when told to fail."""


def _words(text: str) -> int:
    return len(text.split())


def joined_text(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(m.text for m in messages)


class FakeChatModel(BaseChatModel):
    """A scripted chat model for tests: deterministic answers, latency, failures and usage.

    Usage is counted in words: input tokens are the words of all input messages, output
    tokens the words of the answer, so tests can assert exact sums.
    """

    model: str = "fake-model"
    """Model identifier (becomes the member's name in a pool)."""

    responses: list[str] = Field(default_factory=lambda: ["fake answer"])
    """Answers given in turn, cycling."""

    respond: Callable[[list[BaseMessage]], str | AIMessage] | None = Field(
        default=None, exclude=True
    )
    """Computes the answer from the input messages; overrides `responses`."""

    latency: float = 0.0
    """Seconds each call takes (async calls sleep cancellably)."""

    error: str | None = None
    """When set, every call raises `FakeMemberError(error)` after `latency`."""

    fail_after_chunks: int | None = None
    """When set, streaming raises `FakeMemberError` after this many chunks."""

    finish_reason: str = "stop"
    """The `finish_reason` reported in `response_metadata` (`"error"` marks a failure)."""

    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """Tool calls proposed with every answer: `{"name": ..., "args": {...}}`."""

    cost_per_token: float | None = None
    """When set, the call's cost (`token_usage.cost`, as OpenRouter reports it)."""

    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _inputs: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _cancelled: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "responses": self.responses}

    @property
    def calls(self) -> int:
        """How many calls started."""
        return self._calls

    @property
    def cancelled(self) -> int:
        """How many async calls were cancelled while running."""
        return self._cancelled

    @property
    def inputs(self) -> list[list[BaseMessage]]:
        """The input messages of every call, in call order."""
        return self._inputs

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; when a tool is forced and the answer is JSON, it becomes that call."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # -- answering --------------------------------------------------------------------------

    def _start(self, messages: list[BaseMessage]) -> int:
        with self._lock:
            self._calls += 1
            self._inputs.append(list(messages))
            return self._calls - 1

    def _produce(self, messages: list[BaseMessage], index: int) -> str | AIMessage:
        if self.respond is not None:
            return self.respond(messages)
        return self.responses[index % len(self.responses)]

    def _answer(
        self,
        messages: list[BaseMessage],
        index: int,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        if self.error is not None:
            raise FakeMemberError(self.error)
        produced = self._produce(messages, index)
        if stop and isinstance(produced, str):
            cut = min((produced.find(s) for s in stop if s in produced), default=-1)
            produced = produced if cut < 0 else produced[:cut]
        message = produced if isinstance(produced, AIMessage) else AIMessage(content=produced)
        tool_calls = list(message.tool_calls) or [
            {
                "name": c["name"],
                "args": c.get("args", {}),
                "id": c.get("id", f"call_{index}_{i}"),
                "type": "tool_call",
            }
            for i, c in enumerate(self.tool_calls)
        ]
        if not tool_calls and kwargs.get("tools"):
            tool_calls = self._propose_calls(
                messages, message.text, kwargs["tools"], kwargs.get("tool_choice"), index
            )
            if tool_calls:
                message = AIMessage(content="")
        text = message.text
        usage: UsageMetadata = {
            "input_tokens": _words(joined_text(messages)),
            "output_tokens": _words(text) + sum(_words(json.dumps(c["args"])) for c in tool_calls),
            "total_tokens": 0,
        }
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        metadata: dict[str, Any] = {"finish_reason": self.finish_reason, "model_name": self.model}
        if self.cost_per_token is not None:
            metadata["token_usage"] = {"cost": usage["total_tokens"] * self.cost_per_token}
        return AIMessage(
            content=text, tool_calls=tool_calls, usage_metadata=usage, response_metadata=metadata
        )

    def _propose_calls(
        self,
        messages: list[BaseMessage],
        text: str,
        tools: list[dict[str, Any]],
        tool_choice: Any,
        index: int,
    ) -> list[ToolCall]:
        """Tool calls for an answer when tools are bound, like an eager tool-using model.

        It calls the forced tool, else the tool the last user message names, else the first
        one, on every user turn (not after a tool result, unless a call is forced). The
        arguments are the JSON object in the scripted answer, if any, else read from the
        user's message (`name(3)` arguments, quoted strings, numbers) by the tool's schema.
        """
        tool = choose_tool(tools, tool_choice, messages)
        if tool is None:
            return []
        objects = json_objects(text)
        args = objects[-1] if objects else tool_args(tool, last_human_text(messages))
        return [tool_call(tool["function"]["name"], args, f"call_{index}")]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        index = self._start(messages)
        if self.latency:
            time.sleep(self.latency)
        return ChatResult(
            generations=[ChatGeneration(message=self._answer(messages, index, stop=stop, **kwargs))]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        index = self._start(messages)
        await self._asleep(self.latency)
        return ChatResult(
            generations=[ChatGeneration(message=self._answer(messages, index, stop=stop, **kwargs))]
        )

    async def _asleep(self, seconds: float) -> None:
        if not seconds:
            return
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            with self._lock:
                self._cancelled += 1
            raise

    def _chunks(self, message: AIMessage) -> list[AIMessageChunk]:
        words = message.text.split(" ") if message.text else []
        chunks = [AIMessageChunk(content=w if i == 0 else " " + w) for i, w in enumerate(words)]
        for i, call in enumerate(message.tool_calls):
            chunks.append(
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        tool_call_chunk(
                            name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i
                        )
                    ],
                )
            )
        chunks.append(
            AIMessageChunk(
                content="",
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        index = self._start(messages)
        if self.latency:
            time.sleep(self.latency)
        for n, chunk in enumerate(self._chunks(self._answer(messages, index, stop=stop, **kwargs))):
            if self.fail_after_chunks is not None and n >= self.fail_after_chunks:
                raise FakeMemberError("stream broken")
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        index = self._start(messages)
        await self._asleep(self.latency)
        for n, chunk in enumerate(self._chunks(self._answer(messages, index, stop=stop, **kwargs))):
            if self.fail_after_chunks is not None and n >= self.fail_after_chunks:
                raise FakeMemberError("stream broken")
            await asyncio.sleep(0)
            yield ChatGenerationChunk(message=chunk)
