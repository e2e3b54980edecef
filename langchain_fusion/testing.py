"""Fake chat models for testing fusions offline.

Scripted answers, latency, failures, tool calls, usage and cost, and a judge that really
reads the fenced candidates.

```python
from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

fusion = FusionChatModel(
    pool=[FakeChatModel(model="a", responses=["Paris"], latency=0.2),
          FakeChatModel(model="b", error="boom")],
    judge=FakeJudge(),
    mode="best_of",
)
```
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion._core.verdict import json_objects

__all__ = ["FakeChatModel", "FakeJudge", "FakeMemberError"]


class FakeMemberError(RuntimeError):
    """The error a `FakeChatModel` raises when told to fail."""


def _words(text: str) -> int:
    return len(text.split())


def _text(messages: Sequence[BaseMessage]) -> str:
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
            "input_tokens": _words(_text(messages)),
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
        tool = _choose_tool(tools, tool_choice, messages)
        if tool is None:
            return []
        objects = json_objects(text)
        args = objects[-1] if objects else _tool_args(tool, _last_human_text(messages))
        return [_tool_call(tool["function"]["name"], args, f"call_{index}")]

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


def _tool_call(name: str, args: dict[str, Any], call_id: str) -> ToolCall:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _choose_tool(
    tools: list[dict[str, Any]], tool_choice: Any, messages: list[BaseMessage]
) -> dict[str, Any] | None:
    by_name = {t["function"]["name"]: t for t in tools if "function" in t}
    if not by_name or tool_choice in ("none", False):
        return None
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice in by_name:
        return by_name[tool_choice]
    forced = tool_choice not in (None, "auto")
    if not forced and messages and isinstance(messages[-1], ToolMessage):
        return None
    text = _last_human_text(messages)
    mentioned = [name for name in by_name if name in text]
    return by_name[mentioned[0]] if mentioned else next(iter(by_name.values()))


def _last_human_text(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if m.type == "human"), "")


def _tool_args(tool: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for `tool` read from `text`, by the tool's JSON schema."""
    name = tool["function"]["name"]
    params = tool["function"].get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = params.get("required", list(props))
    call = re.search(rf"{re.escape(name)}\(([^)]*)\)", text)
    positional = [p.strip() for p in call.group(1).split(",") if p.strip()] if call else []
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    quoted = [a or b for a, b in re.findall(r"'([^']+)'|\"([^\"]+)\"", text)]
    args: dict[str, Any] = {}
    for position, (key, schema) in enumerate(props.items()):
        if key not in required:
            continue
        kind = schema.get("type") or next(
            (s.get("type") for s in schema.get("anyOf", []) if s.get("type") != "null"), "string"
        )
        raw = positional[position] if position < len(positional) else None
        if kind in ("integer", "number"):
            value = raw if raw is not None else (numbers.pop(0) if numbers else "1")
            number = float(value) if re.fullmatch(r"-?\d+(?:\.\d+)?", value) else 1.0
            args[key] = int(number) if kind == "integer" else number
        elif kind == "boolean":
            args[key] = True
        elif kind == "array":
            args[key] = []
        elif kind == "object":
            args[key] = {}
        elif "enum" in schema:
            args[key] = schema["enum"][0]
        else:
            args[key] = (raw or "").strip("'\"") or (quoted.pop(0) if quoted else text.strip())
    return args


def _is_judging_task(task: str) -> bool:
    return '"winner"' in task or '"consensus"' in task


_PROPOSED = "Proposed tool calls:"
_CALL_LINE = re.compile(r"^- ([\w\-\.]+)\((\{.*\})\)$", re.MULTILINE)


