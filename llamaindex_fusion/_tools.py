"""Tools between the two frameworks.

OpenAI tool dicts are what the runtime carries; LlamaIndex tools are what a LlamaIndex
`FunctionCallingLLM` takes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput


@dataclass
class SchemaToolMetadata(ToolMetadata):
    """Tool metadata whose parameters are a JSON schema rather than a pydantic model."""

    parameters: dict[str, Any] = field(default_factory=dict)
    """The tool's JSON schema (`{"type": "object", "properties": ...}`)."""

    def get_parameters_dict(self) -> dict[str, Any]:
        """A fresh copy of the JSON schema (providers' adapters edit what they get)."""
        schema = copy.deepcopy(self.parameters) or {"type": "object", "properties": {}}
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        return schema


class SchemaTool(BaseTool):
    """A tool known only by its OpenAI description; the fusion never runs it, the caller does."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        function = spec.get("function", spec)
        self._metadata = SchemaToolMetadata(
            description=str(function.get("description") or ""),
            name=str(function["name"]),
            fn_schema=None,
            parameters=dict(function.get("parameters") or {}),
        )

    @property
    def metadata(self) -> ToolMetadata:
        """The tool's name, description and JSON schema."""
        return self._metadata

    def __call__(self, input: Any) -> ToolOutput:
        """Never called: tool calls go back to the caller, who runs the tool."""
        raise NotImplementedError("a fusion proposes tool calls; the caller runs the tools")


def to_openai_tools(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    """LlamaIndex tools as OpenAI tool dicts."""
    return [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]


def to_llamaindex_tools(tools: Sequence[Mapping[str, Any]]) -> list[BaseTool]:
    """OpenAI tool dicts as LlamaIndex tools (for a member's `chat_with_tools`)."""
    return [SchemaTool(spec) for spec in tools]


def tool_name(choice: Any) -> str | None:
    """The tool a `tool_choice` names (`"name"`, `{"function": {"name": ...}}`), if any."""
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        return str(name) if name else None
    if isinstance(choice, str) and choice not in ("auto", "none", "any", "required"):
        return choice
    return None


def fusion_tool_choice(tool_choice: Any, tool_required: bool) -> Any:
    """LlamaIndex's `tool_choice`/`tool_required` as the fusion's `tool_choice`.

    `"required"` and `tool_required=True` become `"any"` (a tool call is required), a tool
    name or OpenAI's `{"type": "function", ...}` becomes the tool's name.
    """
    name = tool_name(tool_choice)
    if name is not None:
        return name
    if tool_choice in ("required", "any") or (tool_required and tool_choice != "none"):
        return "any"
    if tool_choice in ("auto", "none"):
        return tool_choice
    return None
