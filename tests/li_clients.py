"""LlamaIndex clients of the simulator, shared by `tests/llamaindex` and `tests/reliability`.

Importable as `li_clients` from any test directory: pytest puts `tests/` on `sys.path` when
it loads `tests/conftest.py` (the default `prepend` import mode), as it puts each test
directory there for its own `*_helpers` module.
"""

from __future__ import annotations

from typing import Any


def openai_like_client(base_url: str, model: str, api_key: str) -> Any:
    """A LlamaIndex `OpenAILike` chat client of the simulator at `base_url` (its OpenAI API):
    function calling, no retries, a 10 s timeout."""
    from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

    return OpenAILike(
        model=model,
        api_base=base_url,
        api_key=api_key,
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=32768,
        max_retries=0,
        timeout=10,
    )
