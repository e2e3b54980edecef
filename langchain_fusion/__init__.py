"""llm-fusion for LangChain: a pool of chat models answering in parallel, fused by a judge.

```python
from langchain_fusion import FusionChatModel

fusion = FusionChatModel(pool=[model_a, model_b, model_c], judge=model_a, mode="merge")
fusion.invoke("...")
```

Names are imported on first use, so that `fusion --help` and `fusion sim` start without
loading LangChain.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_fusion._core.config import FusionSettings
    from langchain_fusion._core.graph import DebateGraph
    from langchain_fusion._exceptions import (
        FusionError,
        FusionInputError,
        FusionRunError,
        JudgeError,
        NotEnoughAnswersError,
        ProviderError,
        ProviderTimeoutError,
    )
    from langchain_fusion._report_html import report_html
    from langchain_fusion.chat_models import FusionChatModel
    from langchain_fusion.providers import ChatOpenAICompatible

_EXPORTS = {
    "ChatOpenAICompatible": "langchain_fusion.providers",
    "DebateGraph": "langchain_fusion._core.graph",
    "FusionChatModel": "langchain_fusion.chat_models",
    "FusionError": "langchain_fusion._exceptions",
    "FusionInputError": "langchain_fusion._exceptions",
    "FusionRunError": "langchain_fusion._exceptions",
    "FusionSettings": "langchain_fusion._core.config",
    "JudgeError": "langchain_fusion._exceptions",
    "NotEnoughAnswersError": "langchain_fusion._exceptions",
    "ProviderError": "langchain_fusion._exceptions",
    "ProviderTimeoutError": "langchain_fusion._exceptions",
    "report_html": "langchain_fusion._report_html",
}

__all__ = [
    "ChatOpenAICompatible",
    "DebateGraph",
    "FusionChatModel",
    "FusionError",
    "FusionInputError",
    "FusionRunError",
    "FusionSettings",
    "JudgeError",
    "NotEnoughAnswersError",
    "ProviderError",
    "ProviderTimeoutError",
    "report_html",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_fusion' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
