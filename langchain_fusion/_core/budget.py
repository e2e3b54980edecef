"""Cost estimates and budgets: prices per model, worst cases per phase.

Token counts before a call are estimated at four characters per token (plus a few per
message), a provider-neutral rule of thumb; output is bounded by `max_tokens`, or assumed to
be `DEFAULT_OUTPUT_TOKENS` without a cap. Prices come from the user's table, else from what
the provider reported for earlier calls of the same model in this fusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_fusion._core.config import ModelPrice
from langchain_fusion._core.fencing import message_text
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.usage import message_cost, message_usage

#: Output tokens assumed for a call without a `max_tokens` cap.
DEFAULT_OUTPUT_TOKENS = 1024
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


def estimate_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimated input tokens of `messages`: four characters a token, plus per message."""
    return sum(len(message_text(m)) // _CHARS_PER_TOKEN + _TOKENS_PER_MESSAGE for m in messages)


class Pricing:
    """Prices per model: the user's table, else learned from reported costs."""

    def __init__(self, prices: Mapping[str, ModelPrice], outcomes: Sequence[Outcome] = ()):
        self.prices = dict(prices)
        self.outcomes = outcomes

    def price(self, model: str) -> ModelPrice | None:
        """The price of `model`, or None when unknown."""
        if model in self.prices:
            return self.prices[model]
        for outcome in self.outcomes:
            cost, usage = message_cost(outcome.message), message_usage(outcome.message)
            if outcome.model == model and cost is not None and usage and usage["total_tokens"]:
                per_token = cost / usage["total_tokens"]
                return ModelPrice(prompt=per_token, completion=per_token)
        return None

    def call(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """The cost of one call, or None when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        return input_tokens * price.prompt + output_tokens * price.completion

    def unpriced(self) -> set[str]:
        """Models of calls so far that reported usage but neither a cost nor a price."""
        return {
            o.model
            for o in self.outcomes
            if message_usage(o.message)
            and message_cost(o.message) is None
            and self.price(o.model) is None
        }

    def spent(self) -> float | None:
        """What the calls so far cost: reported costs, else priced usage; None if unknown."""
        total = 0.0
        for outcome in self.outcomes:
            cost = message_cost(outcome.message)
            usage = message_usage(outcome.message)
            if cost is None and usage:
                cost = self.call(outcome.model, usage["input_tokens"], usage["output_tokens"])
                if cost is None:
                    return None
            total += cost or 0.0
        return total


def phase_cost(
    pricing: Pricing, calls: Sequence[tuple[str, int]], max_tokens: int | None
) -> tuple[float | None, list[str]]:
    """Worst-case cost of a phase of `(model, input_tokens)` calls.

    Returns:
        The cost (None when a price is unknown) and the models without a price.
    """
    output = max_tokens or DEFAULT_OUTPUT_TOKENS
    total = 0.0
    unknown: list[str] = []
    for model, input_tokens in calls:
        cost = pricing.call(model, input_tokens, output)
        if cost is None:
            unknown.append(model)
        else:
            total += cost
    return (None if unknown else total), sorted(set(unknown))


def estimate_fusion(
    *,
    mode: str,
    members: Sequence[str],
    judge: str | Sequence[str],
    input_tokens: int,
    pricing: Pricing,
    max_tokens: int | None,
    debate_rounds: int,
    judge_passes: int = 1,
) -> dict[str, Any]:
    """Worst-case cost of a whole fusion, phase by phase, before running it.

    `judge` is the judge's model, or every model of a panel (the first writes the answer).
    Every judge of a panel picks (best_of, vote) or compares (merge) at every one of
    `judge_passes` passes; a corrective retry, made only for an unreadable reply, is not
    counted.
    """
    output = max_tokens or DEFAULT_OUTPUT_TOKENS
    n = len(members)
    # The judge reads the conversation plus every candidate; a debater its peers too.
    judged_input = input_tokens + n * output + 300
    phases: list[tuple[str, list[tuple[str, int]]]] = [
        ("answers", [(m, input_tokens) for m in members])
    ]
    if mode == "debate":
        for round_ in range(1, debate_rounds + 1):
            phases.append((f"round {round_}", [(m, judged_input) for m in members]))
    judges = [judge] if isinstance(judge, str) else list(judge)
    verdicts = [(model, judged_input) for model in judges] * judge_passes
    writer = [(judges[0], judged_input)]
    judge_calls = {"best_of": verdicts, "vote": verdicts, "merge": verdicts + writer}
    phases.append(("judge", judge_calls.get(mode, writer)))
    rows = []
    for name, calls in phases:
        cost, unknown = phase_cost(pricing, calls, max_tokens)
        rows.append({"phase": name, "calls": len(calls), "cost_usd": cost, "unpriced": unknown})
    costs = [row["cost_usd"] for row in rows]
    return {
        "mode": mode,
        "input_tokens": input_tokens,
        "output_tokens_per_call": output,
        "phases": rows,
        "total_usd": None if any(c is None for c in costs) else sum(costs),
    }
