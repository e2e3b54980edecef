"""Message and chunk conversion, in one place: used by the drivers, hedges and both adapters.

A LangChain stream yields `AIMessageChunk`s; a model that does not stream yields its whole
answer as one `AIMessage`. The runtime adds chunks up, re-emits the judge's chunks cleaned
of usage and metadata, and ends a fusion's stream with one last chunk that carries the
totals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk


def dumps_args(args: Mapping[str, Any]) -> str:
    """Tool call arguments as the JSON text a streamed tool call carries."""
    return json.dumps(dict(args), ensure_ascii=False)


def tool_call_chunks(message: AIMessage) -> list[ToolCallChunk]:
    """A message's tool calls as the chunks that stream them, one per call."""
    return [
        tool_call_chunk(name=call["name"], args=dumps_args(call["args"]), id=call["id"], index=i)
        for i, call in enumerate(message.tool_calls)
    ]


def as_chunk(item: Any) -> AIMessageChunk | None:
    """One item of a LangChain `stream()` as a chunk; None for anything else.

    A model that does not stream (`streaming=False`, `disable_streaming`, no `_stream`)
    yields its whole answer as one `AIMessage`: it is the stream's only chunk.
    """
    if isinstance(item, AIMessageChunk):
        return item
    if not isinstance(item, AIMessage):
        return None
    fields = item.model_dump(exclude={"type", "tool_calls", "invalid_tool_calls"})
    return AIMessageChunk(**fields, tool_call_chunks=tool_call_chunks(item))


def answer_chunk(message: AIMessage) -> AIMessageChunk:
    """A whole answer as one chunk of a fusion's stream: its content and tool calls only."""
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        tool_call_chunks=tool_call_chunks(message),
    )


def last_chunk(
    usage: UsageMetadata | None,
    response_metadata: dict[str, Any],
    message: AIMessage | None = None,
) -> AIMessageChunk:
    """A stream's last chunk: the usage and metadata (and `message`'s tool calls, if given)."""
    return AIMessageChunk(
        content="",
        tool_call_chunks=[] if message is None else tool_call_chunks(message),
        usage_metadata=usage,
        response_metadata=response_metadata,
        chunk_position="last",
    )


def clean_chunk(chunk: Any) -> AIMessageChunk | None:
    """A streamed judge chunk as the fusion re-emits it: content and tool-call chunks only.

    Usage and metadata are dropped here, since the fusion's single final chunk carries the
    totals.
    """
    if not isinstance(chunk, AIMessageChunk):
        return None
    if not chunk.content and not chunk.tool_call_chunks:
        return None
    return AIMessageChunk(content=chunk.content, tool_call_chunks=chunk.tool_call_chunks)


def merge_chunks(chunks: list[AIMessageChunk]) -> AIMessageChunk | None:
    """All chunks of one stream added up, or None if there were none."""
    if not chunks:
        return None
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def as_ai_message(value: Any) -> AIMessage:
    """Coerce a model's return value to an `AIMessage` (chunks become messages)."""
    if isinstance(value, AIMessageChunk):
        return AIMessage(
            content=value.content,
            additional_kwargs=value.additional_kwargs,
            response_metadata=value.response_metadata,
            tool_calls=value.tool_calls,
            invalid_tool_calls=value.invalid_tool_calls,
            usage_metadata=value.usage_metadata,
            id=value.id,
        )
    if isinstance(value, AIMessage):
        return value
    if isinstance(value, BaseMessage):
        return AIMessage(content=value.content, id=value.id)
    return AIMessage(content=str(value))
