"""llm-fusion for LlamaIndex: a pool of LLMs answering in parallel, fused by a judge.

```python
from llamaindex_fusion import FusionLLM

llm = FusionLLM(pool=[llm_a, llm_b, llm_c], judge=llm_a, mode="merge")
index.as_query_engine(llm=llm)
```

Pool and judge take LlamaIndex LLMs, LangChain chat models and OpenRouter slugs
(`"openai/gpt-4o"`, keyed by `api_key` or `OPENROUTER_API_KEY`), mixed. The fusion itself
(core and runtime) is the one `langchain_fusion.FusionChatModel` runs.
"""

from langchain_fusion._core.config import FusionSettings
from langchain_fusion._exceptions import (
    FusionError,
    FusionInputError,
    FusionRunError,
    JudgeError,
    NotEnoughAnswersError,
)
from llamaindex_fusion._llm import FusionLLM

__all__ = [
    "FusionError",
    "FusionInputError",
    "FusionLLM",
    "FusionRunError",
    "FusionSettings",
    "JudgeError",
    "NotEnoughAnswersError",
]
