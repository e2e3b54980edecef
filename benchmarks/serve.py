"""Benchmark 7, `fusion serve`: N concurrent OpenAI SDK clients against the server.

The simulator serves three members (0.2/0.3/0.4 s) and a 0.2 s judge
(`benchmarks/scenarios/throughput.yaml`) in its own process; `fusion serve` runs in its own
process with one virtual model, `fusion/best_of`, over those slugs (`ChatOpenAICompatible`
members). For each N (50, 200), rounds alternate between:

- in-process: the same fusion (built from the same config file with `load_fusions`) called
  with `ainvoke` N times at once from this process: the latency the server adds to
- served:     N `openai.AsyncOpenAI` clients (one each, no retries) sending one
              `chat.completions.create` each, at once, to the server

Columns: requests per second (N over the round's wall time), p50 and p99 latency of each
request, the latency the server adds (served minus in-process, at p50 and p99; and, per
request, its latency minus its fusion's own `timings.total_s` measured inside the server:
HTTP, the SDK client and the server's own work, under the same load), the
server's CPU per request (its `/proc` user+system time over the served rounds, divided by
the requests; beside it this process's CPU per in-process fusion, the same fusion's work
without the server), errors (exceptions, statuses other than 200, members not ok) and the
server's peak RSS. Target: added p50 <= 5 ms and zero errors at N=200.

Run: `python benchmarks/serve.py [--quick] [--n 50,200] [--rounds 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
    SCENARIOS,
    SimProcess,
    machine,
    percentile,
    server_cpu,
    start_listening,
    stop_process,
    table,
)

PROMPT = "Review this migration plan for operational risks."
MODEL = "fusion/best_of"


def write_config(sim: SimProcess, folder: Path) -> Path:
    config = {
        "server": {"max_concurrent_requests": 1024, "reports_kept": 100},
        "fusions": {
            MODEL: {
                "pool": ["tp/a", "tp/b", "tp/c"],
                "judge": "tp/judge",
                "mode": "best_of",
                "base_url": sim.v1,
                "api_key_env": "BENCH_UPSTREAM_KEY",
            }
        },
    }
    path = folder / "fusions.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


class ServerProcess:
    """`fusion serve --config FILE` in its own process on a free loopback port."""

    def __init__(self, config: Path, log: Path) -> None:
        env = {**os.environ, "BENCH_UPSTREAM_KEY": API_KEY}
        self.log = log.open("w")
        try:
            self.process, self.base = start_listening(
                [
                    *("-m", "langchain_fusion", "serve", "--config", str(config)),
                    *("--port", "0", "--log-level", "info"),
                ],
                "fusion serve",
                "/health",
                env=env,
                stderr=self.log,
            )
        except BaseException:
            self.log.close()
            raise

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        return server_cpu(self.process.pid)

    def peak_rss_mib(self) -> float:
        """Peak resident memory of the server process (VmHWM), MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        """Stop the server this object started."""
        stop_process(self.process, grace=15)
        self.log.close()


async def in_process_round(fusion: Any, n: int) -> tuple[list[float], int, float]:
    async def one() -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            message = await fusion.ainvoke(PROMPT)
        except Exception:
            return time.perf_counter() - started, False
        report = message.response_metadata["fusion"]
        ok = all(c["status"] == "ok" for c in report["candidates"])
        return time.perf_counter() - started, ok

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - started
    return [r[0] for r in results], sum(1 for r in results if not r[1]), wall


async def served_round(clients: list[Any], n: int) -> tuple[list[float], int, float, list[float]]:
    """Latencies, errors, wall time, and each request's latency beyond its fusion's own time."""

    async def one(client: Any) -> tuple[float, bool, float | None]:
        started = time.perf_counter()
        try:
            completion = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": PROMPT}]
            )
        except Exception:
            return time.perf_counter() - started, False, None
        latency = time.perf_counter() - started
        report = completion.model_extra["fusion"]
        ok = all(c["status"] == "ok" for c in report["candidates"])
        return latency, ok, latency - report["timings"]["total_s"]

    started = time.perf_counter()
    results = await asyncio.gather(*(one(clients[i]) for i in range(n)))
    wall = time.perf_counter() - started
    beyond = [r[2] for r in results if r[2] is not None]
    return [r[0] for r in results], sum(1 for r in results if not r[1]), wall, beyond


async def measure(server: ServerProcess, config: Path, ns: list[int], rounds: int) -> list[Any]:
    from openai import AsyncOpenAI

    from langchain_fusion.serve import load_fusions

    fusion = load_fusions(config, env={"BENCH_UPSTREAM_KEY": API_KEY})[MODEL]
    top = max(ns)
    clients = [
        AsyncOpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0, timeout=60)
        for _ in range(top)
    ]
    # warm-up: imports, pools, every client's first request, the server's first calls
    await in_process_round(fusion, top)
    await served_round(clients, top)  # (warm-up)
    rows = []
    for n in ns:
        local: list[float] = []
        served: list[float] = []
        beyond: list[float] = []
        local_errors = served_errors = 0
        served_wall = 0.0
        cpu = local_cpu = 0.0
        for _ in range(rounds):
            before = time.process_time()
            latencies, errors, _ = await in_process_round(fusion, n)
            local_cpu += time.process_time() - before
            local += latencies
            local_errors += errors
            before = server.cpu_s()
            latencies, errors, wall, extra = await served_round(clients, n)
            cpu += server.cpu_s() - before
            served += latencies
            beyond += extra
            served_errors += errors
            served_wall += wall
        p50_local, p99_local = percentile(local, 50), percentile(local, 99)
        p50, p99 = percentile(served, 50), percentile(served, 99)
        rows.append(
            [
                n,
                f"{n * rounds / served_wall:.0f}",
                f"{p50_local * 1000:.0f} / {p99_local * 1000:.0f}",
                f"{p50 * 1000:.0f} / {p99 * 1000:.0f}",
                f"{(p50 - p50_local) * 1000:+.1f}",
                f"{(p99 - p99_local) * 1000:+.1f}",
                f"{percentile(beyond, 50) * 1000:.1f} / {percentile(beyond, 99) * 1000:.1f}",
                f"{local_cpu / (n * rounds) * 1000:.1f}",
                f"{cpu / (n * rounds) * 1000:.1f}",
                f"{local_errors} / {served_errors}",
                f"{server.peak_rss_mib():.0f}",
            ]
        )
    for client in clients:
        await client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="50,200", help="concurrent clients per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per N and side")
    parser.add_argument("--quick", action="store_true", help="N=50, one round")
    args = parser.parse_args()
    ns = [50] if args.quick else [int(v) for v in args.n.split(",")]
    rounds = 1 if args.quick else args.rounds
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="fusion-serve-bench-") as tmp:
        folder = Path(tmp)
        with SimProcess(SCENARIOS / "throughput.yaml") as sim:
            config = write_config(sim, folder)
            server = ServerProcess(config, folder / "server.log")
            try:
                rows = asyncio.run(measure(server, config, ns, rounds))
            finally:
                server.stop()
    print(
        f"\nfusion serve ({MODEL}: 3 members 0.2/0.3/0.4 s + 0.2 s judge, on the simulator), "
        f"{rounds} round(s) per N, side by side:"
    )
    print(
        table(
            [
                "N",
                "req/s",
                "in-process p50/p99 ms",
                "served p50/p99 ms",
                "added p50 ms",
                "added p99 ms",
                "beyond own fusion p50/p99 ms",
                "in-process CPU ms/fusion",
                "server CPU ms/req",
                "errors (in-proc / served)",
                "server peak RSS MiB",
            ],
            rows,
        )
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
