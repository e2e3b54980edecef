"""The OpenAI chat-completions wire format: requests out, messages and chunks in. No I/O.

Used by `ChatOpenAICompatible`. Provider extras that LangChain's OpenAI client drops are
kept: OpenRouter's `usage.cost` and `cost_details` stay in
`response_metadata["token_usage"]`, streaming or not, and an error reported inside a
response (a body or a stream event with `error`, or `finish_reason: "error"`) raises
`ProviderError` instead of passing for a short answer.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_fusion._exceptions import ProviderError
from langchain_fusion._http import Response, error_code, error_text

#: The `model_provider` LangChain reads to interpret content blocks: the wire format.
MODEL_PROVIDER = "openai"


def request_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as chat-completions messages (tool calls, tool results, images)."""
    converted = convert_to_openai_messages(list(messages))
    return converted if isinstance(converted, list) else [converted]


def openai_tool(
    tool: dict[str, Any] | type | Callable[..., Any] | BaseTool, strict: bool | None
) -> dict[str, Any]:
    """A tool in the chat-completions format (`{"type": "function", "function": ...}`).

    A class (a pydantic model, a `TypedDict`) is converted once per `strict` and a copy of
    that is returned: generating its JSON schema is the costly part, and a judge binds the
    same schema on every call.
    """
    if isinstance(tool, type):
        return copy.deepcopy(_class_tool(tool, strict))
    return convert_to_openai_tool(tool, strict=strict)


@functools.lru_cache(maxsize=256)
def _class_tool(tool: type, strict: bool | None) -> dict[str, Any]:
    return convert_to_openai_tool(tool, strict=strict)


def usage_metadata(usage: dict[str, Any]) -> UsageMetadata:
    """LangChain usage from an OpenAI `usage` object (token details where reported)."""
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)
    total = usage.get("total_tokens")
    result = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=int(total) if total is not None else input_tokens + output_tokens,
    )
    prompt_details = usage.get("prompt_tokens_details") or {}
    input_details = InputTokenDetails()
    if prompt_details.get("cached_tokens") is not None:
        input_details["cache_read"] = int(prompt_details["cached_tokens"])
    if prompt_details.get("audio_tokens") is not None:
        input_details["audio"] = int(prompt_details["audio_tokens"])
    if input_details:
        result["input_token_details"] = input_details
    completion_details = usage.get("completion_tokens_details") or {}
    output_details = OutputTokenDetails()
    if completion_details.get("reasoning_tokens") is not None:
        output_details["reasoning"] = int(completion_details["reasoning_tokens"])
    if completion_details.get("audio_tokens") is not None:
        output_details["audio"] = int(completion_details["audio_tokens"])
    if output_details:
        result["output_token_details"] = output_details
    return result


def _metadata(body: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "model_name": body.get("model"),
        "model_provider": MODEL_PROVIDER,
        "finish_reason": finish_reason,
        "id": body.get("id"),
    }
    if body.get("system_fingerprint") is not None:
        meta["system_fingerprint"] = body["system_fingerprint"]
    if body.get("provider") is not None:  # OpenRouter: the upstream that served the call
        meta["provider"] = body["provider"]
    if body.get("usage") is not None:
        meta["token_usage"] = body["usage"]
    return meta


def _raise_for_error(body: dict[str, Any], where: str) -> None:
    if body.get("error"):
        raise ProviderError(
            f"{where}: {error_text(body['error'])}", status_code=error_code(body["error"])
        )


