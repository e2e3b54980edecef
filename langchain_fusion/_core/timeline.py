"""The report's timeline: when each call of a fusion started, streamed and ended."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_fusion._core.outcome import Outcome


def _at(value: float | None, origin: float) -> float | None:
    return None if value is None else round(max(0.0, value - origin), 6)


def timeline(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """One entry per call (member, debate turn, judge call), in the order they were recorded.

    Times are seconds from the first call's start: `start_s`, `first_token_s` (streamed
    calls only), `end_s`; all None for a call that never started. `hedge` names the copy of
    a hedged member that answered.
    """
    starts = [o.started_at for o in outcomes if o.started_at is not None]
    origin = min(starts) if starts else 0.0
    entries = []
    for o in outcomes:
        hedge = o.message.response_metadata.get("hedge") if o.message is not None else None
        entries.append(
            {
                "name": o.name,
                "model": o.model,
                "role": o.role,
                "round": o.round,
                "step": o.step,
                "status": o.status,
                "start_s": _at(o.started_at, origin),
                "first_token_s": _at(o.first_token_at, origin),
                "end_s": _at(o.ended_at, origin),
                **({"hedge": hedge} if hedge else {}),
                **({"error": o.error} if o.error else {}),
            }
        )
    return entries
