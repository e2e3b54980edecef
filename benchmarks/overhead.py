"""Benchmark 1, overhead: a fusion against its critical path and the same work hand-written.

Pool: three simulated members answering in 0.2, 0.4 and 0.8 s and a 0.1 s judge
(`benchmarks/scenarios/overhead.yaml`), served by the simulator in its own process on its
OpenRouter-shaped API (`/api/v1`). The judge follows the schema it is asked for (a
`response_format` JSON schema, or a forced tool call).

Part 1, wall time, one fusion at a time. For each mode, in the same run, interleaved,
`--repeats` times (after one warm-up round), with `ChatOpenAI` members and judge:

- critical:   the calls a fusion cannot avoid waiting for, made directly one after the
              other (best_of: slowest member + judge; merge: slowest + judge comparison +
              judge synthesis; debate with one round: slowest twice + judge)
- fusion:     `FusionChatModel.ainvoke` (and `.invoke`, sync)
- chain:      the same work hand-written as a LangChain chain on the same `ChatOpenAI`
              clients: `RunnableParallel` of the members, then the judge asked for the same
              schema as the fusion's judge (best_of: the verdict; merge: the comparison, then
              the synthesis), `ainvoke`
- sequential: every call of the fusion made one after the other (a naive loop)

Medians are printed, and their ratios to the critical path measured in the same run (1.0 is
the floor). `nominal` is the sum of the configured latencies of the critical path.

Part 2, client CPU per fusion, best_of, `--concurrent` fusions started at once (default
100). Each pair below runs in a fresh child process: a warm-up round of each client, then
`--cpu-rounds` rounds (default 5) of each in turn, so that the load of a shared machine
falls on both alike; the child's `time.process_time()` over a round, divided by the fusions
in it. Printed: the median per client, and the median of the round-by-round ratios (the
figure the targets are checked on). The pairs:

- chain, fusion: the hand-written best_of chain of part 1, and
                `FusionChatModel(mode="best_of")`, on the same `ChatOpenAI` clients
- httpx2, fusion-slug:
  - httpx2:       a bare `httpx2.AsyncClient` fan-out (the connection limits of the slug
                members' shared pool) sending the very requests a fusion of slug members
                sends (recorded from one such fusion: three members at once, then the judge
                with its forced verdict tool), decoding every reply and validating the verdict
  - fusion-slug:  `FusionChatModel(mode="best_of")` whose members and judge are slugs
                (`ChatOpenAICompatible`, on its shared httpx2 pool)

The targets (issue #12) are checked at the end: the fusion's best_of wall ratio no more
than 0.005 above the chain's, its CPU per fusion no more than the chain's, and the slug
fusion's CPU per fusion no more than 1.5x the bare fan-out's.

Run: `python benchmarks/overhead.py [--quick] [--repeats 5] [--modes best_of,merge,debate]
[--concurrent 100] [--cpu-rounds 5] [--cpu-only | --wall-only]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
    SCENARIOS,
    SimProcess,
    die_with_parent,
    dump,
    machine,
    one_round,
    table,
)
from _hand_written import (
    JUDGE,
    JUDGE_LATENCY,
    LATENCY,
    PROMPT,
    api_root,
    bare_fan_out,
    build,
    check,
    one_by_one,
    problems_of,
)

from langchain_fusion import FusionChatModel

CPU_PAIRS = (("chain", "fusion"), ("httpx2", "fusion-slug"))
ROUND_TIMEOUT = 300.0
WARM_UP = 20
WALL_TARGET = 0.005
SLUG_TARGET = 1.5


def measure_wall(base: str, modes: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Medians per mode and variant, all variants interleaved in every repeat."""
    built = {mode: build(base, mode) for mode in modes}
    keys = ("critical", "fusion", "fusion_sync", "chain", "sequential")
    samples: dict[str, dict[str, list[float]]] = {m: {k: [] for k in keys} for m in modes}
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
                    "critical": timed_async(lambda b=b: one_by_one(b["critical"])),
                    "fusion": timed_async(lambda b=b: b["fusion"].ainvoke(PROMPT)),
                    "fusion_sync": timed_sync(lambda b=b: b["fusion"].invoke(PROMPT)),
                    "chain": timed_async(lambda b=b: b["chain"].ainvoke(PROMPT)),
                    "sequential": timed_async(lambda b=b: one_by_one(b["sequential"])),
                }
                check(mode, row["fusion"][1])
                check(mode, row["fusion_sync"][1])
                if repeat:
                    for key, (seconds, _) in row.items():
                        samples[mode][key].append(seconds)
    result: dict[str, dict[str, float]] = {}
    for mode in modes:
        med = {k: statistics.median(v) for k, v in samples[mode].items()}
        med["nominal"] = built[mode]["nominal"]
        result[mode] = med
    return result


