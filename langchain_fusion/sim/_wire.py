"""Response bodies and SSE events shaped as OpenRouter sends them."""

from __future__ import annotations

import json
from typing import Any

from langchain_fusion.sim._answer import Answer, ToolCall
from langchain_fusion.sim._scenario import SimModel
from langchain_fusion.sim._tokens import count_tokens, split_tokens

#: The keep-alive comment OpenRouter sends while a stream waits for its first token.
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
#: The last event of every stream.
DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    """One SSE `data:` event."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode("utf-8") + b"\n\n"


def cost_of(model: SimModel, prompt_tokens: int, completion_tokens: int) -> tuple[float, float]:
    """`(prompt_cost, completion_cost)` in USD, each rounded to 12 decimals."""
    return (
        round(prompt_tokens * model.prompt_price, 12),
        round(completion_tokens * model.completion_price, 12),
    )


def usage(model: SimModel, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The `usage` object, with OpenRouter's `cost` and `cost_details`."""
    prompt_cost, completion_cost = cost_of(model, prompt_tokens, completion_tokens)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": round(prompt_cost + completion_cost, 12),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": completion_cost,
        },
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
    }


def _head(response_id: str, created: int, model: SimModel, obj: str) -> dict[str, Any]:
    return {
        "id": response_id,
        "provider": model.provider,
        "model": model.name,
        "object": obj,
        "created": created,
    }


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def completion(
    response_id: str,
    created: int,
    model: SimModel,
    answer: Answer,
    usage_body: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A non-streaming `chat.completion` body."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text,
        "refusal": None,
        "reasoning": None,
    }
    if answer.tool_calls:
        message["tool_calls"] = [_tool_call(c) for c in answer.tool_calls]
    body = _head(response_id, created, model, "chat.completion")
    body["choices"] = [
        {
            "logprobs": None,
            "finish_reason": answer.finish_reason,
            "native_finish_reason": answer.finish_reason,
            "index": 0,
            "message": message,
        }
    ]
    body["system_fingerprint"] = model.system_fingerprint
    if usage_body is not None:
        body["usage"] = usage_body
    if error is not None:
        body["error"] = error
    return body


def chunk(
    response_id: str,
    created: int,
    model: SimModel,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_body: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `chat.completion.chunk`; `delta=None` makes the usage chunk (`choices: []`)."""
    body = _head(response_id, created, model, "chat.completion.chunk")
    if delta is None:
        body["choices"] = []
    else:
        body["choices"] = [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "logprobs": None,
            }
        ]
    body["system_fingerprint"] = model.system_fingerprint
    if usage_body is not None:
        body["usage"] = usage_body
    if error is not None:
        body["error"] = error
    return body


def tool_call_deltas(answer: Answer) -> list[tuple[dict[str, Any], int]]:
    """The tool-call deltas of a stream, each with the completion tokens it carries.

    The first delta of a call names it (and carries the tokens of its name); its arguments
    follow one token per delta.
    """
    deltas: list[tuple[dict[str, Any], int]] = []
    for index, call in enumerate(answer.tool_calls):
        head = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append(({"tool_calls": [head]}, count_tokens(call.name)))
        for piece in split_tokens(call.arguments):
            part = {"index": index, "function": {"arguments": piece}}
            deltas.append(({"tool_calls": [part]}, count_tokens(piece)))
    return deltas


def error_body(code: int, message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenRouter error body: `{"error": {"code", "message", "metadata"}, "user_id"}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error, "user_id": "user_sim"}
