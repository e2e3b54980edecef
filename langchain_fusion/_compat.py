"""Every private LangChain name the fusion relies on, in one place.

An upgrade of langchain-core is checked here and in `tests/compat/test_langchain_compat.py`,
whose contract tests fail with a message naming the assumption that broke. Nothing here
degrades silently: a name that is gone raises at import, since a fusion without it would
count usage twice or lose its traces.

- `BaseChatModel._generate_with_cache` / `_agenerate_with_cache`: the only methods that get
  the run manager when `invoke` streams internally; the fusion run's parent is set there
  for `_stream` (`GenerationHooks`).
- `BaseChatModel._get_llm_string`: the cache key, extended with each member's own key.
- `BaseChatModel._convert_input`: `estimate_cost`'s input, converted as `invoke` would.
- `BaseChatModel._llm_type`, read on members: a member's identifier when it names no model.
- `langchain_core.tracers.context._configure_hooks`: the handlers LangChain adds to every
  run from context variables (`get_usage_metadata_callback()`), cleared for child runs.
- `langchain_core.runnables.config.var_child_runnable_config`: the enclosing chain's
  config, cleared for child runs.
"""

from __future__ import annotations

import contextvars
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from langchain_core import __version__ as langchain_core_version
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers import context as tracer_context

__all__ = [
    "GenerationHooks",
    "configure_hook_vars",
    "convert_input",
    "llm_string",
    "llm_type",
    "var_child_runnable_config",
]

_UPGRADE = (
    "langchain-core {version} changed a private name llm-fusion relies on ({what}); "
    "install a langchain-core version that pyproject.toml allows"
)


def _broken(what: str) -> ImportError:
    return ImportError(_UPGRADE.format(version=langchain_core_version, what=what))


for _name in ("_generate_with_cache", "_agenerate_with_cache", "_get_llm_string", "_convert_input"):
    if not callable(getattr(BaseChatModel, _name, None)):
        raise _broken(f"BaseChatModel.{_name}")
if not isinstance(getattr(tracer_context, "_configure_hooks", None), list):
    raise _broken("langchain_core.tracers.context._configure_hooks")


def configure_hook_vars() -> list[contextvars.ContextVar[Any]]:
    """The context variables whose handler LangChain adds to every run (`_configure_hooks`).

    Raises:
        RuntimeError: when an entry no longer starts with its context variable.
    """
    hooks = []
    for entry in tracer_context._configure_hooks:
        var = entry[0] if isinstance(entry, tuple) and entry else None
        if not isinstance(var, contextvars.ContextVar):
            raise RuntimeError(
                _UPGRADE.format(version=langchain_core_version, what="_configure_hooks entries")
            )
        hooks.append(var)
    return hooks


def llm_string(chat_model: BaseChatModel, **kwargs: Any) -> str:
    """`chat_model`'s own cache key for a call with `kwargs`."""
    return chat_model._get_llm_string(**kwargs)


def convert_input(model: BaseChatModel, value: LanguageModelInput) -> list[BaseMessage]:
    """`value` as the messages `model.invoke(value)` would send."""
    return model._convert_input(value).to_messages()


def llm_type(chat_model: BaseChatModel) -> str:
    """The chat model's type name (`_llm_type`)."""
    return chat_model._llm_type


class GenerationHooks(BaseChatModel):
    """`BaseChatModel`'s private generation methods, overridden through two public hooks.

    `_generation_scope` wraps `_generate_with_cache` and `_agenerate_with_cache`, the only
    methods that see the run manager when `invoke` streams internally (`_stream` gets none);
    `_cache_key_extra` is appended to `_get_llm_string`.
    """

    def _generation_scope(
        self,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> AbstractContextManager[Any]:
        """A context entered around one generation (cache lookup, `_generate`, `_stream`)."""
        return nullcontext()

    def _cache_key_extra(self) -> str:
        """Appended to the cache key (`_get_llm_string`)."""
        return ""

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._generation_scope(run_manager, stop, kwargs):
            return super()._generate_with_cache(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._generation_scope(run_manager, stop, kwargs):
            return await super()._agenerate_with_cache(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        return super()._get_llm_string(stop=stop, **kwargs) + self._cache_key_extra()
