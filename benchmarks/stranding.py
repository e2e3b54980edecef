"""Stranded pool connections: requests and fusions cancelled on a small pool, httpx vs httpx2.

httpcore 1.0.9 (under httpx) can leave part of its pool behind when a request is cancelled
at the wrong moment: a connection the request got but never used (encode/httpcore#1093), or
the request itself, still registered with its connection `ACTIVE`, when the cancellation
lands while its response is being closed (anyio's lock yields there, and its shield does not
stop asyncio's `Task.cancel()`). Neither is ever reclaimed: once the pool's slots are gone,
every request fails with `PoolTimeout`. httpcore2 (under httpx2) reclaims both.

For each seed, each workload and each library (interleaved, same seeded draws), a fresh
`AsyncClient` with a pool of 4 connections (`max_connections=4`) gets `--cancellations`
rounds of work, each cancelled at a random moment 0-30 ms after it started:

- requests:        3 or 4 concurrent bare POSTs (fast models and 3 s ones)
- fusions:         `FusionChatModel` over `ChatOpenAICompatible` members and judge (what
                   OpenRouter slugs become) sharing the client: alternately slow members and
                   a slow judge, modes in turn (as in `tests/reliability/test_rel_cancellation.py`)
- stream fusions:  the same, members and judge streaming (`streaming=True`, SSE)

Once every task has ended, the simulator serves nothing and the garbage collector has run
(a stream abandoned between two chunks is closed by its finaliser: counted apart, as "freed
by GC"), it counts, in the pool:
- left requests: requests still registered (each holds its connection unless it is closed),
- stranded: connections neither idle nor closed that no registered request holds,
- lost slots: of 4 concurrent requests made next, each holding its connection for 1 s, with
  a 0.5 s pool timeout, how many got `PoolTimeout`: the slots the cancellations cost, for
  good (what a process that goes on feels).

The simulator runs in this process (`langchain_fusion.sim.run_simulator`, a background
thread), as in the reliability tests.

Run: `python benchmarks/stranding.py [--quick] [--seeds 1,2,3,4,5] [--cancellations 120]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, machine, table

from langchain_fusion import FusionChatModel
from langchain_fusion.providers import ChatOpenAICompatible
from langchain_fusion.sim import Scenario, Simulator, run_simulator

LIBRARIES = ("httpx", "httpx2")
WORKLOADS = ("requests", "fusions", "stream fusions")
POOL_SIZE = 4
MODES = ("best_of", "merge", "debate", "vote")
PROMPT = "Review this migration plan for operational risks."
MAX_DELAY_S = 0.03

SCENARIO = """
name: bench-stranding
description: Fast members and judge, and 3 s ones, for cancelled requests and fusions.
seed: 5
keepalive_interval: 0.05
models:
  - {name: st/a, ttft: 0.002, tokens_per_second: 5000, default_answer: Rehearse the cutover.}
  - {name: st/b, ttft: 0.002, tokens_per_second: 5000, default_answer: Keep a rollback path.}
  - {name: st/c, ttft: 0.002, tokens_per_second: 5000, default_answer: Freeze writes first.}
  - {name: st/slow, ttft: 3.0, default_answer: Freeze writes first.}
  - {name: st/hold, ttft: 1.0, default_answer: Held for a second.}
  - name: st/judge
    ttft: 0.002
    tokens_per_second: 8000
    judge: {prefer: rollback, rule: first}
  - name: st/slow-judge
    ttft: 3.0
    judge: {prefer: rollback, rule: first}
"""


def new_client(library: Any) -> Any:
    limits = library.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    return library.AsyncClient(limits=limits, timeout=5.0)


def body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}]}


def work(sim: Simulator, client: Any, workload: str) -> Callable[[int], Awaitable[Any]]:
    """Round `i` of `workload` over `client`: the coroutine to start and cancel."""
    url = sim.openai_base_url + "/chat/completions"

    if workload == "requests":

        async def requests(i: int) -> None:
            names = ("st/a", "st/slow", "st/slow") if i % 2 else ("st/a", "st/b", "st/c", "st/slow")
            await asyncio.gather(*(client.post(url, json=body(name)) for name in names))

        return requests

    def model(name: str) -> ChatOpenAICompatible:
        return ChatOpenAICompatible(
            model=name,
            base_url=sim.openai_base_url,
            api_key=API_KEY,
            http_async_client=client,
            timeout=5,
            max_retries=0,
            streaming=workload == "stream fusions",
        )

    async def fusion(i: int) -> Any:
        if i % 2:
            pool = {name: model(f"st/{name}") for name in ("a", "b", "c")}
            judge = model("st/slow-judge")
        else:
            pool = {"a": model("st/a"), "s1": model("st/slow"), "s2": model("st/slow")}
            judge = model("st/judge")
        fused = FusionChatModel(pool=pool, judge=judge, mode=MODES[i % 4], debate_rounds=1)
        return await fused.ainvoke(PROMPT)

    return fusion


async def quiesce(sim: Simulator, timeout: float = 15.0) -> None:
    """Wait until every other task ended and the simulator serves nothing."""
    deadline = time.monotonic() + timeout
    me = asyncio.current_task()
    while time.monotonic() < deadline:
        others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not others and sim.stats().totals.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)


def pool_state(client: Any) -> tuple[int, int]:
    """Requests still registered in `client`'s pool, and stranded connections."""
    pool = client._transport._pool
    held = {id(request.connection) for request in pool._requests}
    stranded = sum(
        1 for c in pool.connections if not c.is_idle() and not c.is_closed() and id(c) not in held
    )
    return len(pool._requests), stranded


