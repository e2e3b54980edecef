"""Per-model rate limits, shared by every fusion in the process.

One `ModelLimiter` per model id, in a process-wide registry that the fusions' `rate_limits`
settings fill (`register`). Before a call to a limited model starts, it waits for a slot:
async calls sleep on their loop, sync calls in their thread; both ask the same limiter, so
async and sync fusions, and fusions on different loops, share one budget. A 429 carrying
`Retry-After` pauses the model for every caller: when the call fails with it, and as soon as
a slug member's HTTP client (`_http.send`) receives one it is about to retry.

The counting is `limits`' moving window over its thread-safe memory storage: at most `rpm`
requests (and `tpm` tokens) start in any window of `window_s + margin_s` seconds, so that
a provider counting them on arrival, some time later, sees at most `rpm` in its window.
`aiolimiter` was the other candidate: it is async only (sync fusions wait in threads
without a loop) and a leaky bucket, which admits up to twice its rate within one window
after a burst.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from limits import RateLimitItem
from limits.limits import Granularity
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from langchain_fusion._core.budget import estimate_tokens
from langchain_fusion._core.config import RateLimit
from langchain_fusion._http import ON_RATE_LIMITED, parse_retry_after
from langchain_fusion._runtime.steps import Call

T = TypeVar("T")

#: Longest single sleep while waiting: a pause set by a 429 meanwhile is seen this soon.
_MAX_NAP_S = 0.25


class NoSlotError(TimeoutError):
    """No rate-limit slot came free before the call's timeout or the fusion's deadline."""


class ModelLimiter:
    """The rate limit of one model: admission and the pause a 429 sets.

    Args:
        model: The model id it limits.
        limit: Its requests and tokens per window.
    """

    def __init__(self, model: str, limit: RateLimit) -> None:
        self.model = model
        self.limit = limit
        self._requests = _item(limit.rpm, limit, "requests")
        self._tokens = _item(limit.tpm, limit, "tokens")
        self._window = MovingWindowRateLimiter(_storage())
        self._lock = threading.Lock()
        self.paused_until = 0.0
        #: Calls admitted, and 429s seen, since the limiter was made.
        self.admitted = 0
        self.throttled = 0

    def try_admit(self, tokens: int) -> float:
        """Take a slot for a call of `tokens` tokens if one is free now.

        Returns:
            0.0 when admitted, else the seconds to wait before asking again.
        """
        now = time.time()
        if now < self.paused_until:
            return self.paused_until - now
        cost = tokens if self._tokens is None else max(1, min(tokens, self._tokens.amount))
        # Both counts are checked before either is taken, under one lock, so that a call
        # refused for tokens does not use up a request.
        with self._lock:
            waits = [
                self._wait(item, n)
                for item, n in ((self._requests, 1), (self._tokens, cost))
                if item is not None
            ]
            if any(waits):
                return max(max(waits), 0.001)
            for item, n in ((self._requests, 1), (self._tokens, cost)):
                if item is not None and not self._window.hit(item, self.model, cost=n):
                    return 0.001  # lost a race with another process-local caller
            self.admitted += 1
        return 0.0

    def _wait(self, item: _Window, cost: int) -> float:
        if self._window.test(item, self.model, cost=cost):
            return 0.0
        reset = self._window.get_window_stats(item, self.model).reset_time
        return max(0.001, reset - time.time())

    def pause(self, seconds: float) -> None:
        """Admit no call to this model for `seconds` (a provider's `Retry-After`)."""
        with self._lock:
            self.throttled += 1
            self.paused_until = max(self.paused_until, time.time() + seconds)

    def acquire(self, tokens: int, within: float | None, given_up: Callable[[], bool]) -> None:
        """Wait in this thread for a slot.

        Raises:
            NoSlotError: when none came free within `within` seconds, or `given_up()` said
                the call is no longer wanted.
        """
        end = None if within is None else time.monotonic() + within
        while (wait := self.try_admit(tokens)) > 0:
            if given_up():
                raise NoSlotError(f"gave up waiting for a rate-limit slot of {self.model}")
            nap = _nap(wait, end, self.model)
            time.sleep(nap)

    async def aacquire(self, tokens: int) -> None:
        """Wait on the running loop for a slot (the caller's timeout cancels the wait)."""
        while (wait := self.try_admit(tokens)) > 0:
            await asyncio.sleep(min(wait, _MAX_NAP_S))


class _Window(RateLimitItem):
    """`amount` per `multiples` milliseconds.

    `limits` counts whole seconds at the finest, and windows here are float seconds plus a
    margin; its memory storage takes float seconds as expiry.
    """

    GRANULARITY = Granularity(1, "fusion-millisecond")

    def get_expiry(self) -> int:
        return self.multiples / 1000  # type: ignore[return-value]


def _item(amount: int | None, limit: RateLimit, what: str) -> _Window | None:
    if amount is None:
        return None
    span = max(1, round((limit.window_s + limit.margin_s) * 1000))
    return _Window(amount, span, namespace=f"fusion-{what}")


def _nap(wait: float, end: float | None, model: str) -> float:
    nap = min(wait, _MAX_NAP_S)
    if end is not None:
        left = end - time.monotonic()
        if left <= 0:
            raise NoSlotError(f"no rate-limit slot of {model} came free in time")
        nap = min(nap, left)
    return nap


_STORAGE: list[MemoryStorage] = []  # made on first use: it starts a timer thread
_REGISTRY: dict[str, ModelLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def register(rate_limits: Mapping[str, RateLimit]) -> None:
    """Make the limiters of `rate_limits` known to every fusion in the process.

    A model already limited keeps its limiter (and its counts) when the figures are the same;
    other figures replace it, and the stricter of the two applies to each count.
    """
    if not rate_limits:
        return
    with _REGISTRY_LOCK:
        for model, limit in rate_limits.items():
            current = _REGISTRY.get(model)
            if current is None:
                _REGISTRY[model] = ModelLimiter(model, limit)
            elif current.limit != limit:
                _REGISTRY[model] = ModelLimiter(model, _stricter(current.limit, limit))


def _stricter(a: RateLimit, b: RateLimit) -> RateLimit:
    def per_second(x: RateLimit, n: int | None) -> float:
        return float("inf") if n is None else n / x.window_s

    rpm = a if per_second(a, a.rpm) <= per_second(b, b.rpm) else b
    tpm = a if per_second(a, a.tpm) <= per_second(b, b.tpm) else b
    if rpm is tpm:
        return rpm
    # Different windows cannot be merged into one item: keep the stricter request limit's
    # window and scale the token limit to it.
    tokens = None if tpm.tpm is None else max(1, int(tpm.tpm * rpm.window_s / tpm.window_s))
    return RateLimit(
        rpm=rpm.rpm, tpm=tokens, window_s=rpm.window_s, margin_s=max(a.margin_s, b.margin_s)
    )


def _storage() -> MemoryStorage:
    if not _STORAGE:
        _STORAGE.append(MemoryStorage())
    return _STORAGE[0]


def limiter_for(model: str) -> ModelLimiter | None:
    """The limiter of `model`, or None when it is not limited."""
    return _REGISTRY.get(model)


def clear() -> None:
    """Forget every limiter (tests; a process that reconfigures from scratch)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()
        for storage in _STORAGE:
            storage.reset()


def observe_failure(model: str, exc: BaseException) -> None:
    """Pause `model` for everyone when `exc` is a 429 that carries a `Retry-After`.

    Reads `ProviderError` (`status_code`, `retry_after`) and the OpenAI SDK's errors
    (`status_code`, `response.headers`).
    """
    limiter = _REGISTRY.get(model)
    if limiter is None or getattr(exc, "status_code", None) != 429:
        return
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        seconds = parse_retry_after(headers) if headers is not None else None
    if isinstance(seconds, int | float) and seconds > 0:
        limiter.pause(float(seconds))


@contextmanager
def _listening(limiter: ModelLimiter | None) -> Iterator[None]:
    """While the block runs, a 429 the HTTP client retries pauses `limiter`'s model at once.

    The previous listener is put back by value, not by token, so that a stream's steps may
    enter and leave it from the generator's own frames.
    """
    previous = ON_RATE_LIMITED.get()
    ON_RATE_LIMITED.set(None if limiter is None else limiter.pause)
    try:
        yield
    finally:
        ON_RATE_LIMITED.set(previous)


def call_tokens(call: Call) -> int:
    """Tokens a call counts against `tpm`: its estimated prompt plus its `max_tokens`."""
    return estimate_tokens(call.messages) + (call.max_tokens or 0)


async def ainvoke_in_slot(call: Call, make: Callable[[], Awaitable[T]]) -> T:
    """Await `make()` once the call's model has a free slot (at once when not limited).

    The wait runs inside the caller's timeout and deadline, which cancel it.
    """
    limiter = _REGISTRY.get(call.member.model)
    if limiter is None:
        return await make()
    await limiter.aacquire(call_tokens(call))
    try:
        with _listening(limiter):
            return await make()
    except Exception as exc:
        observe_failure(call.member.model, exc)
        raise


def invoke_in_slot(
    call: Call, make: Callable[[], T], within: float | None, given_up: Callable[[], bool]
) -> T:
    """Run `make()` once the call's model has a free slot (at once when not limited).

    Raises:
        NoSlotError: (a `TimeoutError`) when no slot came free within `within` seconds.
    """
    limiter = _REGISTRY.get(call.member.model)
    if limiter is None:
        return make()
    limiter.acquire(call_tokens(call), within, given_up)
    try:
        with _listening(limiter):
            return make()
    except Exception as exc:
        observe_failure(call.member.model, exc)
        raise


async def astream_in_slot(call: Call, stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """`stream`, started once the call's model has a free slot; a 429 pauses the model."""
    limiter = _REGISTRY.get(call.member.model)
    try:
        if limiter is not None:
            await limiter.aacquire(call_tokens(call))
        while True:
            with _listening(limiter):
                try:
                    item = await anext(stream)
                except StopAsyncIteration:
                    break
            yield item
    except Exception as exc:
        observe_failure(call.member.model, exc)
        raise
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def stream_in_slot(call: Call, stream: Iterator[T], within: float | None) -> Iterator[T]:
    """`stream`, started once the call's model has a free slot; a 429 pauses the model.

    Raises:
        NoSlotError: when no slot came free within `within` seconds.
    """
    limiter = _REGISTRY.get(call.member.model)
    try:
        if limiter is not None:
            limiter.acquire(call_tokens(call), within, lambda: False)
        while True:
            with _listening(limiter):
                try:
                    item = next(stream)
                except StopIteration:
                    break
            yield item
    except Exception as exc:
        observe_failure(call.member.model, exc)
        raise
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
