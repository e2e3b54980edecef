"""Resources over many fusions: no growth of open file descriptors, threads, tasks or memory.

- 1,000 sequential fusions with in-process members (the network adds nothing to what the
  fusion itself holds on to): every mode through every entry point, sync ones from worker
  threads as a sync program would. After a warm-up, open file descriptors, threads,
  pending tasks, live objects and resident memory stay within a small bound.
- 40 sequential fusions over the simulator through real clients (connections, the sync
  driver's thread pools, SSE streams): file descriptors and threads stay flat.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import threading
from typing import Any

import pytest
from rel_helpers import PROMPT, TinyChat, call, chat

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

MODES = ("best_of", "merge", "debate", "vote")
#: The default executor's bound (`concurrent.futures.ThreadPoolExecutor`'s default).
EXECUTOR_MAX = min(32, (os.cpu_count() or 1) + 4)
ENTRIES = ("ainvoke", "astream", "invoke", "stream")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def pending_tasks() -> int:
    current = asyncio.current_task()
    return sum(1 for t in asyncio.all_tasks() if t is not current and not t.done())


def snapshot() -> dict[str, int]:
    gc.collect()
    return {
        "fds": open_fds(),
        # The event loop's default executor (`asyncio_N`, used by `asyncio.to_thread` and by
        # LangChain for sync callbacks) is a bounded pool that grows on demand: counted
        # apart, against its bound.
        "threads": sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_")),
        "executor_threads": sum(1 for t in threading.enumerate() if t.name.startswith("asyncio_")),
        "tasks": pending_tasks(),
        "objects": len(gc.get_objects()),
        "rss_kib": rss_kib(),
    }


async def run_fusions(fusions: dict[str, Any], count: int, offset: int = 0) -> None:
    for i in range(offset, offset + count):
        # Every run of four covers every entry point; every run of sixteen every pair.
        mode = MODES[i % len(MODES)]
        entry = ENTRIES[(i + i // len(MODES)) % len(ENTRIES)]
        msg = await call(entry, fusions[mode])
        assert msg.response_metadata["fusion"]["judge"]["status"] in ("ok", "skipped")


@pytest.mark.timeout(90)
async def test_a_thousand_sequential_fusions_hold_on_to_nothing() -> None:
    pool = {
        "ada": TinyChat(model="ada", answer="Rehearse the cutover."),
        "bob": TinyChat(model="bob", answer="Keep a tested rollback path."),
        "cy": TinyChat(model="cy", answer="Freeze writes during the window."),
    }
    fusions = {
        mode: FusionChatModel(pool=pool, judge=TinyChat(model="judge"), mode=mode, seed=1)
        for mode in MODES
    }
    await run_fusions(fusions, 96)  # warm-up: caches, the loop's default executor threads
    before = snapshot()

    await run_fusions(fusions, 1000, offset=96)

    after = snapshot()
    growth = {key: after[key] - before[key] for key in before}
    assert growth["fds"] <= 0, growth
    assert growth["threads"] <= 0, growth
    assert after["executor_threads"] <= EXECUTOR_MAX, after
    assert growth["tasks"] <= 0, growth
    # A leak of one small object per fusion would show as +1,000.
    assert growth["objects"] < 500, growth
    assert growth["rss_kib"] < 8 * 1024, growth


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("warm_async")
async def test_sequential_fusions_over_http_keep_fds_and_threads_flat(sim: Simulator) -> None:
    def fusions(client: str) -> dict[str, Any]:
        pool = {name: chat(sim, client, f"rel/{name}") for name in ("ada", "bob", "cy")}
        judge = chat(sim, client, "rel/judge")
        return {
            mode: FusionChatModel(pool=pool, judge=judge, mode=mode, seed=1, debate_rounds=1)
            for mode in MODES
        }

    clients = {client: fusions(client) for client in ("openai", "openrouter")}
    for client in clients.values():  # warm-up: every client and entry point's pools
        await run_fusions(client, 4)
    before = snapshot()

    await run_fusions(clients["openai"], 32, offset=4)
    await run_fusions(clients["openrouter"], 8, offset=4)

    after = snapshot()
    assert after["fds"] <= before["fds"] + 2, (before, after)  # keep-alive reconnects
    assert after["threads"] <= before["threads"], (before, after)
    assert after["executor_threads"] <= EXECUTOR_MAX, after
    assert after["tasks"] <= before["tasks"], (before, after)
    assert sim.stats().totals.in_flight == 0
    assert PROMPT  # the prompt every scripted answer matches


def fusion_objects() -> collections.Counter[str]:
    """Live objects of the types a fusion makes per call: its own, LangChain's messages and
    outputs, httpx2's (and httpx's) requests and responses."""
    gc.collect()
    prefixes = ("langchain_fusion", "langchain_core.messages", "langchain_core.outputs", "httpx")
    kinds = (f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    return collections.Counter(kind for kind in kinds if kind.startswith(prefixes))


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("warm_async")
async def test_fusions_over_http_hold_on_to_nothing(sim: Simulator) -> None:
    """Over HTTP through the slug members (`ChatOpenAICompatible`, the cheapest client per
    call). All live objects are no measure here: the simulator shares the process and its
    server and the connection pools keep a slowly churning set of connections (about 30
    transports after 500 fusions, then flat); the fusion's own kinds of object must not grow
    at all."""
    fusions = {
        mode: FusionChatModel(
            pool=["rel/ada", "rel/bob", "rel/cy"],
            judge="rel/judge",
            api_key="sk-test",
            base_url=sim.openrouter_base_url,
            mode=mode,
            seed=1,
            debate_rounds=1,
        )
        for mode in MODES
    }
    await run_fusions(fusions, 48)  # warm-up: pools, caches, executor threads
    before, counted = snapshot(), fusion_objects()

    await run_fusions(fusions, 120, offset=48)

    after = snapshot()
    grown = fusion_objects() - counted  # keeps only the kinds that grew
    assert not grown, grown
    assert after["tasks"] <= before["tasks"], (before, after)
    assert after["rss_kib"] - before["rss_kib"] < 8 * 1024, (before, after)
    assert sim.stats().totals.in_flight == 0
