"""OpenAI's chat-completions wire format on the server side. No I/O.

Requests in: a body validated into `ChatRequest`, its messages converted to LangChain
messages, its options to the fusion's per-call arguments. Results out: a `chat.completion`
body, or the `chat.completion.chunk`s of an SSE stream; errors in OpenAI's error shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ROLES = ("system", "developer", "user", "assistant", "tool")


#: Parts of a pydantic error location that name a union member or a validator, not a field.
_TAGS = ("str", "int", "float", "bool", "Endpoint", "function-after", "function-before")


def field_path(loc: tuple[int | str, ...]) -> str:
    """A validation error's location as a dotted path, without pydantic's union tags."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _TAGS))]
    return ".".join(parts)


class ApiError(Exception):
    """An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

    Attributes:
        status: The HTTP status.
        message: What went wrong and the fix; never a key.
        type: OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
        param: The request field at fault, if any.
        code: A short machine-readable code.
        headers: Extra response headers (`Retry-After`).
        cause: The label counted in the metrics' errors by cause.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.cause = cause or code or type

    def body(self) -> dict[str, Any]:
        """The response body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def internal_error() -> ApiError:
    """A 500 that shows nothing of the failure (the server's log has it)."""
    return ApiError(500, "internal server error", type="server_error", cause="internal")


class StreamOptions(BaseModel):
    """`stream_options`."""

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of a chat-completions request the server reads; others are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    fusion: dict[str, Any] | None = None
    """The extension field: per-request fusion settings, within the config's allow-list."""

    @property
    def include_usage(self) -> bool:
        """Whether the stream ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def stops(self) -> list[str] | None:
        """`stop` as a list."""
        return [self.stop] if isinstance(self.stop, str) else self.stop


def parse_request(body: Any, max_messages: int) -> ChatRequest:
    """Validate a request body.

    Raises:
        ApiError: 400, naming the field.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = field_path(tuple(first["loc"]))
        raise ApiError(
            400, f"invalid field {field}: {first['msg']}", param=field, code="invalid_value"
        ) from None
    if len(request.messages) > max_messages:
        raise ApiError(
            400,
            f"messages has {len(request.messages)} entries; this server takes at most "
            f"{max_messages}",
            param="messages",
            code="too_many_messages",
        )
    for i, message in enumerate(request.messages):
        if message.get("role") not in ROLES:
            raise ApiError(
                400,
                f"messages[{i}].role must be one of {', '.join(ROLES)}",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise ApiError(
                400,
                f"messages[{i}] is a tool result without tool_call_id",
                param=f"messages[{i}].tool_call_id",
                code="invalid_value",
            )
    fmt = request.response_format
    if fmt is not None and fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise ApiError(
            400,
            "response_format.type must be text, json_object or json_schema",
            param="response_format.type",
            code="invalid_value",
        )
    if fmt is not None and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ApiError(
                400,
                "response_format.json_schema.schema must be a JSON schema object",
                param="response_format.json_schema",
                code="invalid_value",
            )
    return request


def to_messages(request: ChatRequest) -> list[BaseMessage]:
    """The request's messages as LangChain messages (text, images, tool calls and results).

    Raises:
        ApiError: 400 for a message LangChain cannot read.
    """
    # OpenAI lets an assistant message with tool calls leave `content` out (or null).
    messages = [{**m, "content": m.get("content") or ""} for m in request.messages]
    try:
        return list(convert_to_messages(messages))
    except (ValueError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ApiError(
            400, f"messages could not be read: {first}", param="messages", code="invalid_value"
        ) from None


#: The schema `json_object` answers are asked for (any object).
JSON_OBJECT_SCHEMA: dict[str, Any] = {
    "title": "json_object",
    "description": "The answer, as one JSON object.",
    "type": "object",
    "properties": {},
    "additionalProperties": True,
}


def output_schema(request: ChatRequest) -> dict[str, Any] | None:
    """The JSON schema of a structured-output request (`response_format`), else None."""
    fmt = request.response_format
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return JSON_OBJECT_SCHEMA
    spec = fmt["json_schema"]
    schema = dict(spec["schema"])
    schema.setdefault("title", spec.get("name") or "response")
    if spec.get("description"):
        schema.setdefault("description", spec["description"])
    return schema


# -- responses --------------------------------------------------------------------------------


def usage_body(message: AIMessage | AIMessageChunk, report: dict[str, Any]) -> dict[str, Any]:
    """The fusion's total usage in OpenAI's shape, with `cost` as OpenRouter reports it."""
    usage = message.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    body: dict[str, Any] = {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "total_tokens": usage["total_tokens"],
    }
    if report.get("cost_usd") is not None:
        body["cost"] = report["cost_usd"]
    return body


def tool_calls_body(message: AIMessage) -> list[dict[str, Any]]:
    """An answer's tool calls in OpenAI's shape."""
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
        }
        for call in message.tool_calls
    ]


