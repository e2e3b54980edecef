"""Message conversion between LlamaIndex and LangChain, both ways.

Text, images (`ImageBlock`), audio and documents, tool calls (`ToolCallBlock`, or the
legacy `additional_kwargs["tool_calls"]`) and tool results. Written here because
`llama-index-llms-langchain` does not work with LangChain 1.x.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.utils.json import parse_partial_json
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatResponse,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.base.llms.types import ChatMessage as LIMessage

from langchain_fusion._exceptions import FusionInputError

_AI_ROLES = (MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL)
_SYSTEM_ROLES = (MessageRole.SYSTEM, MessageRole.DEVELOPER)


# -- LlamaIndex -> LangChain ----------------------------------------------------------------


def _data_block(kind: str, mime: str | None, url: Any, data: Any, path: Any) -> dict[str, Any]:
    """A LangChain standard data block (`image`, `audio`, `file`) from a LlamaIndex block."""
    if url is not None:
        block: dict[str, Any] = {"type": kind, "url": str(url)}
    else:
        if isinstance(data, bytes):
            raw = data
        elif data is not None:  # a file-like object
            data.seek(0)
            raw = data.read()
        elif path is not None:
            with open(path, "rb") as handle:
                raw = handle.read()
        else:
            raise FusionInputError(f"a {kind} block has no url, data or path")
        try:  # LlamaIndex keeps block data base64-encoded; raw bytes are encoded here
            base64.b64decode(raw, validate=True)
            encoded = raw.decode("ascii")
        except (ValueError, UnicodeDecodeError):
            encoded = base64.b64encode(raw).decode("ascii")
        block = {"type": kind, "base64": encoded}
    if mime:
        block["mime_type"] = mime
    return block


def _content_of(message: LIMessage) -> str | list[str | dict[str, Any]]:
    """A LlamaIndex message's blocks as LangChain content: a string when it is only text."""
    parts: list[str | dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(
                _data_block("image", block.image_mimetype, block.url, block.image, block.path)
            )
        elif isinstance(block, AudioBlock):
            mime = f"audio/{block.format}" if block.format else None
            parts.append(_data_block("audio", mime, block.url, block.audio, block.path))
        elif isinstance(block, DocumentBlock):
            parts.append(
                _data_block("file", block.document_mimetype, block.url, block.data, block.path)
            )
        # tool calls are read separately; thinking, citations and cache points are not
        # part of what the next model should read
    if all(isinstance(p, dict) and p["type"] == "text" for p in parts):
        return "\n".join(str(p["text"]) for p in parts if isinstance(p, dict))
    return parts


def _args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = parse_partial_json(raw)
        except (ValueError, TypeError):
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _legacy_tool_calls(message: LIMessage) -> list[ToolCall]:
    """Tool calls kept in `additional_kwargs["tool_calls"]` (OpenAI objects or dicts)."""
    calls: list[ToolCall] = []
    for item in message.additional_kwargs.get("tool_calls") or []:
        data = item.model_dump() if hasattr(item, "model_dump") else item
        if not isinstance(data, Mapping):
            continue
        function = data.get("function") or {}
        name = function.get("name") or data.get("name")
        if not name:
            continue
        calls.append(
            ToolCall(
                name=name,
                args=_args(function.get("arguments", data.get("args"))),
                id=data.get("id") or None,
                type="tool_call",
            )
        )
    return calls


def tool_calls_of(message: LIMessage) -> list[ToolCall]:
    """The tool calls of a LlamaIndex message, as LangChain tool calls."""
    blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if not blocks:
        return _legacy_tool_calls(message)
    return [
        ToolCall(name=b.tool_name, args=_args(b.tool_kwargs), id=b.tool_call_id, type="tool_call")
        for b in blocks
    ]


def to_langchain_message(message: LIMessage) -> BaseMessage:
    """One LlamaIndex chat message as a LangChain message."""
    role = MessageRole(message.role)
    content = _content_of(message)
    if role in _SYSTEM_ROLES:
        return SystemMessage(content=content)
    if role in _AI_ROLES:
        return AIMessage(content=content, tool_calls=tool_calls_of(message))
    if role == MessageRole.TOOL:
        return ToolMessage(
            content=content,
            tool_call_id=str(message.additional_kwargs.get("tool_call_id") or ""),
            name=message.additional_kwargs.get("name"),
        )
    if role == MessageRole.FUNCTION:
        name = message.additional_kwargs.get("name")
        call_id = message.additional_kwargs.get("tool_call_id")
        if call_id:
            return ToolMessage(content=content, tool_call_id=str(call_id), name=name)
        return FunctionMessage(content=content, name=str(name or "function"))
    return HumanMessage(content=content)


def to_langchain_messages(messages: Sequence[LIMessage]) -> list[BaseMessage]:
    """LlamaIndex chat messages as LangChain messages, in order."""
    return [to_langchain_message(m) for m in messages]


# -- LangChain -> LlamaIndex ----------------------------------------------------------------


def _data_url(url: str) -> tuple[str | None, bytes | None]:
    """`(mime type, base64 data)` of a `data:` URL, or `(None, None)`."""
    if not url.startswith("data:") or "," not in url:
        return None, None
    header, _, data = url.partition(",")
    mime = header[5:].split(";")[0] or None
    if ";base64" not in header:
        return mime, base64.b64encode(data.encode())
    return mime, data.encode()


def _image_block(part: Mapping[str, Any]) -> ImageBlock:
    if part.get("type") == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, Mapping) else spec
        detail = spec.get("detail") if isinstance(spec, Mapping) else None
        mime, data = _data_url(str(url))
        if data is not None:
            return ImageBlock(image=data, image_mimetype=mime, detail=detail)
        return ImageBlock(url=str(url), detail=detail)
    data = part.get("base64") or (part.get("data") if part.get("source_type") == "base64" else None)
    mime = part.get("mime_type")
    if data:
        return ImageBlock(image=str(data).encode("ascii"), image_mimetype=mime)
    url = part.get("url") or (part.get("data") if part.get("source_type") == "url" else None)
    if url:
        mime_in_url, inline = _data_url(str(url))
        if inline is not None:
            return ImageBlock(image=inline, image_mimetype=mime or mime_in_url)
        return ImageBlock(url=str(url), image_mimetype=mime)
    raise FusionInputError("an image content block has neither `url` nor `base64` data")