def parse_response(body: Any) -> AIMessage:
    """A non-streaming chat-completions body as an `AIMessage`.

    Raises:
        ProviderError: when the body reports an error or ends with `finish_reason: "error"`.
    """
    if not isinstance(body, dict):
        raise ProviderError(f"unexpected response body: a JSON {type(body).__name__}")
    _raise_for_error(body, "the provider reported an error")
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        raise ProviderError("the response has no choices")
    choice = choices[0]
    finish_reason = choice.get("finish_reason")
    if finish_reason == "error":
        raise ProviderError("the response ended with finish_reason 'error'")
    raw = choice.get("message") or {}
    tool_calls = []
    invalid_tool_calls = []
    for raw_call in raw.get("tool_calls") or []:
        try:
            parsed = parse_tool_call(raw_call, return_id=True)
        except Exception as exc:
            invalid_tool_calls.append(make_invalid_tool_call(raw_call, str(exc)))
            continue
        if parsed is not None:
            tool_calls.append(parsed)
    additional_kwargs: dict[str, Any] = {}
    if raw.get("refusal"):
        additional_kwargs["refusal"] = raw["refusal"]
    usage = body.get("usage")
    return AIMessage(
        content=raw.get("content") or "",
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
        additional_kwargs=additional_kwargs,
        usage_metadata=usage_metadata(usage) if isinstance(usage, dict) else None,
        response_metadata=_metadata(body, finish_reason),
        id=body.get("id"),
    )


def json_body(response: Response) -> Any:
    """The JSON body of a read response.

    Raises:
        ProviderError: for a body that is not JSON.
    """
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise ProviderError(
            f"malformed JSON from {response.request.url.host}: {exc}",
            status_code=response.status_code,
        ) from None


def chat_result(body: Any) -> ChatResult:
    """A non-streaming chat-completions body as LangChain's `ChatResult`, usage in `llm_output`.

    Raises:
        ProviderError: as `parse_response`.
    """
    message = parse_response(body)
    usage = message.response_metadata.get("token_usage")
    return ChatResult(
        generations=[ChatGeneration(message=message)],
        llm_output={"token_usage": usage, "model_name": message.response_metadata["model_name"]},
    )


class StreamReader:
    """Turns the `data:` events of a chat-completions stream into message chunks.

    Content and tool-call deltas become chunks as they arrive; `final()` is one last chunk
    with the usage and the response metadata (model, finish reason, `token_usage` with
    OpenRouter's `cost`), marked `chunk_position="last"`.
    """

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: str | None = None
        self._head: dict[str, Any] = {}
        self._usage: dict[str, Any] | None = None
        self.events = 0

    def feed(self, data: str) -> AIMessageChunk | None:
        """Read one event's data; returns the chunk to yield, if it carries content.

        Raises:
            ProviderError: for malformed JSON, an error event or `finish_reason: "error"`.
        """
        if data == "[DONE]":
            self.done = True
            return None
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise ProviderError(f"malformed JSON in the stream: {exc}") from None
        if not isinstance(event, dict):
            raise ProviderError(f"malformed stream event: a JSON {type(event).__name__}")
        self.events += 1
        _raise_for_error(event, "the provider reported an error mid-stream")
        for key in ("id", "model", "provider", "system_fingerprint"):
            if event.get(key) is not None:
                self._head[key] = event[key]
        if isinstance(event.get("usage"), dict):
            self._usage = event["usage"]
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            if self.finish_reason == "error":
                raise ProviderError("the stream ended with finish_reason 'error'")
        delta = choice.get("delta") or {}
        content = delta.get("content") or ""
        calls = delta.get("tool_calls") or []
        if not content and not calls:
            return None
        chunks = [
            tool_call_chunk(
                name=(call.get("function") or {}).get("name"),
                args=(call.get("function") or {}).get("arguments"),
                id=call.get("id"),
                index=call.get("index"),
            )
            for call in calls
        ]
        return AIMessageChunk(content=content, tool_call_chunks=chunks, id=self._head.get("id"))

    def final(self) -> AIMessageChunk:
        """The last chunk: usage and response metadata.

        Raises:
            ProviderError: when the stream ended before the reply did (no finish reason).
        """
        if self.finish_reason is None:
            raise ProviderError(
                f"the stream ended before the reply did (after {self.events} events)"
            )
        body = {**self._head, "usage": self._usage}
        return AIMessageChunk(
            content="",
            usage_metadata=usage_metadata(self._usage) if self._usage else None,
            response_metadata=_metadata(body, self.finish_reason),
            id=self._head.get("id"),
            chunk_position="last",
        )


def sse_data(line: str) -> str | None:
    """The payload of an SSE `data:` line; None for comments, blank and other fields."""
    if line.startswith("data:"):
        return line[5:].lstrip(" ")
    return None
