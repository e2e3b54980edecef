"""In-process LlamaIndex fakes: a scripted FunctionCallingLLM, a judge, an embedding.

`FakeLLM` is written in LlamaIndex's own terms (ChatMessage blocks, ToolCallBlock, raw
usage), independently of llamaindex_fusion's converters, and records what it received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import HumanMessage
from llama_index.core.base.embeddings.base import BaseEmbedding
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
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import Field, PrivateAttr

from langchain_fusion.testing import FakeJudge


def words(text: str) -> int:
    return len(text.split())


def message_text(message: ChatMessage) -> str:
    return "\n".join(b.text for b in message.blocks if isinstance(b, TextBlock))


class FakeLLM(FunctionCallingLLM):
    """A scripted LlamaIndex LLM: answers, latency, failure, tool calls, word-count usage.

    Usage: prompt tokens are the words of every input message's text, completion tokens the
    words of the answer and of its tool calls' JSON; `raw["usage"]` carries them (and
    `cost` when `cost_per_token` is set), as OpenAI-style providers do.
    """

    model: str = "li-fake"
    responses: list[str] = Field(default_factory=lambda: ["fake answer"])
    respond: Callable[[list[ChatMessage]], str] | None = Field(default=None, exclude=True)
    latency: float = 0.0
    error: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    function_calling: bool = True
    context_window: int = 8000
    num_output: int = 512
    cost_per_token: float | None = None
    propose: (
        Callable[[list[ChatMessage], list[dict[str, Any]], Any], list[ToolCallBlock]] | None
    ) = Field(default=None, exclude=True)

    _inputs: list[list[ChatMessage]] = PrivateAttr(default_factory=list)
    _kwargs: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _usages: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "FakeLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.num_output,
            is_chat_model=True,
            is_function_calling_model=self.function_calling,
            model_name=self.model,
        )

    @property
    def inputs(self) -> list[list[ChatMessage]]:
        return self._inputs

    @property
    def calls(self) -> int:
        return len(self._inputs)

    @property
    def usages(self) -> list[dict[str, Any]]:
        return self._usages

    # -- answering --------------------------------------------------------------------------

    def _answer(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatMessage:
        self._inputs.append(list(messages))
        self._kwargs.append(dict(kwargs))
        if self.error is not None:
            raise RuntimeError(self.error)
        if self.respond is not None:
            text = self.respond(list(messages))
        else:
            text = self.responses[(len(self._inputs) - 1) % len(self.responses)]
        blocks: list[Any] = []
        tools = kwargs.get("tools") or []
        calls: list[ToolCallBlock] = []
        if tools:
            if self.propose is not None:
                calls = self.propose(list(messages), tools, kwargs.get("tool_choice"))
            elif messages and messages[-1].role == MessageRole.USER:
                names = {t["function"]["name"] for t in tools}
                calls = [
                    ToolCallBlock(
                        tool_call_id=f"{self.model}-call-{len(self._inputs)}-{i}",
                        tool_name=c["name"],
                        tool_kwargs=dict(c.get("args", {})),
                    )
                    for i, c in enumerate(self.tool_calls)
                    if c["name"] in names
                ]
        if calls:
            text = ""
        blocks.append(TextBlock(text=text))
        blocks.extend(calls)
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)

    def _usage(self, messages: Sequence[ChatMessage], answer: ChatMessage) -> dict[str, Any]:
        prompt = sum(words(message_text(m)) for m in messages)
        completion = words(message_text(answer)) + sum(
            words(json.dumps(b.tool_kwargs)) for b in answer.blocks if isinstance(b, ToolCallBlock)
        )
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.cost_per_token is not None:
            usage["cost"] = (prompt + completion) * self.cost_per_token
        self._usages.append(usage)
        return usage

    def _response(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        answer = self._answer(messages, kwargs)
        return ChatResponse(message=answer, raw={"usage": self._usage(messages, answer)})

    def _chunks(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> list[ChatResponse]:
        answer = self._answer(messages, kwargs)
        text = message_text(answer)
        calls = [b for b in answer.blocks if isinstance(b, ToolCallBlock)]
        parts = text.split(" ") if text else []
        out = []
        so_far = ""
        for i, part in enumerate(parts):
            delta = part if i == 0 else " " + part
            so_far += delta
            out.append(
                ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=so_far), delta=delta
                )
            )
        out.append(
            ChatResponse(
                message=ChatMessage(
                    role=MessageRole.ASSISTANT, blocks=[TextBlock(text=so_far), *calls]
                ),
                delta="",
                raw={"usage": self._usage(messages, answer)},
            )
        )
        return out

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self.latency:
            time.sleep(self.latency)
        return self._response(messages, kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._response(messages, kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            if self.latency:
                time.sleep(self.latency)
            yield from self._chunks(messages, kwargs)

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        async def gen() -> ChatResponseAsyncGen:
            if self.latency:
                await asyncio.sleep(self.latency)
            for chunk in self._chunks(messages, kwargs):
                await asyncio.sleep(0)
                yield chunk

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        r = self._response([ChatMessage(role=MessageRole.USER, content=prompt)], kwargs)
        return CompletionResponse(text=r.message.content or "", raw=r.raw)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self.complete(prompt, formatted, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        raise NotImplementedError

    # -- tools ------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": [t.metadata.to_openai_tool() for t in tools],
            "tool_choice": "required" if tool_required else kwargs.get("tool_choice", "auto"),
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError("no tool call")
        return [
            ToolSelection(
                tool_id=c.tool_call_id or "",
                tool_name=c.tool_name,
                tool_kwargs=c.tool_kwargs if isinstance(c.tool_kwargs, dict) else {},
            )
            for c in calls
        ]


def all_text(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(message_text(m) for m in messages)


def judge_respond(judge: FakeJudge | None = None) -> Callable[[list[ChatMessage]], str]:
    """A `respond` that judges like `langchain_fusion.testing.FakeJudge`, from the text."""
    judge = judge or FakeJudge()

    def respond(messages: list[ChatMessage]) -> str:
        answer = judge._produce([HumanMessage(content=all_text(messages))], 0)
        return answer if isinstance(answer, str) else answer.text

    return respond


def judge_propose(
    judge: FakeJudge | None = None,
) -> Callable[[list[ChatMessage], list[dict[str, Any]], Any], list[ToolCallBlock]]:
    """A `propose` that fuses the candidates' proposed tool calls like `FakeJudge`."""
    judge = judge or FakeJudge()

    def propose(messages: list[ChatMessage], tools: list[dict[str, Any]], choice: Any):
        lc = [HumanMessage(content=all_text(messages))]
        text = judge_respond(judge)(messages)
        choice = None if choice in ("auto", None) else choice
        calls = judge._propose_calls(lc, text, tools, choice, 0)
        return [
            ToolCallBlock(tool_call_id=c["id"], tool_name=c["name"], tool_kwargs=c["args"])
            for c in calls
        ]

    return propose


def fake_judge_llm(**kwargs: Any) -> FakeLLM:
    """A LlamaIndex judge that reads the fenced candidates (rule: first label)."""
    judge = FakeJudge(**{k: kwargs.pop(k) for k in ("prefer", "rule") if k in kwargs})
    kwargs.setdefault("model", "li-judge")
    return FakeLLM(respond=judge_respond(judge), propose=judge_propose(judge), **kwargs)


class HashEmbedding(BaseEmbedding):
    """A deterministic bag-of-words embedding (hashed words), for retrieval without downloads."""

    dim: int = 64

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if len(word) < 3:
                continue
            slot = int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim
            vector[slot] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)
