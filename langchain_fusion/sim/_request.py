"""Reading a chat-completions request body: messages, tools, formats, and its prompt tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from langchain_fusion.sim._tokens import count_tokens

_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


class RequestError(ValueError):
    """The request body cannot be served (answered with a 400)."""


@dataclass(frozen=True)
class Message:
    """One input message, reduced to what the simulator reads."""

    role: str
    """`system`, `user`, `assistant`, `tool`..."""

    text: str
    """The text content (text parts joined by newlines)."""

    images: int = 0
    """Image parts in the content."""

    tool_calls: tuple[tuple[str, str], ...] = ()
    """`(name, arguments)` of each tool call an assistant message carries."""

    @property
    def tokens(self) -> int:
        """Prompt tokens of this message, images excluded."""
        return count_tokens(self.text) + sum(
            count_tokens(name) + count_tokens(arguments) for name, arguments in self.tool_calls
        )


@dataclass(frozen=True)
class ChatRequest:
    """A parsed `POST .../chat/completions` body."""

    model: str
    """The requested model name."""

    messages: list[Message]
    """The input messages."""

    stream: bool = False
    """Whether to reply with SSE."""

    include_usage: bool = False
    """`stream_options.include_usage`."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    """The tools offered (OpenAI format)."""

    tool_choice: Any = None
    """`tool_choice` as sent."""

    response_format: dict[str, Any] | None = None
    """`response_format` as sent."""

    max_tokens: int | None = None
    """`max_completion_tokens` or `max_tokens`: the reply is cut to this many tokens."""

    @property
    def images(self) -> int:
        """Image parts across all messages."""
        return sum(m.images for m in self.messages)

    def prompt_tokens(self, image_tokens: int) -> int:
        """Prompt tokens of the request.

        The words of every message's text and tool calls, plus `image_tokens` per image
        part. Tool definitions and roles are not counted.
        """
        return sum(m.tokens for m in self.messages) + self.images * image_tokens

    @property
    def last_user_text(self) -> str:
        """Text of the last user message ('' when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @property
    def fenced_text(self) -> str:
        """The system messages' text, then the last user message's.

        Where a fusion states its nonce (the judge's instructions are a system message),
        fences the candidates and sets the task.
        """
        system = [message.text for message in self.messages if message.role == "system"]
        return "\n\n".join([*system, self.last_user_text])

    @property
    def last_role(self) -> str:
        """Role of the last message."""
        return self.messages[-1].role if self.messages else ""

    def tool_names(self) -> list[str]:
        """Names of the function tools offered."""
        names = []
        for tool in self.tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        return names

    def tool_parameters(self, name: str) -> dict[str, Any]:
        """The JSON schema of the parameters of tool `name` (empty when unknown)."""
        for tool in self.tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and function.get("name") == name:
                params = function.get("parameters")
                return params if isinstance(params, dict) else {}
        return {}


def _content_text(content: Any) -> tuple[str, int]:
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise RequestError("message content must be a string, a list of parts, or null")
    texts: list[str] = []
    images = 0
    for part in content:
        if not isinstance(part, dict):
            raise RequestError("each content part must be an object")
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in _IMAGE_PARTS:
            images += 1
    return "\n".join(texts), images


def _message(raw: Any) -> Message:
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
        raise RequestError("each message must be an object with a `role`")
    text, images = _content_text(raw.get("content"))
    calls: list[tuple[str, str]] = []
    for call in raw.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments", "")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            calls.append((str(function.get("name", "")), arguments))
    return Message(role=raw["role"], text=text, images=images, tool_calls=tuple(calls))


def parse_request(body: Any) -> ChatRequest:
    """Read a chat-completions request body.

    Raises:
        RequestError: when the body is not a valid request.
    """
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("`model` is required")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestError("`messages` must be a non-empty list")
    options = body.get("stream_options")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise RequestError("`tools` must be a list")
    response_format = body.get("response_format")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return ChatRequest(
        model=model,
        messages=[_message(m) for m in raw_messages],
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        tools=[t for t in tools if isinstance(t, dict)],
        tool_choice=body.get("tool_choice"),
        response_format=response_format if isinstance(response_format, dict) else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
    )
