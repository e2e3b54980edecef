"""Fusion over datasets: every row fused once, kept as it finishes, resumable.

```python
from langchain_fusion.batch import fuse_dataset

summary = fuse_dataset(fusion, "questions.jsonl", "answers.jsonl", concurrency=16)
print(summary.text())
```

Each input line is `{"id": ..., "messages": [...]}` or `{"id": ..., "prompt": "..."}`. Each
finished row is appended to the output as one line (`id`, `status`, `answer`, `usage`,
`cost_usd`, `report`, or `error`); a rerun skips the ids already there, and after a crash
the output holds only complete lines. `fusion batch IN -o OUT` wraps it.
"""

from langchain_fusion.batch._out import OutFile
from langchain_fusion.batch._rows import BadRow, Row, read_rows
from langchain_fusion.batch._runner import BatchSummary, afuse_dataset, fuse_dataset, record_of

__all__ = [
    "BadRow",
    "BatchSummary",
    "OutFile",
    "Row",
    "afuse_dataset",
    "fuse_dataset",
    "read_rows",
    "record_of",
]
