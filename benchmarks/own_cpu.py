"""Benchmark: the fusion's own CPU per call, against the same calls made directly.

In one process, side by side, per mode and for async (`ainvoke`) and sync (`invoke`):

- fusion: `FusionChatModel` over in-process fake members and a fake judge, none with any
  latency, called `--calls` times after `--warmup` calls;
- direct: the same model calls the fusion made, recorded from one fusion call (every member
  call and every judge call: the very runnable called, with the structured-output wrapper
  where the fusion asks the judge for structured output, the very messages and keyword
  arguments), made directly on the same fake models without any run config: the calls of
  one step concurrently (`asyncio.gather`; one after another in sync code), steps in
  order.

Our own CPU per fusion is `(CPU of the fusion - CPU of the direct calls) / calls`: what the
fusion adds around the calls it cannot avoid. CPU is `time.process_time()` (all threads of
the process). The two are run in alternating blocks (10 blocks of `--calls / 10`), so that
both see the same machine; each figure is the median over the blocks.

Run: `python benchmarks/own_cpu.py [--calls 300] [--warmup 30] [--modes best_of,merge]
[--members 3] [--profile]` (`--profile`: a cProfile top list of the fusion's async calls).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langchain_fusion import FusionChatModel
from langchain_fusion._runtime import drivers
from langchain_fusion._runtime.steps import Call, FanOut
from langchain_fusion.testing import FakeChatModel, FakeJudge

PROMPT = "Review this migration plan for operational risks: move the orders database tonight."
ANSWERS = [
    "Take a backup first. Rehearse the cut-over on a copy.",
    "Take a backup first. Keep the old database read-only for a day.",
    "Announce a maintenance window. Take a backup first.",
    "Check the replication lag. Take a backup first.",
]
BLOCKS = 10  # the calls run in this many alternating blocks of fusion and direct calls


def build(mode: str, members: int) -> FusionChatModel:
    """A fusion over fake members that answer at once, judged by a fake judge."""
    pool = [
        FakeChatModel(model=f"m{i}", responses=[ANSWERS[i % len(ANSWERS)]]) for i in range(members)
    ]
    judge = FakeJudge(model="judge")
    fusion = FusionChatModel(
        pool=pool, judge=judge, mode=mode, seed=0, debate_rounds=1, min_successful=members
    )
    return fusion


Recorded = list[list[tuple[Runnable[Any, Any], list[BaseMessage], dict[str, Any]]]]


def record_calls(fusion: FusionChatModel, sync: bool) -> Recorded:
    """The model calls one fusion call makes, step by step: `(runnable, messages, kwargs)`."""
    steps: Recorded = []

    def record(calls: list[Call]) -> None:
        steps.append([(c.member.runnable, c.messages, c.kwargs) for c in calls])

    originals = (drivers.AsyncDriver._perform, drivers.SyncDriver._perform)

    async def aperform(self: drivers.AsyncDriver, step: Call | FanOut) -> Any:
        record(step.calls if isinstance(step, FanOut) else [step])
        return await originals[0](self, step)

    def perform(self: drivers.SyncDriver, step: Call | FanOut) -> Any:
        record(step.calls if isinstance(step, FanOut) else [step])
        return originals[1](self, step)

    drivers.AsyncDriver._perform = aperform  # type: ignore[method-assign]
    drivers.SyncDriver._perform = perform  # type: ignore[method-assign]
    try:
        if sync:
            fusion.invoke(PROMPT)
        else:
            asyncio.run(fusion.ainvoke(PROMPT))
    finally:
        drivers.AsyncDriver._perform, drivers.SyncDriver._perform = originals  # type: ignore[method-assign]
    return steps


async def direct_async(steps: Recorded) -> None:
    """The fusion's calls made directly: each step's calls concurrently, steps in order."""
    for calls in steps:
        await asyncio.gather(*(r.ainvoke(m, **kw) for r, m, kw in calls))


def direct_sync(steps: Recorded) -> None:
    """The sync twin of `direct_async` (one call after another)."""
    for calls in steps:
        for runnable, messages, kwargs in calls:
            runnable.invoke(messages, **kwargs)


def cpu_of(fn: Callable[[], Any], times: int) -> float:
    """CPU seconds of `fn()` called `times` times."""
    start = time.process_time()
    for _ in range(times):
        fn()
    return time.process_time() - start


async def acpu_of(fn: Callable[[], Awaitable[Any]], times: int) -> float:
    """CPU seconds of `await fn()` called `times` times."""
    start = time.process_time()
    for _ in range(times):
        await fn()
    return time.process_time() - start


def measure(mode: str, members: int, calls: int, warmup: int, sync: bool) -> dict[str, Any]:
    """CPU per fusion, per direct replay, and their difference, in milliseconds.

    Each is the median over the blocks (a block of fusions, then a block of the same calls
    made directly), so that a burst of load from elsewhere on the machine skews one block,
    not the figure.
    """
    fusion = build(mode, members)
    steps = record_calls(fusion, sync)
    block = max(1, calls // BLOCKS)
    pairs: list[tuple[float, float]] = []
    if sync:
        cpu_of(lambda: fusion.invoke(PROMPT), warmup)
        cpu_of(lambda: direct_sync(steps), warmup)
        for _ in range(BLOCKS):
            fused = cpu_of(lambda: fusion.invoke(PROMPT), block)
            pairs.append((fused, cpu_of(lambda: direct_sync(steps), block)))
    else:

        async def both() -> None:
            await acpu_of(lambda: fusion.ainvoke(PROMPT), warmup)
            await acpu_of(lambda: direct_async(steps), warmup)
            for _ in range(BLOCKS):
                fused = await acpu_of(lambda: fusion.ainvoke(PROMPT), block)
                pairs.append((fused, await acpu_of(lambda: direct_async(steps), block)))

        asyncio.run(both())
    per_call = 1000 / block
    return {
        "mode": mode,
        "api": "sync" if sync else "async",
        "model calls": sum(len(calls) for calls in steps),
        "fusion ms": per_call * statistics.median(f for f, _ in pairs),
        "direct ms": per_call * statistics.median(d for _, d in pairs),
        "own ms": per_call * statistics.median(f - d for f, d in pairs),
    }


def profile(mode: str, members: int, calls: int, warmup: int, top: int) -> None:
    """Print a cProfile top list of the fusion's async calls."""
    fusion = build(mode, members)

    async def run(times: int) -> None:
        for _ in range(times):
            await fusion.ainvoke(PROMPT)

    asyncio.run(run(warmup))
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(run(calls))
    profiler.disable()
    print(f"\n## profile: {mode}, async, {calls} calls\n")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--modes", default="best_of,merge,debate,vote")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top list")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    print(machine())
    if args.profile:
        for mode in modes:
            profile(mode, args.members, args.calls, args.warmup, args.top)
        return
    rows = [
        measure(mode, args.members, args.calls, args.warmup, sync)
        for mode in modes
        for sync in (False, True)
    ]
    print(
        table(
            ["mode", "api", "model calls", "fusion ms", "direct ms", "own ms"],
            [
                [
                    r["mode"],
                    r["api"],
                    r["model calls"],
                    f"{r['fusion ms']:.2f}",
                    f"{r['direct ms']:.2f}",
                    f"{r['own ms']:.2f}",
                ]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
