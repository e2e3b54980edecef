"""Wall time of a fusion against the slowest member plus the judge, measured side by side.

Pool: fake members answering in 0.2, 0.4 and 0.8 s, and a 0.1 s judge (best_of: one judge
call). Three things are timed in the same run, interleaved, several times:

- fusion:   `FusionChatModel.invoke` / `ainvoke`
- baseline: the slowest member, then the judge, called directly one after the other
- serial:   every member in turn, then the judge (what a naive loop would cost)

and the script prints the ratios fusion/baseline (1.0 is the floor: a fusion cannot beat its
slowest member plus its judge) and fusion/serial. Absolute times on a shared machine are
noisy; the ratios, measured in one run, are what to compare.

Run: `python benchmarks/wall_time.py [--repeats 5]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

LATENCIES = (0.2, 0.4, 0.8)
JUDGE_LATENCY = 0.1
PROMPT = "What is the capital of France?"


def build() -> tuple[FusionChatModel, list[FakeChatModel], FakeJudge]:
    members = [
        FakeChatModel(model=f"m{i}", responses=[f"Answer {i}: Paris."], latency=lat)
        for i, lat in enumerate(LATENCIES)
    ]
    judge = FakeJudge(latency=JUDGE_LATENCY)
    fusion = FusionChatModel(pool=members, judge=judge, mode="best_of")
    return fusion, members, judge


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    fusion, members, judge = build()
    slowest = max(members, key=lambda m: m.latency)

    def baseline() -> None:
        slowest.invoke(PROMPT)
        judge.invoke(PROMPT)

    def serial() -> None:
        for member in members:
            member.invoke(PROMPT)
        judge.invoke(PROMPT)

    async def abaseline() -> None:
        await slowest.ainvoke(PROMPT)
        await judge.ainvoke(PROMPT)

    rows: dict[str, list[float]] = {
        k: [] for k in ("sync", "async", "baseline", "abaseline", "serial")
    }
    for _ in range(args.repeats):
        rows["sync"].append(timed(lambda: fusion.invoke(PROMPT)))
        rows["baseline"].append(timed(baseline))
        rows["async"].append(timed(lambda: asyncio.run(fusion.ainvoke(PROMPT))))
        rows["abaseline"].append(timed(lambda: asyncio.run(abaseline())))
        rows["serial"].append(timed(serial))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"members {LATENCIES} s, judge {JUDGE_LATENCY} s, best_of, {args.repeats} repeats (medians)"
    )
    sync_ratio = med["sync"] / med["baseline"]
    async_ratio = med["async"] / med["abaseline"]
    print(f"  fusion sync   {med['sync']:.3f} s   ratio to slowest+judge {sync_ratio:.3f}")
    print(f"  fusion async  {med['async']:.3f} s   ratio to slowest+judge {async_ratio:.3f}")
    print(f"  slowest+judge {med['baseline']:.3f} s (sync), {med['abaseline']:.3f} s (async)")
    print(
        f"  serial loop   {med['serial']:.3f} s   fusion/serial {med['sync'] / med['serial']:.3f}"
    )


if __name__ == "__main__":
    main()
