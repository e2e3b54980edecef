"""The drivers: perform the steps a mode runner yields. Async and sync twins.

The async driver runs members as asyncio tasks on the caller's event loop (never a private
loop: real clients cache one HTTP client per process and break across loops) and cancels
stragglers, which aborts their HTTP requests. The sync driver runs members in a thread pool
that copies the caller's context; a straggler's thread cannot be interrupted, so it is
abandoned and its late result ignored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.runnables.config import ContextThreadPoolExecutor

from langchain_fusion._core.outcome import Outcome
from langchain_fusion._exceptions import JudgeError
from langchain_fusion._runtime.calls import (
    ConfigFor,
    FanOutState,
    as_chunk,
    clean_chunk,
    error_outcome,
    outcome_of,
    runnable_for,
    stream_outcome,
    too_late,
)
from langchain_fusion._runtime.cancel import cancel_and_wait
from langchain_fusion._runtime.limits import (
    ainvoke_in_slot,
    astream_in_slot,
    invoke_in_slot,
    stream_in_slot,
)
from langchain_fusion._runtime.steps import Call, Deadline, FanOut, FusionResult

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
    message = result.message
    return [
        AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            tool_call_chunks=[
                tool_call_chunk(name=tc["name"], args=json.dumps(tc["args"]), id=tc["id"], index=i)
                for i, tc in enumerate(message.tool_calls)
            ],
        )
    ]


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
                runnable, structured = runnable_for(call)
                value = await ainvoke_in_slot(
                    call,
                    lambda: runnable.ainvoke(call.messages, self.config_for(call), **call.kwargs),
                )
            except Exception as exc:
                return error_outcome(call, exc, started)
            return outcome_of(call, value, structured, started)
        finally:
            if self.semaphore is not None:
                self.semaphore.release()

    async def fan_out(self, fan: FanOut) -> list[Outcome]:
        """Run the calls concurrently under the fan-out's waiting rules."""
        state = FanOutState(fan.calls, fan.quorum, fan.grace, self.deadline)
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
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        stream = astream_in_slot(
            call, call.member.runnable.astream(call.messages, self.config_for(call), **call.kwargs)
        )
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
                    yield cleaned
        except Exception as exc:  # failure isolation: kept with the partial answer
            yield stream_outcome(call, chunks, started, exc)
            return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        yield stream_outcome(call, chunks, started)

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


def _loop_time(expiry: float | None) -> float | None:
    """Convert a `time.monotonic()` instant to the running loop's clock."""
    if expiry is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + (expiry - time.monotonic())


class SyncDriver:
    """Performs steps with a thread pool that copies the caller's context."""

    def __init__(self, config_for: ConfigFor, deadline: Deadline, max_concurrency: int | None):
        self.config_for = config_for
        self.deadline = deadline
        self.max_concurrency = max_concurrency

    def _one(self, state: FanOutState, index: int, call: Call) -> Outcome:
        started = state.start(index)
        if started is None:
            return too_late(call)
        try:
            runnable, structured = runnable_for(call)
            value = invoke_in_slot(
                call,
                lambda: runnable.invoke(call.messages, self.config_for(call), **call.kwargs),
                self.deadline.bound(call.timeout),
                lambda: state.over,
            )
        except Exception as exc:
            return error_outcome(call, exc, started)
        return outcome_of(call, value, structured, started)

    def fan_out(self, fan: FanOut) -> list[Outcome]:
        """Run the calls concurrently under the fan-out's waiting rules."""
        state = FanOutState(fan.calls, fan.quorum, fan.grace, self.deadline)
        state.uninterruptible = True
        workers = min(self.max_concurrency or len(fan.calls), len(fan.calls))
        executor = ContextThreadPoolExecutor(max_workers=max(1, workers))
        futures = {
            i: executor.submit(self._one, state, i, call) for i, call in enumerate(fan.calls)
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
            executor.shutdown(wait=False, cancel_futures=True)
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
        stream = stream_in_slot(
            call,
            call.member.runnable.stream(call.messages, self.config_for(call), **call.kwargs),
            limit,
        )
        try:
            for item in stream:
                chunk = as_chunk(item)
                if chunk is not None:
                    chunks.append(chunk)
                cleaned = clean_chunk(chunk)
                if cleaned is not None:
                    yield cleaned
                if limit is not None and time.monotonic() - started > limit:
                    raise TimeoutError(f"no complete answer within {limit:g}s")
        except Exception as exc:  # failure isolation: kept with the partial answer
            yield stream_outcome(call, chunks, started, exc)
            return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        yield stream_outcome(call, chunks, started)

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
