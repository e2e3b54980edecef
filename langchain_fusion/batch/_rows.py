"""Input rows of a dataset run: read, validated, bad ones reported with their line number."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages


@dataclass
class Row:
    """One row to fuse.

    Attributes:
        id: The row's id, as given (a string or an integer).
        messages: The conversation to fuse.
        line: Its line in the input file (or 1-based position in the rows given).
    """

    id: str | int
    messages: list[BaseMessage]
    line: int


@dataclass
class BadRow:
    """A row that was skipped, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def id_key(value: str | int) -> str:
    """The key an id is compared by (`7` and `"7"` are different ids)."""
    return json.dumps(value)


def _messages(data: Mapping[str, Any]) -> list[BaseMessage]:
    if "messages" in data:
        raw = data["messages"]
        if not isinstance(raw, list) or not raw:
            raise ValueError('"messages" is empty: give a non-empty list of {role, content}')
        try:
            return convert_to_messages(raw)
        except Exception as exc:  # LangChain raises several types for a bad message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f'"messages" is not a list of chat messages: {first}') from None
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError('no "messages" and no non-empty "prompt": give one of them')
    return convert_to_messages([{"role": "user", "content": prompt}])


def parse_row(data: Any, line: int) -> Row:
    """Validate one decoded row.

    Raises:
        ValueError: naming what is wrong with the row and the fix.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a row is a JSON object, not {type(data).__name__}")
    if "id" not in data or data["id"] is None:
        raise ValueError('missing "id": give each row a unique string or integer id')
    row_id = data["id"]
    if isinstance(row_id, bool) or not isinstance(row_id, str | int):
        raise ValueError(f'"id" is a {type(row_id).__name__}: use a string or an integer')
    return Row(id=row_id, messages=_messages(data), line=line)


def _decoded(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, BadRow(number, f"invalid JSON ({exc.msg} at column {exc.colno})")


def read_rows(source: str | Path | Iterable[Mapping[str, Any]]) -> tuple[list[Row], list[BadRow]]:
    """The valid rows of `source` and the bad ones, each with its line number.

    Args:
        source: A `.jsonl` path (one `{"id", "messages"}` or `{"id", "prompt"}` a line), or
            rows as mappings (numbered from 1).

    A row whose id was already seen is bad: the first one is kept.
    """
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as handle:
            items = list(_decoded(handle))
    else:
        items = list(enumerate(source, start=1))
    rows: list[Row] = []
    bad: list[BadRow] = []
    seen: dict[str, int] = {}
    for number, data in items:
        if isinstance(data, BadRow):
            bad.append(data)
            continue
        try:
            row = parse_row(data, number)
        except ValueError as exc:
            bad.append(BadRow(number, str(exc)))
            continue
        key = id_key(row.id)
        if key in seen:
            bad.append(BadRow(number, f"duplicate id {key} (first on line {seen[key]})"))
            continue
        seen[key] = number
        rows.append(row)
    return rows, bad