def completion_body(
    completion_id: str, model: str, message: AIMessage, content: str | None = None
) -> dict[str, Any]:
    """A `chat.completion` body; `content` replaces the message's text (structured output)."""
    report = message.response_metadata["fusion"]
    calls = tool_calls_body(message)
    text = message.text if content is None else content
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_body(message, report),
        "fusion": report,
    }


class ChunkWriter:
    """Turns the fusion's stream into `chat.completion.chunk` SSE events."""

    def __init__(self, completion_id: str, model: str, include_usage: bool) -> None:
        self.completion_id = completion_id
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self.started = False
        self.tool_calls = False
        #: The content sent, piece by piece (the answer kept with the report).
        self.texts: list[str] = []

    def _event(self, choices: Sequence[dict[str, Any]], **extra: Any) -> bytes:
        body = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": list(choices),
            **extra,
        }
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if not self.started:
            delta = {"role": "assistant", **delta}
            self.started = True
        return self._event([{"index": 0, "delta": delta, "finish_reason": finish}])

    def chunk(self, chunk: AIMessageChunk) -> bytes | None:
        """The event of one content or tool-call chunk, None for an empty one."""
        delta: dict[str, Any] = {}
        if chunk.text:
            delta["content"] = chunk.text
            self.texts.append(chunk.text)
        if chunk.tool_call_chunks:
            self.tool_calls = True
            delta["tool_calls"] = [
                {
                    "index": c.get("index") or 0,
                    **({"id": c["id"]} if c.get("id") else {}),
                    "type": "function",
                    "function": {
                        **({"name": c["name"]} if c.get("name") else {}),
                        "arguments": c.get("args") or "",
                    },
                }
                for c in chunk.tool_call_chunks
            ]
        return self._delta(delta) if delta else None

    def text(self, content: str) -> bytes:
        """One event with the whole content (structured output is sent at once)."""
        return self._delta({"content": content})

    def final(self, last: AIMessageChunk | AIMessage, report: dict[str, Any]) -> list[bytes]:
        """The closing events: the finish reason, the usage (if asked), `[DONE]`.

        The report rides on the last event before `[DONE]`.
        """
        finish = "tool_calls" if self.tool_calls else "stop"
        if not self.include_usage:
            return [self._finish(finish, fusion=report), b"data: [DONE]\n\n"]
        usage = usage_body(last, report)
        return [
            self._finish(finish),
            self._event([], usage=usage, fusion=report),
            b"data: [DONE]\n\n",
        ]

    def _finish(self, finish: str, **extra: Any) -> bytes:
        delta: dict[str, Any] = {} if self.started else {"role": "assistant", "content": ""}
        self.started = True
        return self._event([{"index": 0, "delta": delta, "finish_reason": finish}], **extra)


def error_event(error: ApiError) -> bytes:
    """An error sent inside a stream that already started (its status cannot change)."""
    return b"data: " + json.dumps(error.body()).encode() + b"\n\n"
