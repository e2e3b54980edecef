"""`fusion batch IN -o OUT`: fuse every row of a `.jsonl` dataset, resumably."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from langchain_fusion.batch import BatchSummary, afuse_dataset
from langchain_fusion.cli._provider import build_fusion, provider_for


def add_batch_parser(commands: Any, modes: list[str]) -> None:
    """Add the `batch` subcommand to the `fusion` parser."""
    parser = commands.add_parser(
        "batch",
        help="fuse every row of a .jsonl dataset into an output .jsonl (resumable)",
        description=(
            'Fuse every row of IN ({"id", "messages"} or {"id", "prompt"} a line) and append '
            "each finished row to OUT (answer, usage, cost, report, or its error). A rerun "
            "skips the ids already in OUT; an interrupted run leaves only complete lines. "
            "Providers as for `fusion ask`."
        ),
    )
    parser.add_argument("input", metavar="IN", help="input .jsonl")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="output .jsonl")
    parser.add_argument("--mode", choices=modes, default="merge", help="fusion mode")
    parser.add_argument("--pool", metavar="SLUG,SLUG", help="comma-separated model slugs")
    parser.add_argument("--judge", metavar="SLUG", help="the judge's slug")
    parser.add_argument("--scenario", metavar="FILE", help="use the simulator with this scenario")
    parser.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="rows fused at once (default 8)"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="run again the rows OUT records as failed"
    )
    parser.add_argument(
        "--max-cost-usd",
        type=float,
        metavar="USD",
        help="stop starting rows when the next would pass this budget",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=batch)


class Progress:
    """A tqdm bar: rows done, failures, tokens, cost; tqdm adds the rate and ETA."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def start(self, summary: BatchSummary) -> None:
        for bad in summary.bad_rows:
            print(f"skipped bad input row, {bad}", file=sys.stderr)
        if summary.skipped:
            print(f"{summary.skipped} rows already in the output: skipped", file=sys.stderr)
        if not self.quiet:
            self.bar = tqdm(total=summary.to_run, unit="row", file=sys.stderr, dynamic_ncols=True)

    def row(self, summary: BatchSummary) -> None:
        if self.bar is None:
            return
        self.bar.update(summary.finished - self.bar.n)
        self.bar.set_postfix_str(
            f"failed={summary.failed} tokens={summary.tokens} cost=${summary.cost_usd:.4f}",
            refresh=False,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def _run(args: argparse.Namespace, fusion: Any, progress: Progress) -> BatchSummary:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    return await afuse_dataset(
        fusion,
        args.input,
        args.output,
        concurrency=args.concurrency,
        retry_failed=args.retry_failed,
        max_cost_usd=args.max_cost_usd,
        on_start=progress.start,
        on_row=progress.row,
    )


def batch(args: argparse.Namespace) -> int:
    """Run `fusion batch`.

    Returns:
        0 when every row is answered; 1 when some failed or were not started (budget); 2 on
        bad usage; 130 when interrupted.
    """
    if args.concurrency < 1:
        print("error: --concurrency must be 1 or more", file=sys.stderr)
        return 2
    if not os.path.exists(args.input):
        print(f"error: no input file {args.input}", file=sys.stderr)
        return 2
    pool_arg = [s.strip() for s in args.pool.split(",") if s.strip()] if args.pool else None
    with provider_for(args.scenario, dict(os.environ)) as provider:
        print(provider.description, file=sys.stderr, flush=True)
        try:
            fusion = build_fusion(
                provider, args.mode, pool_arg or list(provider.pool), args.judge or provider.judge
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        progress = Progress(args.quiet)
        try:
            summary = asyncio.run(_run(args, fusion, progress))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress.close()
            print(
                f"interrupted: the finished rows are in {args.output}; rerun to resume",
                file=sys.stderr,
            )
            return 130
        progress.close()
    print(summary.text(bad_rows=False), file=sys.stderr)
    return 1 if summary.failed or summary.not_started else 0
