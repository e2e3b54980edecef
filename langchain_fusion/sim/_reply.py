"""The reply to one chat-completions request: plain or SSE, paced, faulted, and accounted.

`Reply` writes straight to ASGI so that it can pace a stream, inject a fault mid-way and
notice a client that went away; `SimState` holds what replies share (counters, replies in
flight).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from langchain_fusion.sim import _wire
from langchain_fusion.sim._answer import Answer
from langchain_fusion.sim._request import ChatRequest
from langchain_fusion.sim._scenario import Fault, Scenario, SimModel
from langchain_fusion.sim._stats import Recorder
from langchain_fusion.sim._tokens import count_tokens, split_tokens

_JSON = "application/json"


class SimulatedDisconnect(Exception):
    """Raised inside the app to cut a connection on purpose (a broken reply, or shutdown)."""


class _ClientGone(Exception):
    """The client disconnected while its request was being served."""


class SimState:
    """The live state of one simulator app: scenario, counters, and replies in flight."""

    def __init__(self, scenario: Scenario, recorder: Recorder | None = None) -> None:
        self.scenario = scenario
        """The scenario served."""
        self.recorder = recorder or Recorder(m.name for m in scenario.models)
        """The counters behind `/stats`."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop serving the app (set at startup)."""
        self.closing = False
        """Set when the simulator stops."""
        self.active: set[Reply] = set()
        """Replies in flight."""

    def close(self) -> None:
        """Stop every reply in flight (hangs end, streams are cut); call on the app's loop."""
        self.closing = True
        for reply in list(self.active):
            reply.stop.set()

    def close_threadsafe(self) -> None:
        """`close()` from another thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.close)


class Reply(Response):
    """The reply to one chat-completions request, written straight to ASGI.

    A task watches `receive` for the client's disconnect, so that hangs, waits for the first
    token and streams notice a client that went away and count the request as abandoned.
    """

    def __init__(
        self,
        state: SimState,
        model: SimModel,
        request: ChatRequest,
        answer: Answer,
        fault: Fault | None,
    ) -> None:
        self.state = state
        self.model = model
        self.request = request
        self.answer = answer
        self.fault = fault
        self.created = int(time.time())
        self.response_id = f"gen-{self.created}-{secrets.token_hex(10)}"
        self.prompt_tokens = request.prompt_tokens(model.image_tokens)
        self.stop = asyncio.Event()
        self.gone = False
        self.finished = False
        self.billed = False
        self.sent_tokens = 0

    # -- plumbing ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.state.active.add(self)
        if self.state.closing:
            self.stop.set()
        watcher = asyncio.create_task(self._watch(receive))
        abandoned = False
        try:
            await self._serve(send)
        except _ClientGone:
            abandoned = True
        finally:
            watcher.cancel()
            self.state.active.discard(self)
            self._finish(abandoned=abandoned)

    def _finish(self, completed: bool = False, abandoned: bool = False) -> None:
        """Account for this request, once.

        Called before the last bytes go out, so that a client that has read its whole reply
        always finds it in the stats.
        """
        if self.finished:
            return
        self.finished = True
        self.state.recorder.finish(
            self.model.name,
            completed=completed,
            stream=self.request.stream,
            abandoned=abandoned and not completed,
            unbilled=0 if self.billed else self.sent_tokens,
        )

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                self.stop.set()
                return

    def _check(self) -> None:
        if self.gone:
            raise _ClientGone
        if self.stop.is_set():
            raise SimulatedDisconnect("simulator shutting down")

    async def _wait(self, seconds: float | None) -> None:
        """Wait `seconds` (None: forever), unless the client leaves or the simulator stops."""
        self._check()
        if seconds is not None and seconds <= 0:
            return
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return
        self._check()

    async def _pace(self, target: float) -> None:
        delay = target - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._check()

    def _fault_message(self, default: str) -> str:
        return self.fault.message if self.fault and self.fault.message else default

    def _record_fault(self) -> None:
        if self.fault is not None:
            self.state.recorder.fault(self.model.name, self.fault.kind)

    def _bill(self) -> dict[str, Any]:
        self.billed = True
        completion_tokens = self.answer.completion_tokens
        usage = _wire.usage(self.model, self.prompt_tokens, completion_tokens)
        self.state.recorder.bill(
            self.model.name,
            self.prompt_tokens,
            completion_tokens,
            usage["cost"],
            len(self.answer.tool_calls),
        )
        return usage

    def _cut_after(self) -> int:
        fault = self.fault
        if fault is not None and fault.after_tokens is not None:
            return fault.after_tokens
        return self.answer.completion_tokens // 2

    @staticmethod
    async def _start(send: Send, status: int, content_type: str, extra: dict[str, str]) -> None:
        headers = [(b"content-type", content_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})

    @staticmethod
    async def _body(send: Send, data: bytes, more: bool = False) -> None:
        message: Message = {"type": "http.response.body", "body": data, "more_body": more}
        await send(message)

    async def _send_json(
        self, send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        extra = {"content-length": str(len(body)), **(headers or {})}
        await self._start(send, status, _JSON, extra)
        await self._body(send, body)

    # -- serving ----------------------------------------------------------------------------

    async def _serve(self, send: Send) -> None:
        fault = self.fault
        if fault is not None and fault.kind in ("rate_limit", "server_error"):
            self._record_fault()
            await self._send_error(send, fault)
            return
        if fault is not None and fault.kind == "hang":
            self._record_fault()
            if not (self.request.stream and fault.after_tokens is not None):
                await self._wait(fault.seconds)  # else the stream stalls mid-way
        if self.request.stream:
            await self._stream(send)
        else:
            await self._single(send)

    async def _send_error(self, send: Send, fault: Fault) -> None:
        headers: dict[str, str] = {}
        if fault.kind == "rate_limit":
            status = 429
            message = self._fault_message("Rate limit exceeded (simulated)")
            if fault.retry_after is not None:
                headers["retry-after"] = str(math.ceil(fault.retry_after))
                headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
        else:
            status = fault.status
            message = self._fault_message(f"Upstream error {status} (simulated)")
        body = json.dumps(_wire.error_body(status, message, {"provider_name": self.model.provider}))
        self._finish()
        await self._send_json(send, status, body.encode(), headers)

    async def _single(self, send: Send) -> None:
        tps = self.model.tokens_per_second
        generation = self.answer.completion_tokens / tps if tps else 0.0
        await self._wait(self.model.ttft + generation)
        kind = self.fault.kind if self.fault is not None else None
        if kind == "error_chunk":
            self._record_fault()
            pieces = split_tokens(self.answer.text)[: self._cut_after()]
            partial = Answer(text="".join(pieces), finish_reason="error")
            error = {"code": 502, "message": self._fault_message("Upstream error (simulated)")}
            body = _wire.completion(
                self.response_id, self.created, self.model, partial, None, error
            )
            self._finish()
            await self._send_json(send, 200, json.dumps(body).encode())
            return
        usage = None if kind in ("malformed_json", "broken_stream") else self._bill()
        body = _wire.completion(self.response_id, self.created, self.model, self.answer, usage)
        data = json.dumps(body).encode()
        if kind == "malformed_json":
            self._record_fault()
            self._finish()
            await self._send_json(send, 200, data[: len(data) // 2])
            return
        if kind == "broken_stream":
            self._record_fault()
            await self._start(send, 200, _JSON, {"content-length": str(len(data))})
            await self._body(send, data[: len(data) // 2], more=True)
            raise SimulatedDisconnect("reply cut mid-way (simulated)")
        self._finish(completed=True)
        await self._send_json(send, 200, data)

    def _events(self) -> list[tuple[dict[str, Any], int]]:
        events: list[tuple[dict[str, Any], int]] = []
        for index, piece in enumerate(split_tokens(self.answer.text)):
            delta: dict[str, Any] = {"content": piece}
            if index == 0:
                delta = {"role": "assistant", "content": piece}
            events.append((delta, count_tokens(piece)))
        calls = _wire.tool_call_deltas(self.answer)
        if calls and not events:
            first, tokens = calls[0]
            calls[0] = ({"role": "assistant", "content": None, **first}, tokens)
        events += calls
        if not events:
            events.append(({"role": "assistant", "content": ""}, 0))
        return events

    async def _stream(self, send: Send) -> None:
        model = self.model
        loop = asyncio.get_running_loop()
        await self._start(send, 200, "text/event-stream", {"cache-control": "no-cache"})
        await self._body(send, _wire.KEEPALIVE, more=True)
        opened = loop.time()
        while (left := model.ttft - (loop.time() - opened)) > 0:
            await self._wait(min(left, self.state.scenario.keepalive_interval))
            if model.ttft - (loop.time() - opened) > 0:
                await self._body(send, _wire.KEEPALIVE, more=True)
        self._check()
        fault = self.fault
        kind = fault.kind if fault is not None else None
        mid_fault = kind in ("broken_stream", "error_chunk", "malformed_json")
        cut = self._cut_after()
        tps = model.tokens_per_second
        first = loop.time()

        def chunk(delta: dict[str, Any] | None, **kw: Any) -> bytes:
            return _wire.sse(_wire.chunk(self.response_id, self.created, model, delta, **kw))

        stall = fault if kind == "hang" and fault and fault.after_tokens is not None else None
        for delta, tokens in self._events():
            if mid_fault and self.sent_tokens >= cut:
                break
            if stall is not None and self.sent_tokens >= cut:
                stalled = loop.time()
                await self._wait(stall.seconds)
                first += loop.time() - stalled
                stall = None
            if tps:
                await self._pace(first + self.sent_tokens / tps)
            await self._body(send, chunk(delta), more=True)
            self.sent_tokens += tokens
        if mid_fault:
            await self._stream_fault(send, kind, chunk)
            return
        done = {"role": "assistant", "content": ""}
        await self._body(send, chunk(done, finish_reason=self.answer.finish_reason), more=True)
        if self.state.scenario.stream_usage == "always" or self.request.include_usage:
            await self._body(send, chunk(None, usage_body=self._bill()), more=True)
        # Without a usage chunk nothing is billed: the client could not know the cost.
        self._finish(completed=True)
        await self._body(send, _wire.DONE)

    async def _stream_fault(self, send: Send, kind: str | None, chunk: Any) -> None:
        self._record_fault()
        if kind == "broken_stream":
            raise SimulatedDisconnect("stream cut mid-way (simulated)")
        if kind == "malformed_json":
            self._finish()
            await self._body(send, b'data: {"id": "' + self.response_id.encode() + b'", "cho\n\n')
            return
        error = {
            "code": 502,
            "message": self._fault_message("Upstream error mid-stream (simulated)"),
            "metadata": {"error_type": "provider_unavailable", "provider_code": "502"},
        }
        done = {"role": "assistant", "content": ""}
        await self._body(send, chunk(done, finish_reason="error", error=error), more=True)
        self._finish()
        await self._body(send, _wire.DONE)
