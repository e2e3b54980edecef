"""8. Dataset runs under per-model rate limits: rows/s against the rate the limits allow.

2,000 rows (`--rows`) fused in best_of mode (two members and a judge: one call a model a
row) over the simulator in its own process, with every model limited to LIMIT requests
per WINDOW seconds (`rate_limits={model: {"rpm": LIMIT, "window_s": WINDOW}}`: 300 per
20 s, 900 a minute; a 60 s window would make a run of a few windows last several
minutes). A row takes one call of each model, so the limits allow LIMIT / WINDOW rows/s;
the moving window lets the first window's requests go at once, so the shortest possible
run is (ceil(rows / LIMIT) - 1) windows. The limiter holds each request MARGIN seconds
past its window (`margin_s`, for the lag of its arrival), which alone costs
MARGIN / (WINDOW + MARGIN) of the rate.

Run 0, for reference: the same rows without limits, which shows what the machine's CPU
allows (the limits must be what binds). Run 1: `afuse_dataset` in this process
(`--concurrency` rows at once): wall time, rows/s, client CPU per row (this process: the
fusions, their HTTP clients, the limiter, the output file). Run 2: the same rows through
Ray Data, `FusionMapper` on 2 actors (a local Ray on 2 CPUs), each actor limited to half
of LIMIT: limits are per process. For each, the simulator's per-request arrival times give
the most requests any model received in any WINDOW, and in any 60 s window (at most
LIMIT * 60 / WINDOW).

Run: `python benchmarks/batch.py [--rows 2000] [--no-ray]` (about 6 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import API_KEY, SimProcess, machine, table

from langchain_fusion import FusionChatModel
from langchain_fusion.batch import afuse_dataset
from langchain_fusion.sim import Stats

MODELS = ("bench/alpha", "bench/beta", "bench/judge")
LIMIT = 300
WINDOW = 20
MARGIN = 1.0  # the limiter's default margin_s
SCENARIO = "\n".join(
    [
        "name: batch-bench",
        "models:",
        *(
            f"  - {{name: {m}, ttft: 0.05, prompt_price: 0.000001, completion_price: 0.000002}}"
            for m in MODELS
        ),
    ]
)


def fusion_factory(base: str, limit: int | None) -> Callable[[], FusionChatModel]:
    def make_fusion() -> FusionChatModel:
        limits = {} if limit is None else {m: {"rpm": limit, "window_s": WINDOW} for m in MODELS}
        return FusionChatModel(
            pool=list(MODELS[:2]),
            judge=MODELS[2],
            mode="best_of",
            api_key=API_KEY,
            base_url=base + "/api/v1",
            rate_limits=limits,
        )

    return make_fusion


def rows(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "prompt": f"Question number {i}: what is {i} * 3?"} for i in range(count)
    ]


def unlimited_run(sim: SimProcess, count: int, concurrency: int) -> dict[str, Any]:
    return local_run(sim, count, concurrency, None)


def local_run(
    sim: SimProcess, count: int, concurrency: int, limit: int | None = LIMIT
) -> dict[str, Any]:
    fusion = fusion_factory(sim.base, limit)()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        cpu = time.process_time()
        started = time.monotonic()
        summary = asyncio.run(afuse_dataset(fusion, rows(count), out, concurrency=concurrency))
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu
    return {"wall": wall, "ok": summary.ok, "failed": summary.failed, "cpu_ms": cpu / count * 1e3}


def ray_run(sim: SimProcess, count: int, concurrency: int) -> dict[str, Any]:
    import ray

    from langchain_fusion.integrations.ray import FusionMapper

    os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        dataset = ray.data.from_items(rows(count)).materialize()
        started = time.monotonic()
        out = dataset.map_batches(
            FusionMapper,
            fn_constructor_kwargs={
                "make_fusion": fusion_factory(sim.base, LIMIT // 2),
                "concurrency": concurrency // 2,
            },
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=64,
            num_cpus=1,
        ).take_all()
        wall = time.monotonic() - started
    finally:
        ray.shutdown()
    ok = sum(1 for r in out if r["status"] == "ok")
    return {"wall": wall, "ok": ok, "failed": len(out) - ok, "cpu_ms": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = parser.parse_args()
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    allowed = LIMIT / WINDOW
    shortest = (math.ceil(args.rows / LIMIT) - 1) * WINDOW
    print(
        f"{args.rows} rows, best_of (1 call a model a row), every model limited to {LIMIT} "
        f"requests per {WINDOW} s: {allowed:g} rows/s allowed, shortest run {shortest:g} s "
        "(measured on the simulator)"
    )
    results = []
    with SimProcess(SCENARIO) as sim:
        runs: list[tuple[str, Callable[..., dict[str, Any]]]] = [
            ("no limits (reference)", unlimited_run),
            ("this process", local_run),
        ]
        if not args.no_ray:
            runs.append(("Ray, 2 actors (half the limit each)", ray_run))
        for name, run in runs:
            sim.reset()
            result = run(sim, args.rows, args.concurrency)
            stats = Stats.model_validate(sim.stats()).models
            result["in_window"] = max(stats[m].most_requests_within(WINDOW) for m in MODELS)
            result["in_minute"] = max(stats[m].most_requests_within(60) for m in MODELS)
            results.append((name, result))
            print(f"  {name}: done in {result['wall']:.1f}s", flush=True)
    headers = [
        "run",
        "rows ok/failed",
        "wall s",
        "rows/s",
        "% of allowed rate",
        "shortest / wall",
        f"max in any {WINDOW} s (limit {LIMIT})",
        f"max in any 60 s (limit {LIMIT * 60 // WINDOW})",
        "client CPU ms/row",
    ]
    lines = []
    for name, r in results:
        rate = r["ok"] / r["wall"]
        lines.append(
            [
                name,
                f"{r['ok']}/{r['failed']}",
                f"{r['wall']:.1f}",
                f"{rate:.2f}",
                f"{rate / allowed:.0%}",
                f"{shortest / r['wall']:.0%}",
                r["in_window"],
                r["in_minute"],
                "-" if r["cpu_ms"] is None else f"{r['cpu_ms']:.1f}",
            ]
        )
    print(table(headers, lines))


if __name__ == "__main__":
    main()
