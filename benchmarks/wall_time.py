"""Wall time of a fusion against its critical path, measured side by side.

Pool: fake members answering in 0.2, 0.4 and 0.8 s, and a 0.1 s judge. For each mode three
things are timed in the same run, interleaved, several times:

- fusion:   `FusionChatModel.invoke` and `ainvoke`
- critical: the calls a fusion cannot avoid waiting for, made directly one after the other:
            best_of: slowest member + judge; merge: slowest member + judge (comparison) +
            judge (synthesis); debate with one round: slowest member twice + judge
- serial:   every call of the fusion made one after the other (what a naive loop costs)

It prints fusion/critical (1.0 is the floor) and fusion/serial. Absolute times on a shared
machine are noisy; the ratios, measured in one run, are what to compare.

Run: `python benchmarks/wall_time.py [--repeats 5] [--modes best_of,merge,debate]`
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


def build(mode: str) -> tuple[FusionChatModel, list[FakeChatModel], FakeJudge]:
    members = [
        FakeChatModel(model=f"m{i}", responses=[f"Answer {i}: Paris."], latency=lat)
        for i, lat in enumerate(LATENCIES)
    ]
    judge = FakeJudge(latency=JUDGE_LATENCY)
    fusion = FusionChatModel(pool=members, judge=judge, mode=mode, debate_rounds=1)
    return fusion, members, judge


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(mode: str, repeats: int) -> dict[str, float]:
    fusion, members, judge = build(mode)
    slowest = max(members, key=lambda m: m.latency)
    critical_calls = {
        "best_of": [slowest, judge],
        "merge": [slowest, judge, judge],
        "debate": [slowest, slowest, judge],
    }[mode]
    rounds = 2 if mode == "debate" else 1
    judge_calls = 2 if mode == "merge" else 1
    serial_calls = [*members * rounds, *[judge] * judge_calls]

    def critical() -> None:
        for model in critical_calls:
            model.invoke(PROMPT)

    async def acritical() -> None:
        for model in critical_calls:
            await model.ainvoke(PROMPT)

    def serial() -> None:
        for model in serial_calls:
            model.invoke(PROMPT)

    rows: dict[str, list[float]] = {k: [] for k in ("sync", "async", "crit", "acrit", "serial")}
    for _ in range(repeats):
        rows["sync"].append(timed(lambda: fusion.invoke(PROMPT)))
        rows["crit"].append(timed(critical))
        rows["async"].append(timed(lambda: asyncio.run(fusion.ainvoke(PROMPT))))
        rows["acrit"].append(timed(lambda: asyncio.run(acritical())))
        rows["serial"].append(timed(serial))
    return {k: statistics.median(v) for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default="best_of,merge,debate")
    args = parser.parse_args()
    print(f"members {LATENCIES} s, judge {JUDGE_LATENCY} s, medians of {args.repeats} runs")
    print(
        "mode      fusion sync  fusion async  critical  fusion/critical (sync, async)  "
        "fusion/serial"
    )
    for mode in args.modes.split(","):
        med = measure(mode, args.repeats)
        print(
            f"{mode:<9} {med['sync']:>9.3f} s {med['async']:>11.3f} s {med['crit']:>7.3f} s"
            f"  {med['sync'] / med['crit']:>8.3f}, {med['async'] / med['acrit']:.3f}"
            f"{med['sync'] / med['serial']:>22.3f}"
        )


if __name__ == "__main__":
    main()
