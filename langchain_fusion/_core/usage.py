"""Usage and cost arithmetic: every token of every call counted once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.messages.ai import UsageMetadata, add_usage

from langchain_fusion._core.outcome import Outcome

_EMPTY: UsageMetadata = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def message_usage(message: AIMessage | None) -> UsageMetadata | None:
    """The usage a message reports, or None."""
    if message is None:
        return None
    return message.usage_metadata


def message_cost(message: AIMessage | None) -> float | None:
    """The provider-reported cost in USD of the call that produced `message`, if any.

    OpenRouter reports `usage.cost`; LangChain clients surface it under different keys.
    """
    if message is None:
        return None
    meta = message.response_metadata or {}
    for holder in (meta, meta.get("token_usage") or {}, meta.get("usage") or {}):
        if isinstance(holder, dict):
            cost = holder.get("cost")
            if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                return float(cost)
    return None


def usage_unknown(outcome: Outcome) -> bool:
    """Whether the call may have cost tokens its outcome does not show.

    It was given up after its request went out, or a hedge's losing copy was (both:
    `Outcome.usage_unknown`), or it succeeded without reporting usage.
    """
    return (
        outcome.usage_unknown
        or outcome.abandoned
        or (outcome.ok and message_usage(outcome.message) is None)
    )


def sum_usage(usages: Iterable[UsageMetadata | None]) -> UsageMetadata:
    """Sum usage dicts (input, output, total and their details) with LangChain's `add_usage`."""
    total: UsageMetadata = dict(_EMPTY)  # type: ignore[assignment]
    for usage in usages:
        if usage:
            total = add_usage(total, usage)
    return total


def sum_cost(costs: Iterable[float | None]) -> float | None:
    """Sum the known costs; None when no cost is known at all."""
    known = [c for c in costs if c is not None]
    return round(sum(known), 12) if known else None


class Ledger:
    """Every call a fusion made, in order: the single source of its usage and cost."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def record(self, outcome: Outcome) -> Outcome:
        """Add one call's outcome; returns it for chaining."""
        self.outcomes.append(outcome)
        return outcome

    def extend(self, outcomes: Iterable[Outcome]) -> None:
        """Add several calls' outcomes."""
        for outcome in outcomes:
            self.record(outcome)

    def usage(self) -> UsageMetadata:
        """Total usage of all calls."""
        return sum_usage(message_usage(o.message) for o in self.outcomes)

    def cost(self) -> float | None:
        """Total provider-reported cost; None when no call reported one."""
        return sum_cost(message_cost(o.message) for o in self.outcomes)

    def cost_complete(self) -> bool:
        """Whether the cost is known in full.

        Every call that reported usage also reported its cost, and no call's usage is
        unknown (see `usage_unknown`).
        """
        return not any(usage_unknown(o) for o in self.outcomes) and all(
            message_cost(o.message) is not None for o in self.outcomes if message_usage(o.message)
        )

    def for_name(self, name: str, role: str = "member") -> list[Outcome]:
        """The outcomes of one member (or of the judge), in call order."""
        return [o for o in self.outcomes if o.name == name and o.role == role]

    def usage_by_model(self) -> dict[str, dict[str, Any]]:
        """Usage, cost and call count per model identifier, of the calls made."""
        table: dict[str, dict[str, Any]] = {}
        for outcome in self.outcomes:
            if not outcome.made:
                continue
            row = table.setdefault(
                outcome.model,
                {
                    "calls": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "total_tokens": 0,
                    "cost_usd": None,
                },
            )
            row["calls"] += 1
            usage = message_usage(outcome.message)
            if usage:
                row["input_tokens"] += usage.get("input_tokens", 0)
                row["output_tokens"] += usage.get("output_tokens", 0)
                row["total_tokens"] += usage.get("total_tokens", 0)
            row["cost_usd"] = sum_cost([row["cost_usd"], message_cost(outcome.message)])
        return table