# -- part 2: client CPU per fusion, in a child process per client ----------------------------


async def make_calls(pair: tuple[str, str], base: str) -> list[Callable[[], Awaitable[list[str]]]]:
    """One best_of fusion's worth of work for each client of `pair`; each returns the problems
    it saw. The chain and the fusion share the same `ChatOpenAI` clients."""
    if pair == ("httpx2", "fusion-slug"):
        fusion = FusionChatModel(
            pool=list(LATENCY),
            judge=JUDGE,
            mode="best_of",
            api_key=API_KEY,
            base_url=api_root(base),
        )
        reference = await bare_fan_out(base)
    else:
        built = build(base, "best_of")
        fusion, chain = built["fusion"], built["chain"]

        async def reference() -> list[str]:
            message = await chain.ainvoke(PROMPT)
            return [] if message.content else ["the chain answered nothing"]

    async def fused() -> list[str]:
        return problems_of("best_of", await fusion.ainvoke(PROMPT))

    return [reference, fused]


async def child(pair: tuple[str, str], base: str, n: int, rounds: int) -> dict[str, Any]:
    """Both clients of `pair` in this process, warmed up, then rounds of each in turn."""
    calls = await make_calls(pair, base)
    for call in calls:  # imports, connections, caches
        await one_round(call, min(n, WARM_UP), ROUND_TIMEOUT)
    results: list[list[dict[str, Any]]] = [[], []]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            results[i].append(await one_round(call, n, ROUND_TIMEOUT))
    out: dict[str, Any] = {}
    for kind, runs in zip(pair, results, strict=True):
        out[kind] = {
            "cpu_ms": statistics.median(r["cpu"] for r in runs) / n * 1e3,
            "cpu_runs": [r["cpu"] / n * 1e3 for r in runs],
            "errors": sum(len(r["errors"]) for r in runs),
            "error_samples": [e for r in runs for e in r["errors"]][:3],
        }
    paired = [b["cpu"] / a["cpu"] for a, b in zip(results[0], results[1], strict=True)]
    out[pair[1]]["paired_ratio"] = statistics.median(paired)
    return out


def run_child(sim: SimProcess, pair: tuple[str, str], n: int, rounds: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            *(sys.executable, __file__, "--child", ",".join(pair), "--base", sim.base),
            *("--concurrent", str(n), "--cpu-rounds", str(rounds)),
        ],
        capture_output=True,
        text=True,
        timeout=ROUND_TIMEOUT * (2 * rounds + 3),
        check=False,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{pair} N={n} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- report ------------------------------------------------------------------------------------


def print_wall(result: dict[str, dict[str, float]]) -> None:
    print("\nwall time, seconds (median)")
    rows = [
        [
            mode,
            f"{m['nominal']:.2f}",
            *(f"{m[k]:.3f}" for k in ("critical", "fusion", "fusion_sync", "chain", "sequential")),
        ]
        for mode, m in result.items()
    ]
    headers = ["mode", "nominal", "critical", "fusion", "fusion sync", "chain", "sequential"]
    print(table(headers, rows))
    print("\nratios to the critical path measured in the same run (1.000 is the floor)")
    rows = []
    for mode, m in result.items():
        crit = m["critical"]
        rows.append(
            [
                mode,
                *(f"{m[k] / crit:.3f}" for k in ("fusion", "fusion_sync", "chain", "sequential")),
                f"{(m['fusion'] - m['chain']) / crit:+.3f}",
            ]
        )
    headers = ["mode", "fusion", "fusion sync", "chain", "sequential", "fusion - chain"]
    print(table(headers, rows))


