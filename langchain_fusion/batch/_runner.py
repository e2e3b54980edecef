"""Fusing a dataset: `afuse_dataset` and its sync twin `fuse_dataset`.

Both share `DatasetRun`: which rows are left (the output already has the others), the
budget check before each row starts, the record written for each finished row, and the
running totals. The async twin runs rows as tasks on the caller's loop; the sync twin in a
thread pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable

from langchain_fusion._core.outcome import describe_error
from langchain_fusion._exceptions import FusionRunError
from langchain_fusion.batch._out import OutFile
from langchain_fusion.batch._rows import BadRow, Row, id_key, read_rows

#: Called after each finished row with the run's summary so far (progress bars).
OnRow = Callable[["BatchSummary"], None]


@dataclass
class BatchSummary:
    """What a dataset run did.

    Attributes:
        total: Valid rows in the input.
        skipped: Rows not run because the output already had them.
        to_run: Rows this run set out to fuse.
        ok: Rows answered by this run.
        failed: Rows that failed in this run (written with their error).
        not_started: Rows left out because the budget would have been passed.
        bad_rows: Input rows skipped as invalid, with their line numbers.
        tokens: Total tokens of this run's rows.
        cost_usd: Provider-reported cost of this run's rows.
        elapsed_s: Wall time of the run.
        stopped: Why the run stopped early, if it did.
        torn_line: A torn last line (bytes) was found in the output and cut off.
    """

    total: int = 0
    skipped: int = 0
    to_run: int = 0
    ok: int = 0
    failed: int = 0
    not_started: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    stopped: str | None = None
    torn_line: int = 0

    @property
    def finished(self) -> int:
        """Rows finished by this run, answered or failed."""
        return self.ok + self.failed

    def text(self, bad_rows: bool = True) -> str:
        """A few lines for a terminal (`bad_rows`: one line per bad input row)."""
        lines = [
            f"{self.ok} answered, {self.failed} failed, {self.skipped} already in the output, "
            f"{len(self.bad_rows)} bad input rows, {self.not_started} not started",
            f"{self.tokens} tokens, ${self.cost_usd:.6f}, {self.elapsed_s:.1f}s"
            + (f", {self.finished / self.elapsed_s:.2f} rows/s" if self.elapsed_s > 0 else ""),
        ]
        if self.torn_line:
            lines.append(f"a torn last line ({self.torn_line} bytes) was cut off the output")
        if bad_rows:
            lines.extend(f"bad input row, {bad}" for bad in self.bad_rows)
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return "\n".join(lines)


def record_of(row: Row, message: AIMessage | None, error: BaseException | None) -> dict[str, Any]:
    """The output line of a finished row: answer, usage, cost and report, or the error."""
    if message is not None:
        report = (message.response_metadata or {}).get("fusion", {})
        return {
            "id": row.id,
            "status": "ok",
            "answer": message.text,
            "usage": dict(message.usage_metadata or {}),
            "cost_usd": report.get("cost_usd"),
            "report": report,
        }
    assert error is not None
    report = error.report if isinstance(error, FusionRunError) else None
    usage = (report or {}).get("usage")
    return {
        "id": row.id,
        "status": "error",
        "error": describe_error(error),
        "usage": usage,
        "cost_usd": (report or {}).get("cost_usd"),
        "report": report,
    }


class DatasetRun:
    """The state of one run, shared by both twins; every method is thread-safe.

    Args:
        rows: The valid input rows.
        out: The output file.
        max_cost_usd: Budget of the whole run.
        estimate: The estimated cost of a row before any finished, or None when unknown.
        on_row: Called with the summary after each finished row.
    """

    def __init__(
        self,
        rows: list[Row],
        bad: list[BadRow],
        out: OutFile,
        max_cost_usd: float | None,
        estimate: Callable[[Row], float | None],
        on_row: OnRow | None,
    ) -> None:
        self.out = out
        self.max_cost_usd = max_cost_usd
        self.estimate = estimate
        self.on_row = on_row
        self.todo = [row for row in rows if not out.has(id_key(row.id))]
        self.summary = BatchSummary(
            total=len(rows),
            skipped=len(rows) - len(self.todo),
            to_run=len(self.todo),
            bad_rows=bad,
            torn_line=out.torn,
        )
        self._next = 0
        self._in_flight = 0
        self._costs: list[float] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def next_row(self) -> Row | None:
        """The next row to start, or None: none left, or the budget would be passed."""
        with self._lock:
            if self._next >= len(self.todo) or self.summary.stopped:
                return None
            row = self.todo[self._next]
            if self.max_cost_usd is not None:
                guess = self._row_cost(row)
                committed = self.summary.cost_usd + self._in_flight * guess
                if committed + guess > self.max_cost_usd:
                    self.summary.not_started = len(self.todo) - self._next
                    self.summary.stopped = (
                        f"the next row would pass max_cost_usd ${self.max_cost_usd:g} "
                        f"(spent ${self.summary.cost_usd:.6f}, {self._in_flight} rows running, "
                        f"about ${guess:.6f} a row); {self.summary.not_started} rows not started"
                    )
                    return None
            self._next += 1
            self._in_flight += 1
            return row

    def _row_cost(self, row: Row) -> float:
        if self._costs:
            return sum(self._costs) / len(self._costs)
        return self.estimate(row) or 0.0

    def finish(self, row: Row, message: AIMessage | None, error: BaseException | None) -> None:
        """Write a finished row and count it."""
        record = record_of(row, message, error)
        self.out.append(record)
        with self._lock:
            self._in_flight -= 1
            summary = self.summary
            if message is not None:
                summary.ok += 1
            else:
                summary.failed += 1
            summary.tokens += int((record.get("usage") or {}).get("total_tokens") or 0)
            cost = record.get("cost_usd")
            if isinstance(cost, int | float):
                summary.cost_usd += cost
                self._costs.append(cost)
            summary.elapsed_s = time.monotonic() - self._started
        if self.on_row is not None:
            self.on_row(summary)

    def done(self) -> BatchSummary:
        """The final summary."""
        self.summary.elapsed_s = time.monotonic() - self._started
        return self.summary


def _estimator(fusion: Any) -> Callable[[Row], float | None]:
    def estimate(row: Row) -> float | None:
        try:
            cost = fusion.estimate_cost(row.messages).get("cost_usd")
        except Exception:  # no estimate (a fusion without prices, another runnable)
            return None
        return cost if isinstance(cost, int | float) else None

    return estimate


def _start(
    fusion: Any,
    source: str | Path | Iterable[Mapping[str, Any]],
    out_path: str | Path,
    retry_failed: bool,
    max_cost_usd: float | None,
    on_start: Callable[[BatchSummary], None] | None,
    on_row: OnRow | None,
) -> DatasetRun:
    rows, bad = read_rows(source)
    out = OutFile(out_path, retry_failed=retry_failed)
    run = DatasetRun(rows, bad, out, max_cost_usd, _estimator(fusion), on_row)
    if on_start is not None:
        on_start(run.summary)
    return run


async def afuse_dataset(
    fusion: Runnable[Any, Any],
    rows: str | Path | Iterable[Mapping[str, Any]],
    out_path: str | Path,
    *,
    concurrency: int = 8,
    retry_failed: bool = False,
    max_cost_usd: float | None = None,
    on_start: Callable[[BatchSummary], None] | None = None,
    on_row: OnRow | None = None,
) -> BatchSummary:
    """Fuse every row of a dataset, appending each finished row to `out_path`.

    A rerun with the same output skips the rows already there; rows recorded as failed run
    again only with `retry_failed`. Bad input rows are skipped and listed in the summary.

    Args:
        fusion: The fusion (any runnable that returns an `AIMessage`).
        rows: A `.jsonl` path, or rows as mappings: `{"id", "messages"}` or `{"id", "prompt"}`.
        out_path: The `.jsonl` output, appended to.
        concurrency: Rows fused at once.
        retry_failed: Run again the rows the output records as failed.
        max_cost_usd: Stop starting rows once the next would pass this budget (estimated from
            the rows finished so far, or `fusion.estimate_cost` before any finished).
        on_start: Called once the input and output are read, with the summary.
        on_row: Called after each finished row, with the summary so far.

    Returns:
        The run's summary.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency is {concurrency}: give 1 or more")
    run = _start(fusion, rows, out_path, retry_failed, max_cost_usd, on_start, on_row)

    async def worker() -> None:
        while (row := run.next_row()) is not None:
            try:
                message = await fusion.ainvoke(row.messages)
            except Exception as exc:  # a failing row is written, never raised
                run.finish(row, None, exc)
            else:
                run.finish(row, message, None)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, max(1, run.summary.to_run))):
                group.create_task(worker())
    finally:
        run.out.close()
    return run.done()


def fuse_dataset(
    fusion: Runnable[Any, Any],
    rows: str | Path | Iterable[Mapping[str, Any]],
    out_path: str | Path,
    *,
    concurrency: int = 8,
    retry_failed: bool = False,
    max_cost_usd: float | None = None,
    on_start: Callable[[BatchSummary], None] | None = None,
    on_row: OnRow | None = None,
) -> BatchSummary:
    """Fuse every row of a dataset from threads; see `afuse_dataset` for the arguments."""
    if concurrency < 1:
        raise ValueError(f"concurrency is {concurrency}: give 1 or more")
    run = _start(fusion, rows, out_path, retry_failed, max_cost_usd, on_start, on_row)

    def worker() -> None:
        while (row := run.next_row()) is not None:
            try:
                message = fusion.invoke(row.messages)
            except Exception as exc:  # a failing row is written, never raised
                run.finish(row, None, exc)
            else:
                run.finish(row, message, None)

    workers = min(concurrency, max(1, run.summary.to_run))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()
    finally:
        run.out.close()
    return run.done()
