"""What one model call produced: the unit the runtime hands to the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from langchain_core.messages import AIMessage

Status = Literal["ok", "error", "timeout", "cancelled", "skipped"]
Role = Literal["member", "judge"]


@dataclass
class Outcome:
    """The result of one call to a pool member or to the judge.

    Attributes:
        name: The member's unique name in the pool (or `"judge"`).
        model: The model identifier (e.g. `"gpt-4o"`), used to group usage.
        role: `"member"` or `"judge"`.
        status: `"ok"`, `"error"`, `"timeout"`, `"cancelled"` or `"skipped"`.
        message: The answer, when there is one (also a partial one kept from a failure).
        error: A one-line description of what went wrong, free of secrets.
        latency_s: Seconds from the start of the call to its end.
        round: The debate round (0 for the first answers and every other mode).
        step: What the call was for (`"answer"`, `"revise"`, `"verdict"`, `"compare"`,
            `"synthesis"`, ...).
        abandoned: The call was given up while its request was still running and could not
            be interrupted (sync fusions): the provider may bill tokens this report lacks.
        usage_unknown: The call's usage may be missing: it was given up after its request
            went out (timeout, quorum, deadline), when the provider may have billed it.
        made: Whether the call was made; False when it was skipped, or cancelled or out of
            time before it started. Only calls made count in the report's `calls`.
        exception: The exception raised, kept for `raise ... from`.
        started_at: When the call started (`time.monotonic()`); None if it never started.
        first_token_at: When a streamed call's first token arrived (None: not streamed).
        ended_at: When the call ended (`time.monotonic()`); None if it never started.
    """

    name: str
    model: str
    role: Role
    status: Status
    message: AIMessage | None = None
    error: str | None = None
    latency_s: float = 0.0
    round: int = 0
    step: str = "answer"
    abandoned: bool = False
    usage_unknown: bool = False
    made: bool = True
    exception: BaseException | None = field(default=None, repr=False)
    started_at: float | None = field(default=None, repr=False)
    first_token_at: float | None = field(default=None, repr=False)
    ended_at: float | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the call produced a usable answer."""
        return self.status == "ok" and self.message is not None


def describe_error(exc: BaseException) -> str:
    """A one-line, secret-free description of an exception: its type and first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:500] if text else name
