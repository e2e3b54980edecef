"""Helpers of the e2e tests: clients of the simulator, pools, entry points, accounting.

One simulator serves the whole directory (`scenario.yaml`); every test starts from zeroed
stats and request numbers (`sim` fixture), so fault schedules (`requests: [1]`) restart.
Members and judge are `ChatOpenAI` (no retries, `stream_usage=True`) and `ChatOpenRouter`
whose SDK client never retries: the SDK's default retry, which `max_retries=0` leaves in
place, can retry 5xx for an hour (see docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from entries import call_entry
from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_fusion.sim import Simulator

SCENARIO_FILE = Path(__file__).with_name("scenario.yaml")

#: The prompt every member has a scripted answer to.
PROMPT = "Review this migration plan for operational risks."

#: The members' scripted answers to `PROMPT` (scenario.yaml).
ANSWERS = {
    "e2e/ada": "Rehearse the cutover on a copy of production data. Keep downtime short.",
    "e2e/bob": "Keep a tested rollback path until the new system has run a full cycle. "
    "Keep downtime short.",
    "e2e/cy": "Freeze writes during the migration window. Keep downtime short.",
}

#: What the simulated judge (`prefer: rollback`) writes when asked for a synthesis of the
#: three answers: every distinct sentence, the preferred candidate's first, then the others
#: ordered by text.
SYNTHESIS = (
    "Keep a tested rollback path until the new system has run a full cycle. "
    "Keep downtime short. "
    "Freeze writes during the migration window. "
    "Rehearse the cutover on a copy of production data."
)

CLIENTS = ("openai", "openrouter")
POOLS = ("openai", "openrouter", "mixed")
ENTRIES = ("invoke", "ainvoke", "stream", "astream")

_SDK_CLIENTS: dict[tuple[str, int], Any] = {}


def openai_chat(sim: Simulator, model: str, **kwargs: Any) -> Any:
    """A `ChatOpenAI` on the simulator: no retries, usage in streams, a 10 s timeout."""
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    # With a base_url, ChatOpenAI leaves stream_usage off unless asked.
    kwargs.setdefault("stream_usage", True)
    return ChatOpenAI(model=model, base_url=sim.openai_base_url, api_key="sk-test", **kwargs)


def openrouter_chat(sim: Simulator, model: str, timeout_ms: int = 10_000, **kwargs: Any) -> Any:
    """A `ChatOpenRouter` on the simulator whose SDK client never retries."""
    import openrouter
    from langchain_openrouter import ChatOpenRouter
    from openrouter.utils import BackoffStrategy, RetryConfig

    key = (sim.openrouter_base_url, timeout_ms)
    client = _SDK_CLIENTS.get(key)
    if client is None:  # two httpx clients each: build them once
        client = openrouter.OpenRouter(
            api_key="sk-test",
            server_url=sim.openrouter_base_url,
            retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False),
            timeout_ms=timeout_ms,
        )
        _SDK_CLIENTS[key] = client
    return ChatOpenRouter(
        model=model,
        base_url=sim.openrouter_base_url,
        api_key="sk-test",
        client=client,
        max_retries=0,
        **kwargs,
    )


def chat(sim: Simulator, client: str, model: str, **kwargs: Any) -> Any:
    """A chat model of `client` (`"openai"` or `"openrouter"`) for simulated `model`."""
    if client == "openai":
        return openai_chat(sim, model, **kwargs)
    if client == "openrouter":
        return openrouter_chat(sim, model, **kwargs)
    raise AssertionError(client)


def pool_clients(kind: str) -> tuple[list[str], str]:
    """The clients of the three members and of the judge for a pool `kind`."""
    if kind == "mixed":
        return ["openai", "openrouter", "openai"], "openrouter"
    return [kind] * 3, kind


def make_pool(sim: Simulator, kind: str) -> tuple[list[Any], Any]:
    """Members ada, bob and cy and the judge, through the clients of pool `kind`."""
    members, judge = pool_clients(kind)
    names = ["e2e/ada", "e2e/bob", "e2e/cy"]
    pool = [chat(sim, c, n) for c, n in zip(members, names, strict=True)]
    return pool, chat(sim, judge, "e2e/judge")


async def call(entry: str, runnable: Any, prompt: Any = PROMPT) -> AIMessage | AIMessageChunk:
    """Call `runnable` through `entry` (`entries.call_entry`), by default on `PROMPT`."""
    result: AIMessage | AIMessageChunk = await call_entry(entry, runnable, prompt)
    return result


def assert_matches_stats(
    report: dict[str, Any],
    usage: Any,
    sim: Simulator,
    cost_dropped: frozenset[str] = frozenset(),
    given_up: bool = False,
) -> None:
    """The report's per-model calls, tokens and cost, and the message's usage, are what the
    simulator says it served and billed.

    Args:
        report: `response_metadata["fusion"]` (or an exception's `.report`).
        usage: The fused message's `usage_metadata` (None to skip).
        sim: The simulator.
        cost_dropped: Models with a call whose cost the client did not keep: their cost is
            checked to be known for fewer calls than served (see the callers).
        given_up: The fusion gave up a call after its request went out (a timeout, a
            quorum's straggler): the report cannot know what the provider billed for it,
            and says its cost is incomplete.
    """
    stats = sim.stats()
    served = {name: row for name, row in stats.models.items() if row.requests}
    by_model = report["usage_by_model"]
    assert set(by_model) == set(served)
    for name, row in by_model.items():
        billed = served[name]
        assert row["calls"] == billed.requests, name
        assert (row["input_tokens"], row["output_tokens"]) == (
            billed.prompt_tokens,
            billed.completion_tokens,
        ), name
        assert row["total_tokens"] == billed.total_tokens, name
        if name in cost_dropped:
            assert (row["cost_usd"] or 0.0) < billed.cost, name
        elif billed.cost == 0:
            assert row["cost_usd"] in (None, 0.0), name  # nothing billed, nothing known
        else:
            assert row["cost_usd"] == pytest.approx(billed.cost, rel=1e-9, abs=1e-12), name
    assert report["usage"]["input_tokens"] == stats.totals.prompt_tokens
    assert report["usage"]["output_tokens"] == stats.totals.completion_tokens
    if usage is not None:
        assert usage["input_tokens"] == stats.totals.prompt_tokens
        assert usage["output_tokens"] == stats.totals.completion_tokens
        assert usage["total_tokens"] == stats.totals.total_tokens
    if not cost_dropped and stats.totals.cost:
        assert report["cost_usd"] == pytest.approx(stats.totals.cost, rel=1e-9, abs=1e-12)
        assert report["cost_complete"] is not given_up
    elif cost_dropped or given_up:
        assert report["cost_complete"] is False
