"""Client CPU per call of the candidate member clients, side by side with bare httpx.

The simulator runs as its own process (`python -m langchain_fusion.sim`), so client and
server do not share a GIL; this process only drives clients. Each client makes rounds of
`--calls` concurrent calls (200 by default, all in flight at once, loopback) to a model that
answers at once; client CPU per call is this process's CPU time (`time.process_time`) over
a round divided by its calls. Rounds are interleaved across clients, and the median is
reported, with its ratio to bare httpx measured in the same run (the issue's bar for the
member client: at most 2x bare httpx).

Clients, non-streaming (`ainvoke`) and streaming (`astream`, usage requested):
- httpx:                bare `httpx.AsyncClient` POST, JSON decoded (streaming: SSE lines
                        decoded)
- httpx2:               the same with `httpx2.AsyncClient` (pydantic's fork of httpx)
- ChatOpenAI:           `langchain_openai.ChatOpenAI(base_url=...)`
- ChatOpenRouter:       `langchain_openrouter.ChatOpenRouter(base_url=...)`
- ChatOpenAICompatible: `langchain_fusion.providers.ChatOpenAICompatible`, the member that
                        OpenRouter slugs resolve to (its shared httpx2 pool)
- ChatOpenAICompatible+httpx: the same given an `httpx.AsyncClient` with the same limits
                        (`http_async_client=`), as it was before it moved to httpx2

It also times importing each client and building one model, on top of langchain-core (fresh
interpreters), as that is start-up time of the `fusion` command.

`--paired` compares only `ChatOpenAICompatible` on httpx2 with the same given an httpx client,
round by round (streamed and plain calls alternating on the same two clients), and counts
the rounds each was the cheaper in.

Run: `python benchmarks/client_cpu.py [--calls 200] [--repeats 5] [--no-stream] [--paired]`
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2

MODEL = "bench/echo"
PROMPT = "Summarise the benefits of connection pooling in one sentence."
SCENARIO = f"""
name: client-cpu
seed: 1
models:
  - name: {MODEL}
    ttft: 0
    prompt_price: 0.000001
    completion_price: 0.000002
    default_answer: >-
      Connection pooling reuses open connections across requests, which saves the cost of
      new handshakes and keeps latency low under load.
