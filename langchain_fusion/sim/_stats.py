"""Per-model accounting of what the simulator served, safe to read from any thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from pydantic import BaseModel, Field


class ModelStats(BaseModel):
    """What one model served since the simulator started (or was reset).

    Billed figures (`prompt_tokens`, `completion_tokens`, `total_tokens`, `cost`) are exactly
    the usage sent to clients: a non-streaming 200 body, or a stream's usage chunk. Tokens of
    streams that ended before their usage chunk are in `unbilled_completion_tokens`.
    """

    requests: int = 0
    """Chat-completion requests received (faulted ones included)."""

    stream_requests: int = 0
    """Of `requests`, how many asked to stream."""

    completed: int = 0
    """Replies delivered in full (non-streaming bodies and streams that reached `[DONE]`
    without a fault)."""

    streams_completed: int = 0
    """Of `completed`, how many were streams."""

    abandoned: int = 0
    """Requests whose client disconnected before the reply was complete (during a hang, the
    wait for the first token, or a stream)."""

    in_flight: int = 0
    """Requests being served now."""

    faults: dict[str, int] = Field(default_factory=dict)
    """Faults injected, by kind."""

    prompt_tokens: int = 0
    """Prompt tokens billed."""

    completion_tokens: int = 0
    """Completion tokens billed."""

    total_tokens: int = 0
    """`prompt_tokens + completion_tokens`."""

    cost: float = 0.0
    """USD billed (sum of the `usage.cost` sent, rounded to 12 decimals)."""

    unbilled_completion_tokens: int = 0
    """Completion tokens streamed in replies that never reached their usage chunk."""

    images: int = 0
    """Image parts received."""

    tool_calls: int = 0
    """Tool calls in billed replies."""

    request_times: list[float] = Field(default_factory=list)
    """When each request arrived (`time.time()`), in order: to check rate limits over any
    window. Left empty in `totals`."""

    def most_requests_within(self, window_s: float) -> int:
        """The most requests that arrived within any `window_s` seconds (a half-open window)."""
        return most_within(self.request_times, window_s)


def most_within(times: Iterable[float], window_s: float) -> int:
    """The most of `times` inside any half-open window of `window_s` seconds."""
    ordered = sorted(times)
    most = end = 0
    for start, first in enumerate(ordered):
        while end < len(ordered) and ordered[end] < first + window_s:
            end += 1
        most = max(most, end - start)
    return most


class Stats(BaseModel):
    """Everything the simulator served: per model, totals, and rejected requests."""

    models: dict[str, ModelStats] = Field(default_factory=dict)
    """Per model name, every model of the scenario."""

    totals: ModelStats = Field(default_factory=ModelStats)
    """The sum over all models."""

    rejected: int = 0
    """Requests refused before reaching a model (bad body, unknown model)."""


_SUMMED = (
    "requests",
    "stream_requests",
    "completed",
    "streams_completed",
    "abandoned",
    "in_flight",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "unbilled_completion_tokens",
    "images",
    "tool_calls",
)


class Recorder:
    """The simulator's mutable counters; every method takes a lock."""

    def __init__(self, model_names: Iterable[str]) -> None:
        self._names = list(model_names)
        self._lock = threading.Lock()
        self._models: dict[str, ModelStats] = {}
        self._rejected = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter and request number (faults count requests from 1 again).

        Requests in flight stay counted in `in_flight` and are accounted when they finish.
        """
        with self._lock:
            old = self._models
            self._models = {
                name: ModelStats(in_flight=old[name].in_flight if name in old else 0)
                for name in self._names
            }
            self._rejected = 0

    def reject(self) -> None:
        """Count a request refused before reaching a model."""
        with self._lock:
            self._rejected += 1

    def start(self, model: str, stream: bool, images: int) -> int:
        """Count a new request; returns its 1-based number for `model`."""
        with self._lock:
            row = self._models[model]
            row.requests += 1
            row.request_times.append(time.time())
            row.in_flight += 1
            row.stream_requests += int(stream)
            row.images += images
            return row.requests

    def fault(self, model: str, kind: str) -> None:
        """Count an injected fault."""
        with self._lock:
            faults = self._models[model].faults
            faults[kind] = faults.get(kind, 0) + 1

    def bill(
        self, model: str, prompt_tokens: int, completion_tokens: int, cost: float, tool_calls: int
    ) -> None:
        """Count the usage sent to the client."""
        with self._lock:
            row = self._models[model]
            row.prompt_tokens += prompt_tokens
            row.completion_tokens += completion_tokens
            row.total_tokens += prompt_tokens + completion_tokens
            row.cost = round(row.cost + cost, 12)
            row.tool_calls += tool_calls

    def finish(
        self,
        model: str,
        *,
        completed: bool = False,
        stream: bool = False,
        abandoned: bool = False,
        unbilled: int = 0,
    ) -> None:
        """Close a request: delivered in full, abandoned by the client, or neither."""
        with self._lock:
            row = self._models[model]
            row.in_flight -= 1
            row.completed += int(completed)
            row.streams_completed += int(completed and stream)
            row.abandoned += int(abandoned)
            row.unbilled_completion_tokens += unbilled

    def snapshot(self) -> Stats:
        """A copy of the counters, with totals."""
        with self._lock:
            models = {name: row.model_copy(deep=True) for name, row in self._models.items()}
            rejected = self._rejected
        totals = ModelStats()
        for row in models.values():
            for name in _SUMMED:
                setattr(totals, name, getattr(totals, name) + getattr(row, name))
            totals.cost = round(totals.cost + row.cost, 12)
            for kind, count in row.faults.items():
                totals.faults[kind] = totals.faults.get(kind, 0) + count
        return Stats(models=models, totals=totals, rejected=rejected)
