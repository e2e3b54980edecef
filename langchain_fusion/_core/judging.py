"""Many verdicts made one: orders shown per pass, aggregation, agreement, failures.

A judge is a model with a model's flaws: it may favour the first candidate shown, its own
model's answer, or answer off-protocol. Each pass shows the candidates in another order
(`pass_orders`); every judge of a panel judges every pass; `decide` takes the majority of
the valid verdicts and breaks a tie by agreement between the answers (`most_agreed`), the
rule the fallback uses too. Pure functions: the runtime makes the calls.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_fusion._core.agreement import normalise_answer
from langchain_fusion._core.verdict import Comparison, JudgeFailure

#: Characters of a failed judge's raw reply kept in the report.
RAW_LIMIT = 500

#: How the final winner was found: a strict majority of the valid verdicts, or a tie
#: broken by agreement between the answers.
VerdictRule = Literal["majority", "tie_most_agreed"]

#: The fallback's rule: the answer most other answers agree with, ties by pool order.
FALLBACK_RULE = "most_agreed"

Agree = Callable[[Sequence[str]], bool]


def truncate(text: str | None, limit: int = RAW_LIMIT) -> str | None:
    """`text` cut to `limit` characters (marked with an ellipsis), None stays None."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def pass_orders(first: Sequence[str], passes: int) -> list[list[str]]:
    """The orders the candidates are shown in: one per pass (and per judge of a panel).

    Pass 1 is `first` (the per-call shuffle), pass 2 its reverse, and each later pass
    `first` rotated by one more place (pass 3 by one, pass 4 by two...).
    """
    order = list(first)
    orders = [order]
    for index in range(1, passes):
        if index == 1:
            orders.append(order[::-1])
        else:
            shift = (index - 1) % len(order) if order else 0
            orders.append(order[shift:] + order[:shift])
    return orders


def agreement_counts(
    names: Sequence[str], texts: Mapping[str, str], agree: Agree
) -> dict[str, int]:
    """How many other answers each answer agrees with (pairwise, by `agree`)."""
    counts = dict.fromkeys(names, 0)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if agree([texts[first], texts[second]]):
                counts[first] += 1
                counts[second] += 1
    return counts


def most_agreed(among: Sequence[str], pool_order: Sequence[str], counts: Mapping[str, int]) -> str:
    """Of `among`, the answer most others agree with; ties go to the first in pool order."""
    rank = {name: index for index, name in enumerate(pool_order)}
    return min(among, key=lambda name: (-counts.get(name, 0), rank.get(name, len(rank))))


@dataclass
class Failure:
    """Why a judge call (after its corrective retry) gave no usable result.

    Attributes:
        reason: One of `JUDGE_FAILURES`.
        error: A one-line description.
        raw: The judge's reply, when it sent one.
    """

    reason: JudgeFailure
    error: str
    raw: str | None = None

    def fields(self) -> dict[str, Any]:
        """The report's `judge_failure`, `judge_error` and `judge_raw` (truncated)."""
        return {
            "judge_failure": self.reason,
            "judge_error": self.error,
            "judge_raw": truncate(self.raw),
        }


@dataclass
class JudgeVerdict:
    """One judge's verdict at one pass, as the report lists it.

    Attributes:
        judge: The judge's name (`judge`, `judge-2`...).
        model: The judge's model identifier.
        pass_index: The pass, from 1.
        order: The candidates as shown, by member name (label `A` first).
        winner: The member chosen, when the verdict is valid or excluded.
        status: `"ok"`, `"excluded"` (the judge chose its own model's answer and
            `judge_self_vote` is `"exclude"`) or the failure's reason.
        failure: Why the verdict failed, if it did.
    """

    judge: str
    model: str
    pass_index: int
    order: list[str]
    winner: str | None = None
    status: str = "ok"
    failure: Failure | None = field(default=None)

    @property
    def valid(self) -> bool:
        """Whether the verdict counts."""
        return self.status == "ok" and self.winner is not None

    def to_dict(self) -> dict[str, Any]:
        """The report's entry."""
        entry: dict[str, Any] = {
            "judge": self.judge,
            "model": self.model,
            "pass": self.pass_index,
            "order": list(self.order),
            "winner": self.winner,
            "status": self.status,
        }
        if self.failure is not None:
            entry["error"] = self.failure.error
            entry["raw"] = truncate(self.failure.raw)
        return entry


@dataclass(frozen=True)
class Decision:
    """The winner of several verdicts.

    Attributes:
        winner: The member chosen.
        rule: `"majority"` or `"tie_most_agreed"`.
        agreement: Share of the valid verdicts that chose `winner`.
    """

    winner: str
    rule: VerdictRule
    agreement: float


def decide(
    verdicts: Sequence[JudgeVerdict], pool_order: Sequence[str], counts: Mapping[str, int]
) -> Decision | None:
    """The majority of the valid verdicts, or None when no verdict is valid.

    A tie goes to the tied answer most other answers agree with, then to pool order.
    """
    tally = Counter(v.winner for v in verdicts if v.valid and v.winner is not None)
    if not tally:
        return None
    top = max(tally.values())
    tied = [name for name in tally if tally[name] == top]
    rule: VerdictRule = "majority" if len(tied) == 1 else "tie_most_agreed"
    winner = tied[0] if len(tied) == 1 else most_agreed(tied, pool_order, counts)
    return Decision(winner, rule, round(tally[winner] / sum(tally.values()), 6))


def main_failure(failures: Sequence[Failure]) -> Failure | None:
    """The failure that stands for several: the most common reason, the first of it."""
    if not failures:
        return None
    reasons = Counter(f.reason for f in failures)
    top = max(reasons.values())
    return next(f for f in failures if reasons[f.reason] == top)


_LABEL_REF_RE = re.compile(
    r"(?P<word>\b[Cc]andidates?\s+)(?P<label>[A-Z]{1,2})\b|^(?P<lead>[A-Z]{1,2})(?=:)"
)


def relabel(text: str, mapping: Mapping[str, str]) -> str:
    """`text` with candidate labels translated by `mapping` (old label to new).

    Only unambiguous references are translated: `Candidate X` (as the comparison task asks)
    and an `X:` that starts the text; a bare capital letter may be a word ("A plan...").
    """

    def swap(match: re.Match[str]) -> str:
        if match.group("lead") is not None:
            return mapping.get(match.group("lead"), match.group("lead"))
        label = match.group("label")
        return match.group("word") + mapping.get(label, label)

    return _LABEL_REF_RE.sub(swap, text)


def union_comparisons(comparisons: Sequence[Comparison]) -> Comparison | None:
    """Every point of every comparison, each once (compared normalised), in first-seen order."""
    if not comparisons:
        return None
    merged: dict[str, list[str]] = {}
    for name in Comparison.model_fields:
        seen: set[str] = set()
        points: list[str] = []
        for comparison in comparisons:
            for point in getattr(comparison, name):
                key = normalise_answer(point)
                if key not in seen:
                    seen.add(key)
                    points.append(point)
        merged[name] = points
    return Comparison.model_validate(merged)


def relabel_comparison(comparison: Comparison, mapping: Mapping[str, str]) -> Comparison:
    """`comparison` with its candidate labels translated by `mapping` (see `relabel`)."""
    return Comparison.model_validate(
        {
            name: [relabel(point, mapping) for point in getattr(comparison, name)]
            for name in Comparison.model_fields
        }
    )