"""

Call = Callable[[], Awaitable[Any]]


def start_simulator(scenario: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the simulator in its own process on a free port; returns it and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "langchain_fusion.sim", "--scenario", str(scenario), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return process, match.group(0)


def clients(base: str, stream: bool) -> dict[str, Call]:
    """One call of each client, non-streaming or streaming."""
    from langchain_openai import ChatOpenAI
    from langchain_openrouter import ChatOpenRouter
    from openrouter import OpenRouter
    from openrouter.utils import BackoffStrategy, RetryConfig

    from langchain_fusion.providers import ChatOpenAICompatible

    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    limits2 = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    headers = {"Authorization": "Bearer sk-bench"}
    url = base + "/api/v1/chat/completions"
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}

    def bare(client: Any) -> Call:
        async def call() -> Any:
            response = await client.post(url, json=body, headers=headers)
            response.raise_for_status()
            return response.json()

        async def streamed() -> Any:
            events = []
            async with client.stream("POST", url, json=stream_body, headers=headers) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        events.append(json.loads(line[6:]))
            return events

        return streamed if stream else call

    openai = ChatOpenAI(
        model=MODEL, base_url=base + "/v1", api_key="sk-bench", max_retries=0, stream_usage=True
    )
    # ChatOpenRouter's SDK client gets the same pool limits (its default of 100 connections
    # times out at 200 concurrent calls) and no retries (its default can run for an hour).
    sdk = OpenRouter(
        api_key="sk-bench",
        server_url=base + "/api/v1",
        client=httpx.Client(limits=limits, timeout=60),
        async_client=httpx.AsyncClient(limits=limits, timeout=60),
        retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False),
    )
    openrouter = ChatOpenRouter(
        model=MODEL, base_url=base + "/api/v1", api_key="sk-bench", client=sdk
    )
    ours = ChatOpenAICompatible(model=MODEL, base_url=base + "/api/v1", api_key="sk-bench")
    ours_httpx = ChatOpenAICompatible(
        model=MODEL,
        base_url=base + "/api/v1",
        api_key="sk-bench",
        http_async_client=httpx.AsyncClient(limits=limits),
    )

    def invoke(model: Any) -> Call:
        return lambda: model.ainvoke(PROMPT)

    def astream(model: Any) -> Call:
        async def run() -> Any:
            return [chunk async for chunk in model.astream(PROMPT)]

        return run

    wrap = astream if stream else invoke
    return {
        "httpx": bare(httpx.AsyncClient(limits=limits, timeout=60)),
        "httpx2": bare(httpx2.AsyncClient(limits=limits2, timeout=60)),
        "ChatOpenAI": wrap(openai),
        "ChatOpenRouter": wrap(openrouter),
        "ChatOpenAICompatible": wrap(ours),
        "ChatOpenAICompatible+httpx": wrap(ours_httpx),
    }


async def cpu_per_call(call: Call, calls: int) -> float:
    """Client CPU seconds per call over one round of `calls` concurrent calls."""
    limit = asyncio.Semaphore(calls)

    async def one() -> None:
        async with limit:
            await call()

    gc.collect()  # garbage left by the previous client is not this client's cost
    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - start) / calls


async def measure(base: str, stream: bool, calls: int, repeats: int) -> dict[str, list[float]]:
    """Interleaved rounds of every client; CPU seconds per call, per round."""
    table = clients(base, stream)
    for call in table.values():  # warm-up: imports, connections, caches
        await cpu_per_call(call, min(calls, 50))
    samples: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(repeats):
        for name, call in table.items():
            samples[name].append(await cpu_per_call(call, calls))
    return samples


async def run_all(
    base: str, calls: int, repeats: int, stream: bool
) -> dict[str, dict[str, list[float]]]:
    """Both tables, measured in one event loop."""
    tables = {"non-streaming (ainvoke)": await measure(base, False, calls, repeats)}
    if stream:
        tables["streaming (astream, usage requested)"] = await measure(base, True, calls, repeats)
    return tables


async def paired(base: str, calls: int, repeats: int) -> None:
    """`ChatOpenAICompatible` on httpx2 against the same given an httpx client, round by
    round: in each round both clients make `calls` streamed calls, then `calls` plain ones
    (which client goes first alternates); prints the medians and the rounds each won."""
    from langchain_fusion.providers import ChatOpenAICompatible

    pools = {
        "httpx2": httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        ),
        "httpx": httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        ),
    }
    models = {
        name: ChatOpenAICompatible(
            model=MODEL, base_url=base + "/api/v1", api_key="sk-bench", http_async_client=pool
        )
        for name, pool in pools.items()
    }

    def streamed(model: Any) -> Call:
        async def run() -> Any:
            return [chunk async for chunk in model.astream(PROMPT)]

        return run

    calls_of = {
        (name, kind): streamed(model)
        if kind == "streaming"
        else (lambda m=model: m.ainvoke(PROMPT))
        for name, model in models.items()
        for kind in ("streaming", "non-streaming")
    }
    for call in calls_of.values():  # warm-up
        await cpu_per_call(call, min(calls, 50))
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in calls_of}
    for i in range(repeats):
        names = list(models) if i % 2 == 0 else list(models)[::-1]
        for name in names:
            for kind in ("streaming", "non-streaming"):
                samples[name, kind].append(await cpu_per_call(calls_of[name, kind], calls))
    print(f"\nChatOpenAICompatible on httpx2 vs given an httpx client, {repeats} paired rounds")
    for kind in ("non-streaming", "streaming"):
        new, old = samples["httpx2", kind], samples["httpx", kind]
        won = sum(a < b for a, b in zip(new, old, strict=True))
        print(
            f"  {kind:<14} CPU ms/call median: httpx2 {statistics.median(new) * 1e3:.2f}, "
            f"httpx {statistics.median(old) * 1e3:.2f}; httpx2 cheaper in {won}/{repeats} rounds"
        )


def import_times(repeats: int = 3) -> dict[str, float]:
    """Seconds to import each client and build one, on top of langchain-core (fresh
    interpreters): ChatOpenRouter loads its SDK only when built."""
    code = (
        "import time, httpx; from langchain_core.language_models import BaseChatModel; "
        "t = time.perf_counter(); "
        "from {module} import {name}; "
        "{name}(model='m', base_url='http://127.0.0.1:9/api/v1', api_key='k'); "
        "print(time.perf_counter() - t)"
    )
    modules = {
        "ChatOpenAI": "langchain_openai",
        "ChatOpenRouter": "langchain_openrouter",
        "ChatOpenAICompatible": "langchain_fusion",
    }
    result = {}
    for name, module in modules.items():
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code.format(module=module, name=name)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(repeats)
        ]
        result[name] = statistics.median(runs)
    return result


def report(title: str, samples: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["httpx"]
    print(f"\n{title}")
    print(f"  {'client':<27} {'CPU ms/call':>12} {'x httpx':>8}   (rounds: min..max ms)")
    for name, value in medians.items():
        low, high = min(samples[name]) * 1e3, max(samples[name]) * 1e3
        print(f"  {name:<27} {value * 1e3:>12.2f} {value / base:>8.2f}   ({low:.2f}..{high:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per client")
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming table")
    parser.add_argument("--no-imports", action="store_true", help="skip the import timings")
    parser.add_argument(
        "--paired",
        action="store_true",
        help="only ChatOpenAICompatible on httpx2 vs on an httpx client, round by round",
    )
    args = parser.parse_args()

    os.environ.pop("OPENAI_BASE_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "client_cpu.yaml"
        scenario.write_text(SCENARIO, encoding="utf-8")
        server, base = start_simulator(scenario)
        try:
            print(
                f"client CPU per call: {args.calls} concurrent calls per round, "
                f"{args.repeats} rounds per client, simulator in its own process at {base}"
            )
            if args.paired:
                asyncio.run(paired(base, args.calls, args.repeats))
                return
            # One event loop for everything: ChatOpenAI caches its async httpx client per
            # process, and its connections break in a second loop.
            tables = asyncio.run(run_all(base, args.calls, args.repeats, not args.no_stream))
            for title, samples in tables.items():
                report(title, samples)
        finally:
            server.terminate()
            server.wait(10)
    if not args.no_imports:
        print("\nimport + build one model, on top of langchain-core (median of 3 interpreters)")
        for name, seconds in import_times().items():
            print(f"  {name:<22} {seconds:>8.2f} s")


if __name__ == "__main__":
    main()
