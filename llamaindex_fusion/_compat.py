"""Every LlamaIndex internal the fusion relies on, in one place.

An upgrade of llama-index-core is checked here and in `tests/compat/test_llamaindex_compat.py`,
whose contract tests fail with a message naming the assumption that broke. A name that is
gone raises at import, naming it; nothing degrades silently.

- `llama_index_instrumentation.dispatcher.active_instrument_tags` and
  `llama_index.core.instrumentation.span.active_span_id`: the context variables that make a
  member's spans and events nest under the fusion's call spans (`_spans.py`).
- `Dispatcher.span_enter` / `span_exit` / `span_drop` with `id_`, `bound_args`,
  `parent_id` and `tags`: how a call span is opened and closed by hand, since a member
  call's span starts and ends in LangChain's callbacks, not around a decorated method.
- `FunctionCallingLLM._prepare_chat_with_tools` and `_validate_chat_with_tools_response`:
  the abstract methods a `FunctionCallingLLM` implements, through which `chat_with_tools`
  (and its async and stream twins) goes.
"""

from __future__ import annotations

import contextvars
import inspect

from llama_index.core import __version__ as llama_index_version
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index_instrumentation.dispatcher import Dispatcher, active_instrument_tags

__all__ = ["SPAN_METHODS", "TOOL_HOOKS", "active_instrument_tags", "active_span_id"]

#: The `Dispatcher` methods and the keyword arguments `_spans.CallSpans` passes them.
SPAN_METHODS: dict[str, tuple[str, ...]] = {
    "span_enter": ("id_", "bound_args", "parent_id", "tags"),
    "span_exit": ("id_", "bound_args"),
    "span_drop": ("id_", "bound_args", "err"),
}

#: The `FunctionCallingLLM` methods `FusionLLM` implements for `chat_with_tools`.
TOOL_HOOKS = ("_prepare_chat_with_tools", "_validate_chat_with_tools_response")


def _broken(what: str) -> ImportError:
    return ImportError(
        f"llama-index-core {llama_index_version} changed an internal llm-fusion relies on "
        f"({what}); install a llama-index-core version that pyproject.toml allows"
    )


for _var, _where in ((active_span_id, "active_span_id"), (active_instrument_tags, "tags")):
    if not isinstance(_var, contextvars.ContextVar):
        raise _broken(f"{_where} is no longer a context variable")
for _method, _names in SPAN_METHODS.items():
    _params = inspect.signature(getattr(Dispatcher, _method)).parameters
    if any(name not in _params for name in _names):
        raise _broken(f"Dispatcher.{_method} no longer takes {', '.join(_names)}")
for _hook in TOOL_HOOKS:
    if not callable(getattr(FunctionCallingLLM, _hook, None)):
        raise _broken(f"FunctionCallingLLM.{_hook}")
