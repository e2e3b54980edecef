"""Collecting everything a fusion shows, to search it for API keys (shared by the secrets
tests of `tests/reliability` and `tests/llamaindex`)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from langchain_fusion import FusionError


class Texts:
    """Everything a fusion showed, to search for `keys` (`{owner: key}`)."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, value: Any) -> None:
        self.items.append((where, value if isinstance(value, str) else repr(value)))

    def add_json(self, where: str, value: Any) -> None:
        self.add(where, json.dumps(value, default=str))

    def add_error(self, where: str, error: BaseException) -> None:
        self.add(f"{where}: str", str(error))
        self.add(f"{where}: repr", repr(error))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(error)))
        if isinstance(error, FusionError):
            for attr in ("answers", "errors", "report"):
                self.add_json(f"{where}: .{attr}", getattr(error, attr, None))
        if isinstance(error, ValidationError):
            self.add(f"{where}: errors()", error.errors())
            self.add(f"{where}: json()", error.json())

    def leaks(self) -> list[str]:
        """`"<owner> key in <where>"` for each key shown, whole or its distinctive tail."""
        return [
            f"{owner} key in {where}"
            for where, text in self.items
            for owner, key in self.keys.items()
            if key in text or key[-11:] in text
        ]