def _other_block(part: Mapping[str, Any]) -> AudioBlock | DocumentBlock | None:
    kind = part.get("type")
    data = part.get("base64") or (part.get("data") if part.get("source_type") == "base64" else None)
    url = part.get("url")
    mime = part.get("mime_type")
    if kind == "audio" and (data or url):
        fmt = mime.split("/", 1)[1] if isinstance(mime, str) and "/" in mime else None
        if data:
            return AudioBlock(audio=str(data).encode("ascii"), format=fmt)
        return AudioBlock(url=str(url), format=fmt)
    if kind == "file" and (data or url):
        if data:
            return DocumentBlock(data=str(data).encode("ascii"), document_mimetype=mime)
        return DocumentBlock(url=str(url), document_mimetype=mime)
    return None


def _blocks_of(content: str | list[str | dict[str, Any]]) -> list[Any]:
    if isinstance(content, str):
        return [TextBlock(text=content)]
    blocks: list[Any] = []
    for part in content:
        if isinstance(part, str):
            blocks.append(TextBlock(text=part))
        elif part.get("type") == "text":
            blocks.append(TextBlock(text=str(part.get("text", ""))))
        elif part.get("type") in ("image", "image_url"):
            blocks.append(_image_block(part))
        else:
            other = _other_block(part)
            if other is not None:
                blocks.append(other)
            # reasoning, tool-call and provider-specific parts carry nothing to re-send
    return blocks


def tool_call_block(call: Mapping[str, Any]) -> ToolCallBlock:
    """A LangChain tool call as a LlamaIndex `ToolCallBlock`."""
    return ToolCallBlock(
        tool_call_id=call.get("id"), tool_name=call["name"], tool_kwargs=dict(call["args"])
    )