async def lost_slots(sim: Simulator, library: Any, client: Any) -> tuple[int, int]:
    """Of `POOL_SIZE` concurrent requests that hold their connection for 1 s, with a 0.5 s
    pool timeout: PoolTimeouts, other errors."""
    url = sim.openai_base_url + "/chat/completions"
    timeout = library.Timeout(5.0, pool=0.5)

    async def one() -> str:
        try:
            response = await client.post(url, json=body("st/hold"), timeout=timeout)
            response.raise_for_status()
        except library.PoolTimeout:
            return "pool"
        except Exception:
            return "error"
        return "ok"

    outcomes = await asyncio.gather(*(one() for _ in range(POOL_SIZE)))
    return outcomes.count("pool"), outcomes.count("error")


async def one_run(
    sim: Simulator, library_name: str, workload: str, seed: int, cancellations: int
) -> dict[str, Any]:
    library = importlib.import_module(library_name)
    client = new_client(library)
    rng = random.Random(seed)
    round_of = work(sim, client, workload)
    started = time.perf_counter()
    finished = 0
    for i in range(cancellations):
        task = asyncio.create_task(round_of(i))
        await asyncio.sleep(rng.random() * MAX_DELAY_S)
        finished += task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await quiesce(sim)
    left_before_gc, _ = pool_state(client)
    gc.collect()  # finalises abandoned streams, whose `finally` closes their response
    await quiesce(sim)
    left, stranded = pool_state(client)
    pool_timeouts, errors = await lost_slots(sim, library, client)
    await quiesce(sim)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.aclose(), 5.0)
    return {
        "left": left,
        "freed_by_gc": left_before_gc - left,
        "stranded": stranded,
        "lost": pool_timeouts,
        "errors": errors,
        "finished": finished,
        "seconds": time.perf_counter() - started,
    }


def summarise(
    results: dict[tuple[str, str, int], dict[str, Any]], seeds: list[int], cancellations: int
) -> None:
    rows = []
    lost_by: dict[tuple[str, str], int] = {}
    for workload in WORKLOADS:
        for library in LIBRARIES:
            runs = [results[workload, library, seed] for seed in seeds]
            lost = sum(r["lost"] for r in runs)
            lost_by[workload, library] = lost
            rows.append(
                [
                    workload,
                    library,
                    len(runs),
                    len(runs) * cancellations,
                    sum(r["finished"] for r in runs),
                    sum(r["freed_by_gc"] for r in runs),
                    sum(r["left"] for r in runs),
                    sum(r["stranded"] for r in runs),
                    f"{lost}/{len(runs) * POOL_SIZE}",
                    f"{lost / (len(runs) * POOL_SIZE):.0%}",
                    sum(r["lost"] == POOL_SIZE for r in runs),
                    " ".join(str(r["lost"]) for r in runs),
                    sum(r["errors"] for r in runs),
                ]
            )
    headers = [
        "workload",
        "library",
        "runs",
        "cancelled",
        "done first",
        "freed by GC",
        "left requests",
        "stranded",
        "lost slots",
        "pool lost",
        "runs pool dead",
        "lost per run",
        "other errors",
    ]
    print()
    print(table(headers, rows))
    print()
    for workload in WORKLOADS:
        old, new = lost_by[workload, "httpx"], lost_by[workload, "httpx2"]
        slots = len(seeds) * POOL_SIZE
        ratio = (
            f"{old / new:.1f}x as many"
            if new
            else ("neither lost any" if not old else "httpx2 lost none")
        )
        print(
            f"  {workload:<15} slots lost for good: httpx {old}/{slots} ({old / slots:.0%}), "
            f"httpx2 {new}/{slots} ({new / slots:.0%}): {ratio}"
        )
    print(
        "\ndone first: rounds that had ended before their cancellation; freed by GC: requests "
        "left registered\nuntil the garbage collector finalised an abandoned stream; left "
        "requests: still registered after\nthat; stranded: connections neither idle nor "
        "closed held by no request; lost slots: of\n"
        f"{POOL_SIZE} concurrent 1 s requests made next (0.5 s pool timeout), how many got "
        "PoolTimeout"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds of 100 cancellations")
    parser.add_argument("--seeds", default=None, help="comma-separated; default 1,2,3,4,5")
    parser.add_argument("--cancellations", type=int, default=None, help="per run; default 120")
    args = parser.parse_args()
    seeds = [int(s) for s in (args.seeds or ("1,2" if args.quick else "1,2,3,4,5")).split(",")]
    cancellations = args.cancellations or (100 if args.quick else 120)

    # A client gone mid-write makes asyncio and uvicorn log about sockets: not the subject.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    print(f"stranded connections ({machine()}, load {os.getloadavg()[0]:.2f})")
    print(
        f"pool of {POOL_SIZE} connections per run, {cancellations} rounds cancelled 0-"
        f"{MAX_DELAY_S * 1e3:.0f} ms after they started, seeds {seeds}; "
        f"{', '.join(f'{n} {importlib.import_module(n).__version__}' for n in LIBRARIES)}"
    )
    results: dict[tuple[str, str, int], dict[str, Any]] = {}
    with run_simulator(Scenario.from_text(SCENARIO), log_level="critical") as sim:
        for seed in seeds:
            for workload in WORKLOADS:
                for library in LIBRARIES:
                    r = asyncio.run(one_run(sim, library, workload, seed, cancellations))
                    results[workload, library, seed] = r
                    print(
                        f"  ... seed {seed} {workload:<15} {library:<7} gc {r['freed_by_gc']} "
                        f"left {r['left']} "
                        f"stranded {r['stranded']} lost {r['lost']}/{POOL_SIZE} "
                        f"({r['seconds']:.1f} s)",
                        flush=True,
                    )
    summarise(results, seeds, cancellations)


if __name__ == "__main__":
    main()
