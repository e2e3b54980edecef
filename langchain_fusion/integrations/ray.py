"""Ray Data: fuse every row of a `Dataset` with `map_batches`, past one machine.

```python
import ray
from langchain_fusion.integrations.ray import FusionMapper

def make_fusion():
    return FusionChatModel(pool=[...], judge="openai/gpt-4o", rate_limits={...})

answers = ray.data.read_json("questions.jsonl").map_batches(
    FusionMapper,
    fn_constructor_kwargs={"make_fusion": make_fusion, "concurrency": 16},
    compute=ray.data.ActorPoolStrategy(size=4),
    batch_size=64,
)
```

Each actor builds its fusion once (`make_fusion`) and fuses the rows of a batch
concurrently on the actor's event loop. A row that fails, or is not a valid row, comes out
with `status` `"error"` and its `error`; it is never raised, so one bad row does not fail
the job.

Rate limits (`rate_limits`) are per process, so per actor: give each actor its share of a
provider's limit, e.g. a 600 rpm limit over 4 actors is `{"rpm": 150}` in `make_fusion`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from langchain_core.runnables import Runnable

from langchain_fusion.batch._rows import parse_row
from langchain_fusion.batch._runner import record_of

#: The columns a batch gets, besides `id`.
OUTPUT_COLUMNS = ("status", "answer", "usage", "cost_usd", "report", "error")


def _plain(value: Any) -> Any:
    """A batch cell as plain Python: Arrow lists come out of numpy batches as arrays."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _rows_of(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    columns = list(batch)
    size = len(batch[columns[0]]) if columns else 0
    return [{c: _plain(batch[c][i]) for c in columns} for i in range(size)]


class FusionMapper:
    """A callable class for `Dataset.map_batches`: rows in, fused answers out.

    Input rows are `{"id", "messages"}` or `{"id", "prompt"}` (other columns are ignored).
    Output: `id`, `status` (`"ok"` or `"error"`), `answer`, `usage` and `report` (JSON
    text: their shapes vary row to row, which Arrow columns do not allow), `cost_usd`,
    `error`.

    Args:
        make_fusion: Builds the actor's fusion (any runnable that returns an `AIMessage`);
            called once per actor.
        concurrency: Rows of a batch fused at once by one actor.
    """

    def __init__(self, make_fusion: Callable[[], Runnable[Any, Any]], concurrency: int = 16):
        if concurrency < 1:
            raise ValueError(f"concurrency is {concurrency}: give 1 or more")
        self.fusion = make_fusion()
        self.concurrency = concurrency

    async def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """Fuse the rows of one batch (a dict of columns)."""
        rows = _rows_of(batch)
        gate = asyncio.Semaphore(self.concurrency)
        records = await asyncio.gather(*(self._one(row, n, gate) for n, row in enumerate(rows)))
        columns: dict[str, list[Any]] = {"id": [r["id"] for r in records]}
        for name in OUTPUT_COLUMNS:
            values = [r.get(name) for r in records]
            if name in ("usage", "report"):
                values = [None if v is None else json.dumps(v, default=str) for v in values]
            columns[name] = values
        return columns

    async def _one(
        self, data: dict[str, Any], number: int, gate: asyncio.Semaphore
    ) -> dict[str, Any]:
        try:
            row = parse_row(data, number + 1)
        except ValueError as exc:
            row_id = data.get("id")
            return {
                "id": None if row_id is None else str(row_id),
                "status": "error",
                "error": f"bad row: {exc}",
            }
        async with gate:
            try:
                message = await self.fusion.ainvoke(row.messages)
            except Exception as exc:  # a failing row is an output row, never raised
                record = record_of(row, None, exc)
            else:
                record = record_of(row, message, None)
        record["id"] = str(record["id"])
        return record
