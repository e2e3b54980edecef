"""Logic shared by the async and sync drivers: preparing one call and reading its result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig

from langchain_fusion._core.outcome import Outcome, Status, describe_error
from langchain_fusion._runtime.chunks import as_ai_message, merge_chunks
from langchain_fusion._runtime.steps import Call, Deadline

#: Builds the child run config of a call (tracers, tags, metadata); set by the adapter.
ConfigFor = Callable[[Call], RunnableConfig]

# Polling step used only while a call with a timeout waits for a concurrency slot.
QUEUE_POLL_S = 0.02


def finish_error(message: AIMessage) -> str | None:
    """The error of a response that ended with `finish_reason == "error"`, else None."""
    meta = message.response_metadata or {}
    if meta.get("finish_reason") == "error":
        detail = meta.get("error")
        return f"finish_reason error{': ' + str(detail) if detail else ''}"
    return None


def outcome_of(call: Call, value: Any, started: float) -> Outcome:
    """Turn a call's return value into an `Outcome` (an error finish is a failure).

    Every call, the judge's included, returns a message: the judge's verdicts are read from
    its raw text (`_runtime/modes/judging.py`), never through a provider's structured-output
    method, which may raise on an off-schema reply and lose it with the usage it billed.
    """
    ended = time.monotonic()
    latency = ended - started
    message = as_ai_message(value)
    error = finish_error(message)
    # A hedged member: the copy that answered may be another model, and a loser that ran
    # took tokens the answer's usage lacks (see `_runtime/hedge.py`).
    meta = message.response_metadata
    loser = meta.get("hedge_loser")
    return Outcome(
        name=call.member.name,
        model=meta.get("hedge_model") or call.member.model,
        role=call.role,
        status="error" if error else "ok",
        message=message,
        error=error,
        latency_s=latency,
        round=call.round,
        step=call.step,
        abandoned=loser == "abandoned",
        usage_unknown=loser is not None,
        started_at=started,
        ended_at=ended,
    )


def failed(
    call: Call,
    status: Status,
    error: str,
    started: float | None,
    exc: BaseException | None = None,
    message: AIMessage | None = None,
) -> Outcome:
    """The outcome of a call that raised, timed out, was cancelled or never ran."""
    ended = None if started is None else time.monotonic()
    return Outcome(
        name=call.member.name,
        model=call.member.model,
        role=call.role,
        status=status,
        message=message,
        error=error,
        latency_s=0.0 if started is None or ended is None else ended - started,
        round=call.round,
        step=call.step,
        exception=exc,
        made=started is not None,
        started_at=started,
        ended_at=ended,
    )


def too_late(call: Call) -> Outcome:
    """The outcome of a call not made because the fusion's deadline had passed."""
    return failed(call, "timeout", "fusion deadline reached before the call started", None)


def stream_outcome(
    call: Call, chunks: list[AIMessageChunk], started: float, exc: BaseException | None = None
) -> Outcome:
    """The outcome of a streamed call from its chunks; on failure the partial answer is kept."""
    merged = merge_chunks(chunks)
    if exc is not None:
        outcome = error_outcome(call, exc, started)
        outcome.message = None if merged is None else as_ai_message(merged)
        return outcome
    if merged is None:
        return failed(call, "error", "the stream ended without any output", started)
    return outcome_of(call, merged, started)


def error_outcome(call: Call, exc: BaseException, started: float) -> Outcome:
    """The outcome of a call that raised `exc`."""
    if isinstance(exc, TimeoutError):
        outcome = failed(call, "timeout", "timed out", started, exc)
        outcome.usage_unknown = True  # cut off mid-request: it may have been billed
        return outcome
    return failed(call, "error", describe_error(exc), started, exc)