def _split_calls(text: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A candidate's prose and its proposed tool calls, as the judge prompt renders them."""
    prose, _, calls = text.partition(_PROPOSED)
    found = []
    for match in _CALL_LINE.finditer(calls):
        try:
            found.append((match.group(1), json.loads(match.group(2))))
        except json.JSONDecodeError:
            continue
    return prose.strip(), found


def _majority_args(proposals: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    """Each field's most common value among the proposals for `name` (first wins ties)."""
    merged: dict[str, Any] = {}
    calls = [args for n, args in proposals if n == name]
    for key in dict.fromkeys(k for args in calls for k in args):
        values = [json.dumps(args[key], sort_keys=True) for args in calls if key in args]
        merged[key] = json.loads(Counter(values).most_common(1)[0][0])
    return merged


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in text.replace("\n", " ").split(". ")]
    return [p if p.endswith(".") else p + "." for p in parts if p.strip(". ")]


class FakeJudge(FakeChatModel):
    """A fake judge that reads the fenced candidates and answers as the judge prompts ask.

    - verdict (best_of): picks by `rule`: `"first"` (label order), `"longest"`, `"shortest"`,
      or the first candidate containing `prefer`.
    - comparison (merge): sentences all candidates share, and each candidate's own.
    - synthesis (merge, debate): every distinct sentence of the candidates, in label order.

    Without fenced candidates in the prompt it answers like a `FakeChatModel`.
    """

    model: str = "fake-judge"
    """Model identifier."""

    rule: str = "first"
    """How the verdict chooses: `"first"`, `"longest"` or `"shortest"`."""

    prefer: str | None = None
    """Choose the first candidate whose text contains this string (overrides `rule`)."""

    verdict_reply: str | None = None
    """A fixed reply to verdict prompts (to test malformed or injected verdicts)."""

    def _produce(self, messages: list[BaseMessage], index: int) -> str | AIMessage:
        candidates = extract_candidates(_text(messages))
        if self.respond is None and candidates:
            text = _text(messages)
            return self._judge(text[text.rfind("## Task") :], candidates)
        return super()._produce(messages, index)

    def _propose_calls(
        self,
        messages: list[BaseMessage],
        text: str,
        tools: list[dict[str, Any]],
        tool_choice: Any,
        index: int,
    ) -> list[ToolCall]:
        """When writing the answer, fuse the candidates' proposed calls field by field."""
        full = _text(messages)
        task = full[full.rfind("## Task") :]
        candidates = extract_candidates(full)
        if self.respond is None and candidates and not _is_judging_task(task):
            names = {t["function"]["name"] for t in tools if "function" in t}
            proposals = [
                (name, args)
                for label in sorted(candidates)
                for name, args in _split_calls(candidates[label])[1]
                if name in names
            ]
            if proposals:
                chosen = _choose_tool(tools, tool_choice, messages) if tool_choice else None
                forced_name = chosen["function"]["name"] if chosen else None
                counts = Counter(name for name, _ in proposals)
                name: str = (
                    forced_name
                    if forced_name in counts and forced_name is not None
                    else counts.most_common(1)[0][0]
                )
                return [_tool_call(name, _majority_args(proposals, name), f"call_{index}")]
            if tool_choice in (None, "auto"):
                return []
        return super()._propose_calls(messages, text, tools, tool_choice, index)

    def _judge(self, task: str, candidates: dict[str, str]) -> str:
        if '"winner"' in task:
            if self.verdict_reply is not None:
                return self.verdict_reply
            return json.dumps({"winner": self._choose(candidates), "rationale": "fake choice"})
        candidates = {label: _split_calls(text)[0] for label, text in candidates.items()}
        if '"consensus"' in task:
            per = {label: _sentences(text) for label, text in candidates.items()}
            shared = set.intersection(*(set(s) for s in per.values())) if per else set()
            return json.dumps(
                {
                    "consensus": sorted(shared),
                    "contradictions": [],
                    "unique_insights": [
                        f"{label}: {s}" for label, ss in per.items() for s in ss if s not in shared
                    ],
                    "gaps": [],
                }
            )
        seen: list[str] = []
        for label in sorted(candidates):
            for sentence in _sentences(candidates[label]):
                if sentence not in seen:
                    seen.append(sentence)
        return " ".join(seen)

    def _choose(self, candidates: dict[str, str]) -> str:
        labels = sorted(candidates)
        if self.prefer is not None:
            for label in labels:
                if self.prefer in candidates[label]:
                    return label
        if self.rule == "longest":
            return max(labels, key=lambda label: len(candidates[label]))
        if self.rule == "shortest":
            return min(labels, key=lambda label: len(candidates[label]))
        return labels[0]