def to_llamaindex_message(message: BaseMessage) -> LIMessage:
    """One LangChain message as a LlamaIndex chat message."""
    blocks = _blocks_of(message.content)
    kwargs: dict[str, Any] = {}
    if isinstance(message, SystemMessage):
        role = MessageRole.SYSTEM
    elif isinstance(message, AIMessage):
        role = MessageRole.ASSISTANT
        blocks.extend(tool_call_block(call) for call in message.tool_calls)
    elif isinstance(message, ToolMessage):
        role = MessageRole.TOOL
        kwargs["tool_call_id"] = message.tool_call_id
        if message.name:
            kwargs["name"] = message.name
    elif isinstance(message, FunctionMessage):
        role = MessageRole.FUNCTION
        kwargs["name"] = message.name
    elif isinstance(message, ChatMessage) and message.role in {r.value for r in MessageRole}:
        role = MessageRole(message.role)
    else:
        role = MessageRole.USER
    return LIMessage(role=role, blocks=blocks, additional_kwargs=kwargs)


def to_llamaindex_messages(messages: Sequence[BaseMessage]) -> list[LIMessage]:
    """LangChain messages as LlamaIndex chat messages, in order."""
    return [to_llamaindex_message(m) for m in messages]


def streamed_message(chunk: AIMessageChunk) -> LIMessage:
    """The message streamed so far, as LlamaIndex shows it while streaming.

    Tool calls keep their arguments as the partial JSON text received so far, as LlamaIndex
    streaming LLMs do; `get_tool_calls_from_response` parses it.
    """
    blocks: list[Any] = [TextBlock(text=chunk.text)]
    for part in chunk.tool_call_chunks:
        blocks.append(
            ToolCallBlock(
                tool_call_id=part.get("id"),
                tool_name=part.get("name") or "",
                tool_kwargs=part.get("args") or "",
            )
        )
    return LIMessage(role=MessageRole.ASSISTANT, blocks=blocks)


# -- responses and usage --------------------------------------------------------------------

_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt_token_count")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "candidates_token_count")


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump()
        return dumped if isinstance(dumped, dict) else None
    return None


def _raw_field(raw: Any, name: str) -> Any:
    if isinstance(raw, Mapping):
        return raw.get(name)
    return getattr(raw, name, None)


def raw_usage(response: ChatResponse) -> dict[str, Any] | None:
    """The provider's usage record of a response.

    `raw.usage`, else the token counts in `additional_kwargs`, as LlamaIndex's token
    counter reads them.
    """
    for name in ("usage", "usage_metadata"):
        usage = _as_dict(_raw_field(response.raw, name))
        if usage:
            return usage
    counts = {
        k: v for k, v in response.additional_kwargs.items() if k in _INPUT_KEYS + _OUTPUT_KEYS
    }
    return counts or None


def _number(usage: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def usage_metadata(usage: Mapping[str, Any] | None) -> UsageMetadata | None:
    """A provider usage record as LangChain `UsageMetadata` (with cache/reasoning details)."""
    if not usage:
        return None
    inputs = _number(usage, _INPUT_KEYS)
    outputs = _number(usage, _OUTPUT_KEYS)
    if inputs is None and outputs is None:
        return None
    total = _number(usage, ("total_tokens", "total_token_count"))
    result: UsageMetadata = {
        "input_tokens": inputs or 0,
        "output_tokens": outputs or 0,
        "total_tokens": total if total is not None else (inputs or 0) + (outputs or 0),
    }
    prompt_details = _as_dict(usage.get("prompt_tokens_details")) or {}
    cached = _number(prompt_details, ("cached_tokens",))
    if cached:
        result["input_token_details"] = {"cache_read": cached}
    completion_details = _as_dict(usage.get("completion_tokens_details")) or {}
    reasoning = _number(completion_details, ("reasoning_tokens",))
    if reasoning:
        result["output_token_details"] = {"reasoning": reasoning}
    return result


def finish_reason(response: ChatResponse) -> str | None:
    """The `finish_reason` of the raw provider response, when it has one."""
    choices = _raw_field(response.raw, "choices")
    if isinstance(choices, Sequence) and choices:
        reason = _raw_field(choices[0], "finish_reason")
        return str(reason) if reason else None
    return None


def raw_error(response: ChatResponse) -> Any:
    """The error a raw provider response or its first choice carries, if any."""
    error = _raw_field(response.raw, "error")
    if error:
        return error
    choices = _raw_field(response.raw, "choices")
    if isinstance(choices, Sequence) and choices:
        return _raw_field(choices[0], "error")
    return None


def new_call_id() -> str:
    """A tool call id for a call the provider left without one."""
    return f"call_{uuid.uuid4().hex[:24]}"
