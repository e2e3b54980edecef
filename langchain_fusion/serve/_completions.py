"""`POST /v1/chat/completions`: a request in, a fusion run, an OpenAI-shaped answer out.

The fusion runs in its own task, watched for the client's disconnect (which cancels it, and
so closes its member and judge requests) and for the server's request timeout (504).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from langchain_fusion._core.outcome import describe_error
from langchain_fusion._exceptions import FusionRunError
from langchain_fusion._runtime.cancel import cancel_and_wait
from langchain_fusion.chat_models import FusionChatModel
from langchain_fusion.serve._config import FusionEntry
from langchain_fusion.serve._wire import (
    ApiError,
    ChatRequest,
    ChunkWriter,
    error_event,
    field_path,
    internal_error,
)

T = TypeVar("T")
log = logging.getLogger("langchain_fusion.serve")


class ClientGone(Exception):
    """The client disconnected; its fusion was cancelled."""


async def until_disconnect(receive: Receive, work: Awaitable[T], timeout: float) -> T:
    """Await `work`, cancelling it when the client disconnects or `timeout` passes.

    Raises:
        ClientGone: the client disconnected (the work was cancelled and awaited).
        ApiError: 504 past `timeout`.
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait(
            {task, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            return task.result()
        await cancel_and_wait([task])
        if watcher in done:
            raise ClientGone
        raise ApiError(
            504,
            f"the fusion did not finish within the server's request timeout ({timeout:g}s)",
            type="timeout_error",
            code="deadline_exceeded",
            cause="timeout",
        )
    finally:
        watcher.cancel()
        if not task.done():
            await cancel_and_wait([task])


def run_error(exc: FusionRunError) -> ApiError:
    """A failed fusion as a 502 (or a 504 when every member ran out of time)."""
    report = exc.report or {}
    failed = [c for c in report.get("candidates", []) if c.get("status") != "ok"]
    causes = "; ".join(f"{c['name']}: {c.get('error') or c.get('status')}" for c in failed)
    judge = report.get("judge") or {}
    if judge.get("error"):
        causes += f"; judge: {judge['error']}"
    message = f"the fusion failed: {exc}" + (f" ({causes.strip('; ')})" if causes else "")
    if failed and all(c.get("status") == "timeout" for c in failed):
        return ApiError(
            504, message, type="timeout_error", code="deadline_exceeded", cause="timeout"
        )
    return ApiError(502, message, type="upstream_error", code="fusion_failed", cause="fusion")


def input_error(exc: Exception) -> ApiError:
    """A setting or input the fusion refused before calling any model, as a 400."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        name = field_path(tuple(first["loc"]))
        return ApiError(
            400, f"invalid fusion.{name}: {first['msg']}", param=f"fusion.{name}", cause="input"
        )
    return ApiError(400, str(exc), code="invalid_value", cause="input")


def call_arguments(
    request: ChatRequest, entry: FusionEntry, member_limit: int | None
) -> dict[str, Any]:
    """The fusion's per-call settings: the request's, within the config's limits.

    Raises:
        ApiError: 400 for a setting the config does not let requests set, or a raised ceiling.
    """
    kwargs: dict[str, Any] = {}
    ceiling = entry.settings().get("max_cost_usd")
    for name, value in (request.fusion or {}).items():
        if name == "max_cost_usd":
            if not isinstance(value, int | float) or (ceiling is not None and value > ceiling):
                raise ApiError(
                    400,
                    f"fusion.max_cost_usd may only lower this model's budget ({ceiling} USD)",
                    param="fusion.max_cost_usd",
                    cause="input",
                )
        elif name not in entry.overridable:
            allowed = ", ".join(entry.overridable) or "none"
            raise ApiError(
                400,
                f"fusion.{name} cannot be set per request on this model (allowed: {allowed}, "
                "max_cost_usd below the configured budget)",
                param=f"fusion.{name}",
                cause="input",
            )
        kwargs[name] = value
    max_tokens = request.max_completion_tokens or request.max_tokens
    configured = entry.settings().get("max_tokens")
    if max_tokens is not None:
        kwargs["max_tokens"] = min(max_tokens, configured) if configured else max_tokens
    if member_limit is not None:
        current = entry.settings().get("max_concurrency")
        kwargs["max_concurrency"] = min(current or member_limit, member_limit)
    return kwargs


def _tool_name(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "response"


@dataclass
class Plan:
    """How one request runs: the runnable, its arguments, and how its answer is read."""

    fusion: FusionChatModel
    messages: list[BaseMessage]
    kwargs: dict[str, Any]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    schema: dict[str, Any] | None = None
    stop: list[str] | None = None
    runnable: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.schema is not None:
            name = _tool_name(str(self.schema.get("title", "response")))
            tool = {
                "type": "function",
                "function": {
                    "name": name,
                    "description": self.schema.get("description", "The structured answer."),
                    "parameters": self.schema,
                },
            }
            self.runnable = self.fusion.bind_tools([tool], tool_choice=name)
        elif self.tools:
            self.runnable = self.fusion.bind_tools(self.tools, tool_choice=self.tool_choice)
        else:
            self.runnable = self.fusion

    async def invoke(self) -> AIMessage:
        """Run the fusion to its message."""
        result = await self.runnable.ainvoke(self.messages, stop=self.stop, **self.kwargs)
        assert isinstance(result, AIMessage)
        return result

    def astream(self) -> AsyncIterator[AIMessageChunk]:
        """Stream the fusion's chunks (the last carries usage and report)."""
        stream: AsyncIterator[AIMessageChunk] = self.runnable.astream(
            self.messages, stop=self.stop, **self.kwargs
        )
        return stream

    def structured_content(self, message: AIMessage) -> str:
        """The structured answer as JSON text (from the tool call the judge or member wrote).

        Raises:
            ApiError: 502 when the fusion returned no object.
        """
        if message.tool_calls:
            return json.dumps(message.tool_calls[0]["args"])
        text = message.text.strip()
        try:
            if isinstance(json.loads(text), dict):
                return text
        except ValueError:
            pass
        raise ApiError(
            502,
            "the fusion did not produce a JSON object for response_format",
            type="upstream_error",
            code="fusion_failed",
            cause="fusion",
        )


async def first_and_rest(
    stream: AsyncIterator[AIMessageChunk],
) -> tuple[AIMessageChunk | None, AsyncIterator[AIMessageChunk]]:
    """The stream's first chunk (so that errors before it still get their status) and the rest."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    return first, stream


#: Called once the stream ended: status, report, error cause, the answer's text.
Finish = Callable[[int, dict[str, Any] | None, str | None, str], None]


class SSEResponse:
    """An ASGI response that streams a fusion as SSE events and cancels it on disconnect.

    Errors that happen after the first event are sent as an error event (the status is
    already 200), then the stream ends.
    """

    def __init__(
        self,
        first: AIMessageChunk | None,
        rest: AsyncIterator[AIMessageChunk],
        writer: ChunkWriter,
        finish: Finish,
        timeout: float,
        fusion_id: str,
    ) -> None:
        self.fusion_id = fusion_id
        self.first = first
        self.rest = rest
        self.writer = writer
        self.finish = finish
        self.timeout = timeout

    async def _pump(self, send: Send) -> tuple[int, dict[str, Any] | None, str | None]:
        last: AIMessageChunk | None = None
        chunk = self.first
        try:
            while chunk is not None:
                if chunk.response_metadata.get("fusion") is not None:
                    last = chunk
                event = self.writer.chunk(chunk)
                if event is not None:
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                chunk = await anext(self.rest, None)
        except FusionRunError as exc:
            error = run_error(exc)
            if exc.report is not None:
                exc.report["id"] = self.fusion_id
            await send(
                {"type": "http.response.body", "body": error_event(error), "more_body": False}
            )
            return error.status, exc.report, error.cause
        report = last.response_metadata["fusion"] if last is not None else {}
        report["id"] = self.fusion_id
        body = b"".join(self.writer.final(last or AIMessageChunk(content=""), report))
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return 200, report, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        status: int = 499
        report: dict[str, Any] | None = None
        cause: str | None = "disconnect"
        try:
            status, report, cause = await until_disconnect(receive, self._pump(send), self.timeout)
        except ClientGone:
            pass
        except Exception as exc:
            error = exc if isinstance(exc, ApiError) else internal_error()
            if not isinstance(exc, ApiError):
                log.error("stream failed: %s", describe_error(exc))
            status, cause = error.status, error.cause
            await send(
                {"type": "http.response.body", "body": error_event(error), "more_body": False}
            )
        finally:
            self.finish(status, report, cause, "".join(self.writer.texts))
