"""llm-fusion for LlamaIndex.

`FusionLLM` arrives with its own issue; the package exists so the layout is final.
"""

__all__: list[str] = []
