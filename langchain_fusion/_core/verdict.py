"""The judge's structured outputs and a tolerant parser for judges without structured output."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError


class Verdict(BaseModel):
    """The judge's choice in best_of mode."""

    winner: str = Field(description="Label of the strongest candidate, e.g. 'A'.")
    rationale: str = Field(default="", description="One or two sentences saying why.")


class Comparison(BaseModel):
    """The judge's structured comparison of the candidates in merge mode."""

    consensus: list[str] = Field(default_factory=list, description="Points all candidates share.")
    contradictions: list[str] = Field(
        default_factory=list, description="Points where candidates disagree, and who is right."
    )
    unique_insights: list[str] = Field(
        default_factory=list, description="Valuable points only one candidate makes."
    )
    gaps: list[str] = Field(default_factory=list, description="What every candidate missed.")


#: Why a judge failed, as the report names it (`judge_failure`).
JudgeFailure = Literal[
    "not_valid_json", "schema_mismatch", "empty", "upstream_error", "timeout", "refused_label"
]
JUDGE_FAILURES: tuple[str, ...] = get_args(JudgeFailure)


class VerdictParseError(ValueError):
    """The judge's reply could not be read as the expected verdict.

    Attributes:
        reason: Why: `"empty"` (no text at all), `"not_valid_json"` (no JSON object and no
            plain verdict line), `"schema_mismatch"` (JSON without the fields asked for) or
            `"refused_label"` (a winner that is not a candidate label, or several winners).
    """

    def __init__(self, message: str, reason: JudgeFailure = "not_valid_json") -> None:
        super().__init__(message)
        self.reason: JudgeFailure = reason


_WINNER_TEXT_RE = re.compile(
    r"(?i)\b(?:winner|best|choice|chosen)\b\s*(?:candidate)?\s*(?:is|[:=])\s*"
    r"[\"'*]*(?:candidate\s+)?([A-Z]{1,2})\b[\"'*]*"
)


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in `text` (whole text, code fences, or inline), in order."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    while True:
        start = text.find("{", index)
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        except RecursionError:
            # Nested deeper than the interpreter allows: no verdict. Skip the nest whole,
            # since retrying at each inner brace would take quadratic time.
            close = text.find("}", start)
            index = close + 1 if close >= 0 else len(text)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = end
    return found


def _normalise_label(value: Any) -> str:
    label = str(value).strip().strip("\"'*[]().").strip()
    label = re.sub(r"(?i)^candidate\s+", "", label)
    return label.upper()


def parse_verdict(text: str, valid_labels: Sequence[str]) -> Verdict:
    """Read a best_of verdict from free text.

    Accepts a JSON object with `winner` (anywhere in the text, code fences included) or a
    plain `Winner: B` line. The winner must be one of `valid_labels`; several objects naming
    different winners (e.g. one echoed from an injected candidate) are refused as ambiguous.

    Raises:
        VerdictParseError: with a message suited to a corrective retry.
    """
    if not text.strip():
        raise VerdictParseError("no verdict found: the reply is empty", "empty")
    valid = {label.upper() for label in valid_labels}
    verdicts: list[Verdict] = []
    objects = json_objects(text)
    for obj in objects:
        if "winner" not in obj:
            continue
        verdicts.append(
            Verdict(winner=_normalise_label(obj["winner"]), rationale=str(obj.get("rationale", "")))
        )
    if not verdicts:
        verdicts = [Verdict(winner=m.group(1).upper()) for m in _WINNER_TEXT_RE.finditer(text)]
    if not verdicts:
        if objects:
            raise VerdictParseError(
                "no verdict found: the JSON object has no 'winner' field", "schema_mismatch"
            )
        raise VerdictParseError("no verdict found: expected a JSON object with a 'winner' field")
    winners = {v.winner for v in verdicts}
    if len(winners) > 1:
        raise VerdictParseError(
            f"ambiguous verdict: several winners named ({', '.join(sorted(winners))})",
            "refused_label",
        )
    verdict = verdicts[-1]
    if verdict.winner not in valid:
        raise VerdictParseError(
            f"winner {verdict.winner!r} is not a candidate label: use one of "
            f"{', '.join(sorted(valid))}",
            "refused_label",
        )
    return verdict


def check_verdict(verdict: Verdict, valid_labels: Sequence[str]) -> Verdict:
    """Normalise and check a verdict from structured output against the labels in play.

    Raises:
        VerdictParseError: when the winner is not one of `valid_labels`.
    """
    winner = _normalise_label(verdict.winner)
    if winner not in {label.upper() for label in valid_labels}:
        raise VerdictParseError(
            f"winner {verdict.winner!r} is not a candidate label: use one of "
            f"{', '.join(valid_labels)}",
            "refused_label",
        )
    return Verdict(winner=winner, rationale=verdict.rationale)


def parse_comparison(text: str) -> Comparison:
    """Read a merge comparison from free text (the last JSON object that validates).

    Raises:
        VerdictParseError: when no object in the text is a comparison.
    """
    if not text.strip():
        raise VerdictParseError("no comparison found: the reply is empty", "empty")
    keys = set(Comparison.model_fields)
    objects = json_objects(text)
    for obj in reversed(objects):
        if keys & set(obj):
            try:
                return Comparison.model_validate({k: _as_list(obj.get(k)) for k in keys})
            except ValidationError:
                continue
    raise VerdictParseError(
        "no comparison found: expected a JSON object with 'consensus', 'contradictions', "
        "'unique_insights' and 'gaps' lists of strings",
        "schema_mismatch" if objects else "not_valid_json",
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [str(value)]
