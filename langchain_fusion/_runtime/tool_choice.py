"""`tool_choice`, normalised once for both faces, the members and the judge.

The fusion carries one of: None (the model decides), `"auto"`, `"none"`, `"any"` (a tool
call is required) or a tool's name (that tool must be called). LangChain's `True`,
OpenAI's `"required"` and `{"type": "function", "function": {"name": ...}}`, and
LlamaIndex's `tool_required=True` are mapped onto these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The choices that name no tool.
KEYWORDS = ("auto", "none", "any", "required")


def tool_name(choice: Any) -> str | None:
    """The tool a `tool_choice` names (`"name"`, `{"function": {"name": ...}}`), if any."""
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        return str(name) if name else None
    if isinstance(choice, str) and choice not in KEYWORDS:
        return choice
    return None


def normalise_tool_choice(
    choice: Any, tools: Sequence[Mapping[str, Any]] = (), required: bool = False
) -> str | None:
    """`choice` as the fusion carries it: None, `"auto"`, `"none"`, `"any"` or a tool name.

    Args:
        choice: The caller's `tool_choice`, in LangChain's, OpenAI's or LlamaIndex's form.
        tools: The OpenAI tool dicts bound with it (`True` names the single one).
        required: LlamaIndex's `tool_required`: a tool call is required unless `"none"`.

    Raises:
        ValueError: for `True` with other than exactly one tool.
    """
    if choice is True:
        if len(tools) != 1:
            raise ValueError("tool_choice=True needs exactly one tool: name the tool, or use 'any'")
        return str(tools[0]["function"]["name"])
    name = tool_name(choice)
    if name is not None:
        return name
    if choice in ("required", "any") or (required and choice != "none"):
        return "any"
    if choice in ("auto", "none"):
        return str(choice)
    return None


def forces_tool_call(choice: Any) -> bool:
    """Whether `tool_choice` requires a tool call (`"any"`, `"required"`, `True`, a name)."""
    return choice not in (None, False, "auto", "none")
