"""How the fakes choose a tool and read its arguments from the user's message."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import BaseMessage, ToolCall, ToolMessage


def tool_call(name: str, args: dict[str, Any], call_id: str) -> ToolCall:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def choose_tool(
    tools: list[dict[str, Any]], tool_choice: Any, messages: list[BaseMessage]
) -> dict[str, Any] | None:
    by_name = {t["function"]["name"]: t for t in tools if "function" in t}
    if not by_name or tool_choice in ("none", False):
        return None
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice in by_name:
        return by_name[tool_choice]
    forced = tool_choice not in (None, "auto")
    if not forced and messages and isinstance(messages[-1], ToolMessage):
        return None
    text = last_human_text(messages)
    mentioned = [name for name in by_name if name in text]
    return by_name[mentioned[0]] if mentioned else next(iter(by_name.values()))


def last_human_text(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if m.type == "human"), "")


def tool_args(tool: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for `tool` read from `text`, by the tool's JSON schema."""
    name = tool["function"]["name"]
    params = tool["function"].get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = params.get("required", list(props))
    call = re.search(rf"{re.escape(name)}\(([^)]*)\)", text)
    positional = [p.strip() for p in call.group(1).split(",") if p.strip()] if call else []
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    quoted = [a or b for a, b in re.findall(r"'([^']+)'|\"([^\"]+)\"", text)]
    args: dict[str, Any] = {}
    for position, (key, schema) in enumerate(props.items()):
        if key not in required:
            continue
        kind = schema.get("type") or next(
            (s.get("type") for s in schema.get("anyOf", []) if s.get("type") != "null"), "string"
        )
        raw = positional[position] if position < len(positional) else None
        if kind in ("integer", "number"):
            value = raw if raw is not None else (numbers.pop(0) if numbers else "1")
            number = float(value) if re.fullmatch(r"-?\d+(?:\.\d+)?", value) else 1.0
            args[key] = int(number) if kind == "integer" else number
        elif kind == "boolean":
            args[key] = True
        elif kind == "array":
            args[key] = []
        elif kind == "object":
            args[key] = {}
        elif "enum" in schema:
            args[key] = schema["enum"][0]
        else:
            args[key] = (raw or "").strip("'\"") or (quoted.pop(0) if quoted else text.strip())
    return args
