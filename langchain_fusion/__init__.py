"""llm-fusion for LangChain: a pool of chat models answering in parallel, fused by a judge.

```python
from langchain_fusion import FusionChatModel

fusion = FusionChatModel(pool=[model_a, model_b, model_c], judge=model_a, mode="merge")
fusion.invoke("...")
```
"""

from langchain_fusion._core.config import FusionSettings
from langchain_fusion._core.graph import DebateGraph
from langchain_fusion._exceptions import (
    FusionError,
    FusionInputError,
    FusionRunError,
    JudgeError,
    NotEnoughAnswersError,
)
from langchain_fusion.chat_models import FusionChatModel

__all__ = [
    "DebateGraph",
    "FusionChatModel",
    "FusionError",
    "FusionInputError",
    "FusionRunError",
    "FusionSettings",
    "JudgeError",
    "NotEnoughAnswersError",
]
