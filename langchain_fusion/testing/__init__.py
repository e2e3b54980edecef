"""Fake chat models for testing fusions offline.

Scripted answers, latency, failures, tool calls, usage and cost, and a judge that really
reads the fenced candidates.

```python
from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

fusion = FusionChatModel(
    pool=[FakeChatModel(model="a", responses=["Paris"], latency=0.2),
          FakeChatModel(model="b", error="boom")],
    judge=FakeJudge(),
    mode="best_of",
)
```
"""

from langchain_fusion.testing._chat import FakeChatModel, FakeMemberError
from langchain_fusion.testing._judge import FakeJudge

__all__ = ["FakeChatModel", "FakeJudge", "FakeMemberError"]
