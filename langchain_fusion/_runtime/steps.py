"""The steps a mode runner asks the driver to perform, and the fusion's clock.

Mode runners are generators: they yield a `Call` or a `FanOut`, the driver (async or sync)
performs it and sends back the `Outcome`(s). All fusion logic stays in the runners and the
core; the drivers only do I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata

from langchain_fusion._core.outcome import Role
from langchain_fusion._runtime.members import Member


@dataclass
class Call:
    """One model call.

    Attributes:
        member: Who is called.
        messages: The input messages.
        role: `"member"` or `"judge"`.
        step: What the call is for, recorded in its outcome.
        round: Debate round of the call.
        timeout: Seconds the call may take (bounded further by the fusion's deadline).
        stream: The call's tokens may be streamed to the caller as the fused answer.
        stop: Stop sequences, given to the calls whose text becomes the fused answer.
        max_tokens: Cap on the call's output tokens (`max_tokens` keyword), if set.
    """

    member: Member
    messages: list[BaseMessage]
    role: Role = "member"
    step: str = "answer"
    round: int = 0
    timeout: float | None = None
    stream: bool = False
    stop: list[str] | None = None
    max_tokens: int | None = None

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the model call."""
        kwargs: dict[str, Any] = {}
        if self.stop:
            kwargs["stop"] = self.stop
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        return kwargs


@dataclass
class FanOut:
    """Several calls run concurrently, with quorum and grace.

    Attributes:
        calls: The calls, run at once (bounded by `max_concurrency`).
        quorum: Stop waiting `grace` seconds after this many calls succeeded.
        grace: Seconds to wait for the rest once `quorum` calls succeeded.
    """

    calls: list[Call]
    quorum: int | None = None
    grace: float = 0.0


@dataclass
class FusionResult:
    """What a mode runner returns.

    Attributes:
        message: The fused answer (its usage and metadata are set by the adapter).
        report: The fusion report.
        usage: Total usage of every call.
        streamed: True when `message` is the output of a call made with `stream=True`,
            whose tokens a streaming driver already sent.
        answers: The members' latest answers, by name.
    """

    message: AIMessage
    report: dict[str, Any]
    usage: UsageMetadata
    streamed: bool = False
    answers: dict[str, AIMessage] = field(default_factory=dict)


@dataclass
class Deadline:
    """The fusion's overall deadline on a monotonic clock."""

    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float | None:
        """Monotonic time of the deadline, or None."""
        return None if self.seconds is None else self.started + self.seconds

    def remaining(self) -> float | None:
        """Seconds left, never negative; None without a deadline."""
        at = self.at
        return None if at is None else max(0.0, at - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        at = self.at
        return at is not None and time.monotonic() >= at

    def bound(self, timeout: float | None) -> float | None:
        """The smaller of `timeout` and the time left."""
        left = self.remaining()
        if timeout is None:
            return left
        return timeout if left is None else min(timeout, left)

    def elapsed(self) -> float:
        """Seconds since the fusion started."""
        return time.monotonic() - self.started
