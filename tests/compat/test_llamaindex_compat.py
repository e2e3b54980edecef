"""Contracts with llama-index-core's internals: every name `llamaindex_fusion/_compat.py` uses.

Each test states one assumption and fails with a message naming it and what in llm-fusion
depends on it.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, ClassVar

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index_instrumentation.dispatcher import Dispatcher

from llamaindex_fusion import _compat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llamaindex"))
from li_fakes import FakeLLM


def test_span_methods_take_the_arguments_call_spans_passes() -> None:
    for method, names in _compat.SPAN_METHODS.items():
        params = inspect.signature(getattr(Dispatcher, method)).parameters
        missing = [n for n in names if n not in params]
        assert not missing, (
            f"Dispatcher.{method} no longer takes {missing}: _spans.CallSpans opens and "
            "closes member call spans with them"
        )


def test_a_span_opened_by_hand_parents_the_spans_of_calls_in_its_context() -> None:
    root = get_dispatcher()
    handler = SimpleSpanHandler()
    root.add_span_handler(handler)
    try:
        bound = inspect.signature(lambda: None).bind()
        root.span_enter(id_="fusion:test-span", bound_args=bound, parent_id=None, tags={})
        token = _compat.active_span_id.set("fusion:test-span")
        try:
            FakeLLM(model="m", responses=["hi"]).chat(
                [ChatMessage(role=MessageRole.USER, content="x")]
            )
        finally:
            _compat.active_span_id.reset(token)
        root.span_exit(id_="fusion:test-span", bound_args=bound)
    finally:
        root.span_handlers.remove(handler)
    spans = handler.completed_spans
    children = [s for s in spans if s.parent_id == "fusion:test-span"]
    assert children, (
        "a decorated LLM call no longer takes active_span_id as its parent span: a LlamaIndex "
        f"member's spans would not nest under its call span; spans: {[s.id_ for s in spans]}"
    )


class ToolProbe(FakeLLM):
    """Records that `chat_with_tools` goes through the hooks `FusionLLM` implements."""

    hooks: ClassVar[list[str]] = []

    def _prepare_chat_with_tools(self, tools: Any, **kwargs: Any) -> dict[str, Any]:
        ToolProbe.hooks.append("_prepare_chat_with_tools")
        return super()._prepare_chat_with_tools(tools, **kwargs)

    def _validate_chat_with_tools_response(
        self, response: ChatResponse, tools: Any, **kwargs: Any
    ) -> ChatResponse:
        ToolProbe.hooks.append("_validate_chat_with_tools_response")
        return super()._validate_chat_with_tools_response(response, tools, **kwargs)


def test_chat_with_tools_goes_through_the_tool_hooks() -> None:
    ToolProbe.hooks = []
    ToolProbe(model="m", responses=["hi"]).chat_with_tools([], user_msg="x")
    assert ToolProbe.hooks == list(_compat.TOOL_HOOKS), (
        "FunctionCallingLLM.chat_with_tools no longer calls _prepare_chat_with_tools and "
        f"_validate_chat_with_tools_response (seen: {ToolProbe.hooks}): FusionLLM's tool "
        "handling is bypassed"
    )
