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
from langchain_fusion.serve._config import ConfigError, load_fusions


def add_batch_parser(commands: Any, modes: list[str]) -> None:
    """Add the `batch` subcommand to the `fusion` parser."""
    parser = commands.add_parser(
        "batch",
        help="fuse every row of a .jsonl dataset into an output .jsonl (resumable)",
        description=(
            'Fuse every row of IN ({"id", "messages"} or {"id", "prompt"} a line) and append '
            "each finished row to OUT (answer, usage, cost, report, or its error). A rerun "
            "skips the ids already in OUT; an interrupted run leaves only complete lines. "
            "Providers as for `fusion ask`, or the fusions of a `fusion serve` config file "
            "(--config)."
        ),
    )
    parser.add_argument("input", metavar="IN", help="input .jsonl")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="output .jsonl")
    parser.add_argument("--mode", choices=modes, help="fusion mode (default: merge)")
    parser.add_argument("--pool", metavar="SLUG,SLUG", help="comma-separated model slugs")
    parser.add_argument("--judge", metavar="SLUG", help="the judge's slug")
    parser.add_argument("--scenario", metavar="FILE", help="use the simulator with this scenario")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="take the fusion from a `fusion serve` config file (YAML/JSON, key `fusions`)",
    )
    parser.add_argument(
        "--fusion",
        metavar="NAME",
        help="which of the config's fusions to run (default: its only one)",
    )
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
    if args.config is not None:
        return _batch_from_config(args)
    if args.fusion is not None:
        print("error: --fusion names a fusion of --config: give --config FILE", file=sys.stderr)
        return 2
    pool_arg = [s.strip() for s in args.pool.split(",") if s.strip()] if args.pool else None
    with provider_for(args.scenario, dict(os.environ)) as provider:
        print(provider.description, file=sys.stderr, flush=True)
        try:
            fusion = build_fusion(
                provider,
                args.mode or "merge",
                pool_arg or list(provider.pool),
                args.judge or provider.judge,
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _run_batch(args, fusion)


def _batch_from_config(args: argparse.Namespace) -> int:
    """`fusion batch --config FILE`: the fusion named `--fusion` in a serve config file."""
    given = [f"--{n}" for n in ("mode", "pool", "judge", "scenario") if getattr(args, n)]
    if given:
        print(
            f"error: {', '.join(given)} cannot be combined with --config: the config file "
            "sets the fusion (or drop --config)",
            file=sys.stderr,
        )
        return 2
    try:
        fusions = load_fusions(args.config)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = args.fusion
    if name is None and len(fusions) == 1:
        name = next(iter(fusions))
    if name not in fusions:
        choices = ", ".join(sorted(fusions))
        what = "--fusion is required" if name is None else f"no fusion {name!r} in {args.config}"
        print(f"error: {what}: choose one of {choices}", file=sys.stderr)
        return 2
    print(f"provider: fusion {name!r} from {args.config}", file=sys.stderr, flush=True)
    return _run_batch(args, fusions[name])


def _run_batch(args: argparse.Namespace, fusion: Any) -> int:
    """Fuse the dataset with `fusion`, with the progress bar; the exit status."""
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
