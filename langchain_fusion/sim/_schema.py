"""Filling a JSON schema from an answer's text, for tool arguments and structured output.

Strings get the answer text, integers and numbers the numbers found in the prompt and the
answer (in turn), booleans `true`; every declared property is filled (strict schemas need
them all); `$ref`, `anyOf`/`oneOf`/`allOf`, `enum`, `const` and `default` are honoured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import cycle
from typing import Any

_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_DEPTH = 8


def numbers_in(*texts: str) -> list[float]:
    """The numbers written in `texts`, in order."""
    return [float(n) for text in texts for n in _NUMBER_RE.findall(text)]


class _Filler:
    def __init__(self, root: dict[str, Any], text: str, numbers: list[float]) -> None:
        self.root = root
        self.text = text
        self.numbers: Iterator[float] = cycle(numbers) if numbers else cycle([0.0])

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            return node if isinstance(node, dict) else {}
        return schema

    def fill(self, schema: Any, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return self.text
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                concrete = [
                    o for o in options if not (isinstance(o, dict) and o == {"type": "null"})
                ]
                return self.fill((concrete or options)[0], depth + 1)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part) if isinstance(part, dict) else {})
            return self.fill(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None and "properties" in schema:
            kind = "object"
        if kind == "object":
            props = schema.get("properties")
            if not isinstance(props, dict):
                return {}
            return {name: self.fill(sub, depth + 1) for name, sub in props.items()}
        if kind == "array":
            if schema.get("maxItems") == 0:
                return []
            count = max(1, int(schema.get("minItems", 1)))
            return [self.fill(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "integer":
            return int(next(self.numbers))
        if kind == "number":
            return next(self.numbers)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        if "default" in schema:
            return schema["default"]
        return self.text


def fill_schema(schema: dict[str, Any], text: str, numbers: list[float]) -> Any:
    """A value that matches `schema`, made from `text` and `numbers`.

    Args:
        schema: A JSON schema (its `$defs`/`definitions` resolve `$ref`s).
        text: The value of every string.
        numbers: Values for integers and numbers, used in turn (0 when empty).
    """
    return _Filler(schema, text, numbers).fill(schema)
