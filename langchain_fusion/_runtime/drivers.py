"""The drivers: perform the steps a mode runner yields. Async and sync twins.

The async driver runs members as asyncio tasks on the caller's event loop (never a private
loop: real clients cache one HTTP client per process and break across loops) and cancels
stragglers, which aborts their HTTP requests. The sync driver runs members on the shared
worker threads (`_runtime/workers.py`), which copy the caller's context; a straggler's
thread cannot be interrupted, so it is abandoned and its late result ignored.

Each twin makes a model call in one place: `_invoke` (a call whose whole answer is awaited)
and `_open_stream` (a streamed call).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from langchain_core.messages import AIMessageChunk

from langchain_fusion._core.outcome import Outcome
from langchain_fusion._exceptions import JudgeError
from langchain_fusion._runtime.calls import (
    ConfigFor,
    FanOutState,
    error_outcome,
    outcome_of,
    stream_outcome,
    too_late,
)
from langchain_fusion._runtime.cancel import cancel_and_wait
from langchain_fusion._runtime.chunks import answer_chunk, as_chunk, clean_chunk
from langchain_fusion._runtime.limits import (
    ainvoke_in_slot,
    astream_in_slot,
    invoke_in_slot,
    stream_in_slot,
)
from langchain_fusion._runtime.steps import Call, Deadline, FanOut, FusionResult
from langchain_fusion._runtime.workers import WORKERS

Plan = Generator[Call | FanOut, Any, FusionResult]


def tail(result: FusionResult, sent_any: bool) -> list[AIMessageChunk]:
    """What a stream still has to send once the runner returned, before the final chunk.

    Raises:
        JudgeError: when part of a judge answer was sent and the runner then fell back to
            another answer: sent tokens cannot be taken back.
    """
    if result.streamed:
        return []
    if sent_any:
        raise JudgeError(
            "the judge's streamed answer broke after part of it was sent",
            answers=result.answers,
            errors={
                c["name"]: c["error"] for c in result.report.get("candidates", []) if c["error"]
            },
            report=result.report,
        )
    return [answer_chunk(result.message)]


class AsyncDriver:
    """Performs steps with asyncio on the running loop."""

    def __init__(self, config_for: ConfigFor, deadline: Deadline, max_concurrency: int | None):
        self.config_for = config_for
        self.deadline = deadline
        self.semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    async def _one(self, state: FanOutState, index: int, call: Call) -> Outcome:
        if self.semaphore is not None:
            await self.semaphore.acquire()
        try:
            started = state.start(index)
            if started is None:
                return too_late(call)
            try:
                value = await self._invoke(call)
            except Exception as exc:
                return error_outcome(call, exc, started)
            return outcome_of(call, value, started)
        finally:
            if self.semaphore is not None:
                self.semaphore.release()

    async def _invoke(self, call: Call) -> Any:
        """Make the model call once its model's rate-limit slot is free; its return value."""
        runnable = call.member.runnable
        return await ainvoke_in_slot(
            call, lambda: runnable.ainvoke(call.messages, self.config_for(call), **call.kwargs)
        )

    def _open_stream(self, call: Call) -> AsyncIterator[Any]:
        """Start the model call as a stream, once its model's rate-limit slot is free."""
        stream: AsyncIterator[Any] = call.member.runnable.astream(
            call.messages, self.config_for(call), **call.kwargs
        )
        return astream_in_slot(call, stream)

    async def fan_out(self, fan: FanOut) -> list[Outcome]:
        """Run the calls concurrently under the fan-out's waiting rules."""
        state = FanOutState(fan.calls, fan.quorum, fan.grace, self.deadline)
        if state.unbounded():
            return await self._fan_out_unbounded(state, fan.calls)
        tasks = {
            i: asyncio.create_task(self._one(state, i, call), name=f"fusion:{call.member.name}")
            for i, call in enumerate(fan.calls)
        }
        try:
            while True:
                for index in state.expire():
                    tasks[index].cancel()
                if state.should_stop():
                    break
                waiting = [tasks[i] for i in state.pending()]
                done, _ = await asyncio.wait(
                    waiting, timeout=state.next_wait(), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    index = next(i for i, t in tasks.items() if t is task)
                    if not task.cancelled():
                        state.finish(index, task.result())
        finally:
            state.abandon()
            await cancel_and_wait(tasks.values())
        return state.outcomes()

    async def _fan_out_unbounded(self, state: FanOutState, calls: list[Call]) -> list[Outcome]:
        """Every call waited for until it ends: no waiting loop, only the cancellation path."""
        tasks = [
            asyncio.create_task(self._one(state, i, call), name=f"fusion:{call.member.name}")
            for i, call in enumerate(calls)
        ]
        try:
            await asyncio.wait(tasks)
        except BaseException:  # cancelled: the calls end before the fusion does, as below
            state.abandon()
            await cancel_and_wait(tasks)
            raise
        for index, task in enumerate(tasks):
            state.finish(index, task.result())
        return state.outcomes()

    async def call(self, call: Call) -> Outcome:
        """Run one call under its timeout and the deadline."""
        return (await self.fan_out(FanOut([call])))[0]

    async def stream_call(self, call: Call) -> AsyncIterator[AIMessageChunk | Outcome]:
        """Stream one call: yields cleaned chunks, then its `Outcome` (partial on failure)."""
        if self.deadline.expired():
            yield too_late(call)
            return
        started = time.monotonic()
        limit = self.deadline.bound(call.timeout)
        expiry = None if limit is None else started + limit
        chunks: list[AIMessageChunk] = []
        first: float | None = None
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        stream = self._open_stream(call)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(_loop_time(expiry)):
                        item = await anext(stream)
                except StopAsyncIteration:
                    break
                # On 3.11 `asyncio.wait_for` (clients wrap each chunk in it) returns a chunk
                # that lands with a cancellation and drops the cancellation: raise it here.
                if task is not None and task.cancelling() > cancels:
                    raise asyncio.CancelledError
                chunk = as_chunk(item)
                if chunk is not None:
                    chunks.append(chunk)
                cleaned = clean_chunk(chunk)
                if cleaned is not None:
                    first = first or time.monotonic()
                    yield cleaned
        except Exception as exc:  # failure isolation: kept with the partial answer
            yield first_token(stream_outcome(call, chunks, started, exc), first)
            return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        yield first_token(stream_outcome(call, chunks, started), first)

    async def _perform(self, step: Call | FanOut) -> Any:
        if isinstance(step, FanOut):
            return await self.fan_out(step)
        return await self.call(step)

    async def run(self, plan: Plan) -> FusionResult:
        """Drive a mode runner to its result."""
        value: Any = None
        while True:
            try:
                step = plan.send(value)
            except StopIteration as stop:
                result: FusionResult = stop.value
                return result
            value = await self._perform(step)

    async def stream(self, plan: Plan) -> AsyncIterator[AIMessageChunk | FusionResult]:
        """Drive a mode runner, streaming the calls marked `stream=True`; ends with the result."""
        value: Any = None
        sent_any = False
        while True:
            try:
                step = plan.send(value)
            except StopIteration as stop:
                result: FusionResult = stop.value
                break
            if isinstance(step, Call) and step.stream:
                async for item in self.stream_call(step):
                    if isinstance(item, Outcome):
                        value = item
                    else:
                        sent_any = True
                        yield item
            else:
                value = await self._perform(step)
        for chunk in tail(result, sent_any):
            yield chunk
        yield result


def first_token(outcome: Outcome, at: float | None) -> Outcome:
    """`outcome` with the time its stream's first token arrived (for the report's timeline)."""
    outcome.first_token_at = at
    return outcome


def _loop_time(expiry: float | None) -> float | None:
    """Convert a `time.monotonic()` instant to the running loop's clock."""
    if expiry is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + (expiry - time.monotonic())


def _loop_running() -> bool:
    """Whether this thread runs an event loop (sync code called from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SyncDriver:
    """Performs steps on the shared worker threads, which copy the caller's context."""

    def __init__(self, config_for: ConfigFor, deadline: Deadline, max_concurrency: int | None):
        self.config_for = config_for
        self.deadline = deadline
        self.max_concurrency = max_concurrency

    def _one(
        self, state: FanOutState, index: int, call: Call, slots: threading.Semaphore | None
    ) -> Outcome:
        if slots is not None:
            slots.acquire()
        try:
            started = state.start(index)
            if started is None:
                return too_late(call)
            try:
                value = self._invoke(call, state)
            except Exception as exc:
                return error_outcome(call, exc, started)
            return outcome_of(call, value, started)
        finally:
            if slots is not None:
                slots.release()

    def _invoke(self, call: Call, state: FanOutState) -> Any:
        """Make the model call once its model's rate-limit slot is free; its return value.

        The wait for the slot is bounded by the call's timeout and the deadline, and ends
        when the fan-out does.
        """
        runnable = call.member.runnable
        return invoke_in_slot(
            call,
            lambda: runnable.invoke(call.messages, self.config_for(call), **call.kwargs),
            self.deadline.bound(call.timeout),
            lambda: state.over,
        )

    def _open_stream(self, call: Call, limit: float | None) -> Iterator[Any]:
        """Start the model call as a stream, once its model's rate-limit slot is free."""
        stream: Iterator[Any] = call.member.runnable.stream(
            call.messages, self.config_for(call), **call.kwargs
        )
        return stream_in_slot(call, stream, limit)

    def fan_out(self, fan: FanOut) -> list[Outcome]:
        """Run the calls concurrently under the fan-out's waiting rules."""
        state = FanOutState(fan.calls, fan.quorum, fan.grace, self.deadline)
        state.uninterruptible = True
        limit = self.max_concurrency
        slots = threading.Semaphore(limit) if limit and limit < len(fan.calls) else None
        if slots is None and state.unbounded() and not _loop_running():
            return self._fan_out_unbounded(state, fan.calls)
        futures = {
            i: WORKERS.submit(self._one, state, i, call, slots) for i, call in enumerate(fan.calls)
        }
        try:
            while True:
                for index in state.expire():
                    futures[index].cancel()
                if state.should_stop():
                    break
                waiting = [futures[i] for i in state.pending()]
                done, _ = concurrent.futures.wait(
                    waiting,
                    timeout=state.next_wait(),
                    return_when=concurrent.futures.FIRST_COMPLETED,
                )
                for future in done:
                    index = next(i for i, f in futures.items() if f is future)
                    if not future.cancelled():
                        state.finish(index, future.result())
        finally:
            state.abandon()
            for future in futures.values():
                future.cancel()  # not started yet: it never will
        return state.outcomes()

    def _fan_out_unbounded(self, state: FanOutState, calls: list[Call]) -> list[Outcome]:
        """Every call waited for until it ends: the caller's thread makes the first itself.

        It runs in a copy of the context, as the others do on their worker threads. (Not
        where the caller's thread runs an event loop: sync members must never see one.)
        """
        futures = [
            WORKERS.submit(self._one, state, i, call, None)
            for i, call in enumerate(calls[1:], start=1)
        ]
        state.finish(0, contextvars.copy_context().run(self._one, state, 0, calls[0], None))
        for index, future in enumerate(futures, start=1):
            state.finish(index, future.result())
        return state.outcomes()

    def call(self, call: Call) -> Outcome:
        """Run one call under its timeout and the deadline."""
        return self.fan_out(FanOut([call]))[0]

    def stream_call(self, call: Call) -> Iterator[AIMessageChunk | Outcome]:
        """Stream one call: yields cleaned chunks, then its `Outcome` (partial on failure).

        The timeout is checked between chunks: a sync stream cannot be interrupted mid-read.
        """
        if self.deadline.expired():
            yield too_late(call)
            return
        started = time.monotonic()
        limit = self.deadline.bound(call.timeout)
        chunks: list[AIMessageChunk] = []
        first: float | None = None
        stream = self._open_stream(call, limit)
        try:
            for item in stream:
                chunk = as_chunk(item)
                if chunk is not None:
                    chunks.append(chunk)
                cleaned = clean_chunk(chunk)
                if cleaned is not None:
                    first = first or time.monotonic()
                    yield cleaned
                if limit is not None and time.monotonic() - started > limit:
                    raise TimeoutError(f"no complete answer within {limit:g}s")
        except Exception as exc:  # failure isolation: kept with the partial answer
            yield first_token(stream_outcome(call, chunks, started, exc), first)
            return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        yield first_token(stream_outcome(call, chunks, started), first)

    def _perform(self, step: Call | FanOut) -> Any:
        if isinstance(step, FanOut):
            return self.fan_out(step)
        return self.call(step)

    def run(self, plan: Plan) -> FusionResult:
        """Drive a mode runner to its result."""
        value: Any = None
        while True:
            try:
                step = plan.send(value)
            except StopIteration as stop:
                result: FusionResult = stop.value
                return result
            value = self._perform(step)

    def stream(self, plan: Plan) -> Iterator[AIMessageChunk | FusionResult]:
        """Drive a mode runner, streaming the calls marked `stream=True`; ends with the result."""
        value: Any = None
        sent_any = False
        while True:
            try:
                step = plan.send(value)
            except StopIteration as stop:
                result: FusionResult = stop.value
                break
            if isinstance(step, Call) and step.stream:
                for item in self.stream_call(step):
                    if isinstance(item, Outcome):
                        value = item
                    else:
                        sent_any = True
                        yield item
            else:
                value = self._perform(step)
        yield from tail(result, sent_any)
        yield result
