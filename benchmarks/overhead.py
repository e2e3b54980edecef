"""Benchmark 1, overhead: fusion wall time against its critical path, sequential and LCEL.

Pool: three simulated members answering in 0.2, 0.4 and 0.8 s and a 0.3 s judge
(`benchmarks/scenarios/overhead.yaml`), served by the simulator in its own process and
called with `ChatOpenAI`. For each mode, in the same run, interleaved, `--repeats` times:

- critical:   the calls a fusion cannot avoid waiting for, made directly one after the
              other (best_of: slowest member + judge; merge: slowest + judge comparison +
              judge synthesis; debate with one round: slowest twice + judge)
- fusion:     `FusionChatModel.ainvoke` (and `.invoke`, sync, thread pool)
- LCEL:       the same work hand-written as a LangChain chain: `RunnableParallel` of the
              members piped into the judge call(s) (`ainvoke`)
- sequential: every call of the fusion made one after the other (a naive loop)

Medians are printed, and their ratios to the critical path measured in the same run (1.0 is
the floor; the issue's bar: fusion within 5% of it). `nominal` is the sum of the
configured latencies of the critical path.

Run: `python benchmarks/overhead.py [--quick] [--repeats 5] [--modes best_of,merge,debate]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SCENARIOS, SimProcess, chat_openai, machine, table
from langchain_core.runnables import RunnableLambda, RunnableParallel

from langchain_fusion import FusionChatModel

LATENCY = {"bench/fast": 0.2, "bench/medium": 0.4, "bench/slow": 0.8}
JUDGE = "bench/judge"
JUDGE_LATENCY = 0.3
PROMPT = "Review this migration plan for operational risks: move the orders database tonight."
JUDGE_CALLS = {"best_of": 1, "merge": 2, "debate": 1}
MEMBER_ROUNDS = {"best_of": 1, "merge": 1, "debate": 2}


def _answers_text(answers: dict[str, Any]) -> str:
    return "\n\n".join(f"Candidate {k}:\n{v.content}" for k, v in sorted(answers.items()))


def build(sim: SimProcess, mode: str) -> dict[str, Any]:
    """The fusion, its members and judge, and the hand-written LCEL chain of the same work."""
    members = {name.split("/")[1]: chat_openai(sim, name) for name in LATENCY}
    judge = chat_openai(sim, JUDGE)
    fusion = FusionChatModel(
        pool=members, judge=judge, mode=mode, debate_rounds=1, seed=0, min_successful=3
    )
    parallel = RunnableParallel(members)

    def pick(answers: dict[str, Any]) -> str:
        return f"{PROMPT}\n\nPick the best answer.\n\n{_answers_text(answers)}"

    if mode == "best_of":
        chain: Any = parallel | RunnableLambda(pick) | judge
    elif mode == "merge":

        def compare(answers: dict[str, Any]) -> dict[str, Any]:
            return {
                "answers": answers,
                "prompt": f"Compare these answers.\n{_answers_text(answers)}",
            }

        compare_then = RunnableLambda(compare) | RunnableParallel(
            answers=RunnableLambda(lambda x: x["answers"]),
            comparison=RunnableLambda(lambda x: x["prompt"]) | judge,
        )
        chain = (
            parallel
            | compare_then
            | RunnableLambda(
                lambda x: (
                    f"Merge the answers using this comparison: {x['comparison'].content}\n"
                    + _answers_text(x["answers"])
                )
            )
            | judge
        )
    else:  # debate, one round: every member revises after seeing the others
        revise = RunnableParallel(
            {
                name: RunnableLambda(
                    lambda answers, n=name: (
                        f"{PROMPT}\nYour answer: {answers[n].content}\n"
                        f"Others:\n{_answers_text({k: v for k, v in answers.items() if k != n})}\n"
                        "Revise your answer."
                    )
                )
                | model
                for name, model in members.items()
            }
        )
        chain = parallel | revise | RunnableLambda(pick) | judge

    slowest = members["slow"]
    critical = [slowest] * MEMBER_ROUNDS[mode] + [judge] * JUDGE_CALLS[mode]
    sequential = list(members.values()) * MEMBER_ROUNDS[mode] + [judge] * JUDGE_CALLS[mode]
    nominal = max(LATENCY.values()) * MEMBER_ROUNDS[mode] + JUDGE_LATENCY * JUDGE_CALLS[mode]
    serial_nominal = sum(LATENCY.values()) * MEMBER_ROUNDS[mode] + JUDGE_LATENCY * JUDGE_CALLS[mode]
    return {
        "fusion": fusion,
        "chain": chain,
        "critical": critical,
        "sequential": sequential,
        "nominal": nominal,
        "serial_nominal": serial_nominal,
    }


async def _one_by_one(models: list[Any]) -> None:
    for model in models:
        await model.ainvoke(PROMPT)


def _check(mode: str, message: Any) -> None:
    report = message.response_metadata["fusion"]
    bad = [c["name"] for c in report["candidates"] if c["status"] != "ok"]
    calls = report["judge"]["calls"]
    if bad or calls != JUDGE_CALLS[mode] or report.get("judge_fallback"):
        raise RuntimeError(
            f"{mode}: unexpected fusion (members not ok: {bad}, judge calls {calls}, "
            f"fallback {report.get('judge_fallback')}): the timings would not compare"
        )


def measure(sim: SimProcess, modes: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    """Medians per mode and variant, all variants interleaved in every repeat."""
    built = {mode: build(sim, mode) for mode in modes}
    samples: dict[str, dict[str, list[float]]] = {
        mode: {k: [] for k in ("critical", "fusion", "fusion_sync", "lcel", "sequential")}
        for mode in modes
    }
    with asyncio.Runner() as runner:

        def timed_async(make: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
            start = time.perf_counter()
            value = runner.run(make())  # type: ignore[arg-type]
            return time.perf_counter() - start, value

        def timed_sync(fn: Callable[[], Any]) -> tuple[float, Any]:
            start = time.perf_counter()
            value = fn()
            return time.perf_counter() - start, value

        for repeat in range(repeats + 1):  # the first round warms up, and is not counted
            for mode in modes:
                b = built[mode]
                row = {
                    "critical": timed_async(lambda b=b: _one_by_one(b["critical"])),
                    "fusion": timed_async(lambda b=b: b["fusion"].ainvoke(PROMPT)),
                    "fusion_sync": timed_sync(lambda b=b: b["fusion"].invoke(PROMPT)),
                    "lcel": timed_async(lambda b=b: b["chain"].ainvoke(PROMPT)),
                    "sequential": timed_async(lambda b=b: _one_by_one(b["sequential"])),
                }
                _check(mode, row["fusion"][1])
                _check(mode, row["fusion_sync"][1])
                if repeat:
                    for key, (seconds, _) in row.items():
                        samples[mode][key].append(seconds)
    result: dict[str, dict[str, Any]] = {}
    for mode in modes:
        med = {k: statistics.median(v) for k, v in samples[mode].items()}
        med["nominal"] = built[mode]["nominal"]
        med["serial_nominal"] = built[mode]["serial_nominal"]
        result[mode] = med
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, best_of and merge")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (quick: 2)")
    parser.add_argument("--modes", default=None, help="default best_of,merge,debate")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    modes = (args.modes or ("best_of,merge" if args.quick else "best_of,merge,debate")).split(",")

    print(f"benchmark 1, overhead ({machine()}, load {os.getloadavg()[0]:.2f})")
    print(
        f"members {tuple(LATENCY.values())} s, judge {JUDGE_LATENCY} s, simulator in its own "
        f"process, ChatOpenAI members; medians of {repeats} runs (after one warm-up run)"
    )
    with SimProcess(SCENARIOS / "overhead.yaml") as sim:
        result = measure(sim, modes, repeats)

    print("\nwall time, seconds (median)")
    rows = []
    for mode, m in result.items():
        rows.append(
            [
                mode,
                f"{m['nominal']:.2f}",
                f"{m['critical']:.3f}",
                f"{m['fusion']:.3f}",
                f"{m['fusion_sync']:.3f}",
                f"{m['lcel']:.3f}",
                f"{m['sequential']:.3f}",
            ]
        )
    headers = ["mode", "nominal", "critical", "fusion", "fusion sync", "LCEL", "sequential"]
    print(table(headers, rows))

    print("\nratios to the critical path measured in the same run (1.00 is the floor)")
    rows = []
    for mode, m in result.items():
        crit = m["critical"]
        rows.append(
            [
                mode,
                f"{m['fusion'] / crit:.3f}",
                f"{m['fusion_sync'] / crit:.3f}",
                f"{m['lcel'] / crit:.3f}",
                f"{m['sequential'] / crit:.3f}",
                f"{m['fusion'] / m['sequential']:.3f}",
                "yes" if m["fusion"] / crit <= 1.05 else "NO",
            ]
        )
    headers = ["mode", "fusion", "fusion sync", "LCEL", "sequential", "fusion/seq", "<=1.05"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