def print_cpu(cpu: dict[str, dict[str, Any]], n: int) -> None:
    print(
        f"\nclient CPU per fusion, best_of, {n} fusions at once: median of the rounds, and of "
        "the ratios\nround by round (each pair in one process, its two clients in turn)"
    )
    bases = {"fusion": "chain", "fusion-slug": "httpx2"}
    rows = []
    for kind, r in cpu.items():
        ratio = f"{r['paired_ratio']:.2f}x {bases[kind]}" if "paired_ratio" in r else ""
        rows.append(
            [
                kind,
                f"{r['cpu_ms']:.1f}",
                " ".join(f"{x:.1f}" for x in r["cpu_runs"]),
                ratio,
                r["errors"],
            ]
        )
    print(table(["client", "CPU ms/fusion", "rounds (ms)", "paired ratio", "errors"], rows))
    for kind, r in cpu.items():
        for sample in r["error_samples"]:
            print(f"  {kind} error: {sample}")


def print_targets(wall: dict[str, dict[str, float]], cpu: dict[str, dict[str, Any]]) -> None:
    rows = []
    if "best_of" in wall:
        m = wall["best_of"]
        fusion, chain = m["fusion"] / m["critical"], m["chain"] / m["critical"]
        rows.append(
            [
                "best_of wall ratio <= chain's + 0.005",
                f"{fusion:.3f}",
                f"{chain:.3f}",
                "yes" if fusion <= chain + WALL_TARGET else "NO",
            ]
        )
    if "fusion" in cpu and "chain" in cpu:
        fusion, chain = cpu["fusion"]["cpu_ms"], cpu["chain"]["cpu_ms"]
        ratio = cpu["fusion"]["paired_ratio"]
        rows.append(
            [
                "best_of CPU ms/fusion <= chain's",
                f"{fusion:.1f}",
                f"{chain:.1f} ({ratio:.2f}x)",
                "yes" if ratio <= 1.0 else "NO",
            ]
        )
    if "fusion-slug" in cpu and "httpx2" in cpu:
        slug, bare = cpu["fusion-slug"]["cpu_ms"], cpu["httpx2"]["cpu_ms"]
        ratio = cpu["fusion-slug"]["paired_ratio"]
        rows.append(
            [
                f"slug CPU ms/fusion <= {SLUG_TARGET}x bare httpx2",
                f"{slug:.1f}",
                f"{bare:.1f} ({ratio:.2f}x)",
                "yes" if ratio <= SLUG_TARGET else "NO",
            ]
        )
    if rows:
        print("\ntargets (issue #12), measured on the simulator in this run")
        print(table(["target", "llm-fusion", "reference", "met"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, best_of and merge")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (quick: 2)")
    parser.add_argument("--modes", default=None, help="default best_of,merge,debate")
    parser.add_argument("--concurrent", type=int, default=100, help="fusions at once (part 2)")
    parser.add_argument("--cpu-rounds", type=int, default=None, help="default 5 (quick: 1)")
    parser.add_argument("--cpu-only", action="store_true", help="part 2 only")
    parser.add_argument("--wall-only", action="store_true", help="part 1 only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = args.cpu_rounds or (1 if args.quick else 5)
    if args.child:
        pair = tuple(args.child.split(","))
        assert pair in CPU_PAIRS, pair
        result = asyncio.run(child(pair, args.base, args.concurrent, rounds))  # type: ignore[arg-type]
        print(dump(result))
        return
    repeats = args.repeats or (2 if args.quick else 5)
    modes = (args.modes or ("best_of,merge" if args.quick else "best_of,merge,debate")).split(",")

    print(f"benchmark 1, overhead ({machine()}, load {os.getloadavg()[0]:.2f})")
    print(
        f"members {tuple(LATENCY.values())} s, judge {JUDGE_LATENCY} s, simulator in its own "
        "process (OpenRouter-shaped API); wall: ChatOpenAI members, medians of "
        f"{repeats} runs after one warm-up run"
    )
    wall: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, Any]] = {}
    with SimProcess(SCENARIOS / "overhead.yaml") as sim:
        if not args.cpu_only:
            wall = measure_wall(sim.base, modes, repeats)
            print_wall(wall)
        if not args.wall_only:
            for pair in CPU_PAIRS:
                cpu.update(run_child(sim, pair, args.concurrent, rounds))
                for kind in pair:
                    print(f"  ... {kind:<12} {cpu[kind]['cpu_ms']:7.1f} ms CPU/fusion", flush=True)
            print_cpu(cpu, args.concurrent)
    print_targets(wall, cpu)
    print(f"\nload after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
