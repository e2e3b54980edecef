"""Integrations with data frameworks: `langchain_fusion.integrations.ray` (Ray Data).

Each integration imports its framework; install the matching extra (`pip install
"llm-fusion[ray]"`).
"""

__all__: list[str] = []
