"""Helpers of the LlamaIndex tests: the eight ways of calling `FusionLLM`, instrumentation
recorders, the simulator's scenario, and a fake factory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from li_fakes import FakeLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from pydantic import Field

#: Every LLM method a LlamaIndex caller may use.
METHODS = (
    "chat",
    "achat",
    "stream_chat",
    "astream_chat",
    "complete",
    "acomplete",
    "stream_complete",
    "astream_complete",
)
STREAMING = ("stream_chat", "astream_chat", "stream_complete", "astream_complete")


@dataclass
class Answer:
    """What one call through a method gave: the final text, report and raw, and all parts."""

    text: str
    report: dict[str, Any]
    raw: dict[str, Any]
    last: ChatResponse | CompletionResponse
    parts: list[Any] = field(default_factory=list)

    @property
    def usage(self) -> dict[str, Any]:
        return self.raw["usage"]

    def statuses(self) -> dict[str, str]:
        return {c["name"]: c["status"] for c in self.report["candidates"]}


def _answer(parts: list[Any]) -> Answer:
    last = parts[-1]
    text = last.message.content if isinstance(last, ChatResponse) else last.text
    return Answer(
        text=text or "",
        report=last.additional_kwargs["fusion"],
        raw=last.raw,
        last=last,
        parts=parts,
    )


async def call(llm: Any, method: str, prompt: str | list[ChatMessage], **kwargs: Any) -> Answer:
    """Call `llm` through `method`; sync methods run in a worker thread (no loop there)."""
    messages = [ChatMessage(role="user", content=prompt)] if isinstance(prompt, str) else prompt
    text = prompt if isinstance(prompt, str) else messages[-1].content or ""
    if method == "chat":
        return _answer([await asyncio.to_thread(llm.chat, messages, **kwargs)])
    if method == "achat":
        return _answer([await llm.achat(messages, **kwargs)])
    if method == "stream_chat":
        return _answer(await asyncio.to_thread(lambda: list(llm.stream_chat(messages, **kwargs))))
    if method == "astream_chat":
        return _answer([r async for r in await llm.astream_chat(messages, **kwargs)])
    if method == "complete":
        return _answer([await asyncio.to_thread(llm.complete, text, **kwargs)])
    if method == "acomplete":
        return _answer([await llm.acomplete(text, **kwargs)])
    if method == "stream_complete":
        return _answer(await asyncio.to_thread(lambda: list(llm.stream_complete(text, **kwargs))))
    if method == "astream_complete":
        return _answer([r async for r in await llm.astream_complete(text, **kwargs)])
    raise AssertionError(method)


# -- instrumentation ------------------------------------------------------------------------


class EventRecorder(BaseEventHandler):
    """Keeps every instrumentation event."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@dataclass
class Instrumentation:
    spans: SimpleSpanHandler
    events: EventRecorder

    def finished(self) -> list[Any]:
        return [*self.spans.completed_spans, *self.spans.dropped_spans]


# -- the simulator --------------------------------------------------------------------------

SCENARIO: dict[str, Any] = {
    "name": "llamaindex-tests",
    "seed": 3,
    "keepalive_interval": 0.05,
    "bank": [{"question": "What is 17*23?", "answer": "391", "wrong": ["381", "401"]}],
    "models": [
        {
            "name": "t/plain",
            "template": "The answer is {answer}.",
            "prompt_price": 0.000001,
            "completion_price": 0.000002,
            "image_tokens": 10,
        },
        {"name": "t/wrong", "accuracy": 0.0, "template": "It is {answer}.", "image_tokens": 20},
        {
            "name": "t/other",
            "template": "{answer}, clearly.",
            "prompt_price": 0.000003,
            "completion_price": 0.000001,
            "image_tokens": 30,
        },
        {"name": "t/judge", "judge": {"rule": "oracle", "accuracy": 1.0}, "image_tokens": 5},
        {"name": "t/broken", "faults": [{"kind": "server_error", "status": 500}]},
    ],
}


def fake(model: str, *answers: str, **kwargs: Any) -> FakeLLM:
    """A LlamaIndex fake answering `answers` in turn."""
    return FakeLLM(model=model, responses=list(answers) or ["fake answer"], **kwargs)