class FanOutState:
    """The waiting rules of a fan-out, shared by both drivers.

    Per-call timeouts, quorum and grace, and the overall deadline: it decides, the drivers
    wait and cancel.
    """

    def __init__(self, calls: list[Call], quorum: int | None, grace: float, deadline: Deadline):
        self.calls = calls
        self.quorum = quorum
        self.grace = grace
        self.deadline = deadline
        self.started: dict[int, float] = {}
        self.results: dict[int, Outcome] = {}
        self.grace_until: float | None = None
        #: Set by the sync driver: a started call it gives up on runs on in its thread.
        self.uninterruptible = False
        self.over = False
        # Worker threads start calls while the driver's thread may end the fan-out.
        self._lock = threading.Lock()

    def start(self, index: int) -> float | None:
        """Record that call `index` starts now (it may have waited for a concurrency slot).

        Returns None when it must not start: the fan-out is over or the deadline passed.
        """
        with self._lock:
            if self.over or self.deadline.expired():
                return None
            now = time.monotonic()
            self.started[index] = now
            return now

    def finish(self, index: int, outcome: Outcome) -> None:
        """Record the outcome of call `index`."""
        if index in self.results:
            return
        self.results[index] = outcome
        if self.quorum is not None and self.grace_until is None:
            successes = sum(1 for o in self.results.values() if o.ok)
            if successes >= self.quorum:
                self.grace_until = time.monotonic() + self.grace

    def unbounded(self) -> bool:
        """Whether every call is waited for until it ends: no quorum, deadline or timeout.

        The drivers then skip their waiting loop (nothing can expire or be cancelled).
        """
        return (
            self.quorum is None
            and self.deadline.at is None
            and all(call.timeout is None for call in self.calls)
        )

    def pending(self) -> list[int]:
        """Indexes of the calls without an outcome yet."""
        return [i for i in range(len(self.calls)) if i not in self.results]

    def expire(self) -> list[int]:
        """Record a timeout for every started call past its own timeout; return them."""
        now = time.monotonic()
        expired = []
        for index in self.pending():
            timeout = self.calls[index].timeout
            start = self.started.get(index)
            if timeout is not None and start is not None and now >= start + timeout:
                outcome = failed(
                    self.calls[index], "timeout", f"no answer within {timeout:g}s", start
                )
                outcome.abandoned = self.uninterruptible
                outcome.usage_unknown = True
                self.finish(index, outcome)
                expired.append(index)
        return expired

    def should_stop(self) -> bool:
        """Whether to stop waiting: all done, grace over, or deadline passed."""
        if not self.pending():
            return True
        now = time.monotonic()
        if self.grace_until is not None and now >= self.grace_until:
            return True
        return self.deadline.expired()

    def next_wait(self) -> float | None:
        """Seconds until the next reason to wake up (None: only a completion)."""
        now = time.monotonic()
        limits: list[float] = []
        if self.grace_until is not None:
            limits.append(self.grace_until - now)
        if self.deadline.at is not None:
            limits.append(self.deadline.at - now)
        for index in self.pending():
            timeout = self.calls[index].timeout
            if timeout is None:
                continue
            start = self.started.get(index)
            limits.append(QUEUE_POLL_S if start is None else start + timeout - now)
        return max(0.0, min(limits)) if limits else None

    def abandon(self) -> list[int]:
        """End the fan-out: no call starts after this.

        Records the calls still pending as `cancelled` (or `timeout` past the deadline).
        """
        with self._lock:
            self.over = True
        expired = self.deadline.expired()
        left = self.pending()
        for index in left:
            call = self.calls[index]
            if expired:
                outcome = failed(
                    call, "timeout", "fusion deadline reached", self.started.get(index)
                )
            elif index in self.started:
                outcome = failed(
                    call, "cancelled", "cancelled: quorum reached", self.started[index]
                )
            else:
                outcome = failed(call, "cancelled", "cancelled before it started", None)
            outcome.abandoned = self.uninterruptible and index in self.started
            outcome.usage_unknown = index in self.started
            self.results[index] = outcome
        return left

    def outcomes(self) -> list[Outcome]:
        """Outcomes in the order of the calls."""
        return [self.results[i] for i in range(len(self.calls))]
