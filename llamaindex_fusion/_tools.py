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
