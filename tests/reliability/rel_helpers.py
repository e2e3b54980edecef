"""Helpers of the reliability tests: clients of the simulator, entry points, accounting.

Members and judges are `ChatOpenAI` (no retries, `stream_usage=True`) or `ChatOpenRouter`
whose SDK client never retries (its default retry, which `max_retries=0` leaves in place,
can retry 5xx for an hour: see docs/architecture.md), as in `tests/e2e`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from pathlib import Path
from typing import Any, TypeVar

import pytest
from entries import call_entry, wait_for
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from matrix import DEADLINE, FAULT_KIND

from langchain_fusion import JudgeError, NotEnoughAnswersError
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.sim import Simulator, Stats

SCENARIO_FILE = Path(__file__).with_name("scenario.yaml")

PROMPT = "Review this migration plan for operational risks."

ANSWERS = {
    "rel/ada": "Rehearse the cutover on a copy of production data. Keep downtime short.",
    "rel/bob": "Keep a tested rollback path until the new system has run a full cycle. "
    "Keep downtime short.",
    "rel/cy": "Freeze writes during the migration window. Keep downtime short.",
}

CLIENTS = ("openai", "openrouter")

#: The members of the fusions under test (`rel/ada`, `rel/bob`, `rel/cy`).
MEMBERS = ("ada", "bob", "cy")

#: How soon the simulator must see a cancelled request go, in seconds.
PROMPTLY = 1.0

_SDK_CLIENTS: dict[tuple[str, str, int], Any] = {}


def openai_chat(sim: Simulator, model: str, api_key: str = "sk-test", **kwargs: Any) -> Any:
    """A `ChatOpenAI` on the simulator: no retries, usage in streams, a 10 s timeout."""
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("stream_usage", True)
    return ChatOpenAI(model=model, base_url=sim.openai_base_url, api_key=api_key, **kwargs)


def openrouter_sdk(sim: Simulator, api_key: str = "sk-test", timeout_ms: int = 10_000) -> Any:
    """An OpenRouter SDK client on the simulator that never retries (built once per key)."""
    import openrouter
    from openrouter.utils import BackoffStrategy, RetryConfig

    key = (sim.openrouter_base_url, api_key, timeout_ms)
    client = _SDK_CLIENTS.get(key)
    if client is None:
        client = openrouter.OpenRouter(
            api_key=api_key,
            server_url=sim.openrouter_base_url,
            retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False),
            timeout_ms=timeout_ms,
        )
        _SDK_CLIENTS[key] = client
    return client


def openrouter_chat(sim: Simulator, model: str, api_key: str = "sk-test", **kwargs: Any) -> Any:
    """A `ChatOpenRouter` on the simulator whose SDK client never retries."""
    from langchain_openrouter import ChatOpenRouter

    client = kwargs.pop("client", None) or openrouter_sdk(sim, api_key)
    return ChatOpenRouter(
        model=model,
        base_url=sim.openrouter_base_url,
        api_key=api_key,
        client=client,
        max_retries=0,
        **kwargs,
    )


def chat(sim: Simulator, client: str, model: str, /, **kwargs: Any) -> Any:
    """A chat model of `client` (`"openai"` or `"openrouter"`) for simulated `model`."""
    if client == "openai":
        return openai_chat(sim, model, **kwargs)
    if client == "openrouter":
        return openrouter_chat(sim, model, **kwargs)
    raise AssertionError(client)


async def call(entry: str, runnable: Any, prompt: Any = PROMPT) -> Any:
    """Call `runnable` through `entry` (`entries.call_entry`), by default on `PROMPT`."""
    result: Any = await call_entry(entry, runnable, prompt)
    return result


def wait_idle(sim: Simulator, timeout: float = 5.0) -> None:
    """Block until the simulator serves nothing (abandoned requests were accounted)."""
    deadline = time.monotonic() + timeout
    while sim.stats().totals.in_flight:
        assert time.monotonic() < deadline, "the simulator still serves requests"
        time.sleep(0.01)


def assert_usage_matches(
    reports: list[dict[str, Any]],
    sim: Simulator,
    *,
    cost_known: frozenset[str] | None = None,
    usage: dict[str, Any] | None = None,
    retried: dict[str, int] | None = None,
) -> None:
    """The reports' per-model calls and tokens, summed, are what the simulator served.

    Args:
        reports: Fusion reports (`response_metadata["fusion"]` or an exception's `.report`)
            of every fusion since the last reset.
        sim: The simulator.
        cost_known: Models whose every billed call reached the fusion with its cost: their
            cost must equal the simulator's. Others' known cost may only be lower
            (`ChatOpenAI` drops OpenRouter's `usage.cost` when streaming). None: all.
        usage: The fused message's `usage_metadata`, when there is one (single report).
        retried: Per model, the failed requests that a client retried within a call: the
            simulator counts them as requests (billing nothing), the report as one call.
    """
    stats = sim.stats()
    served = {name: row for name, row in stats.models.items() if row.requests}
    totals: dict[str, dict[str, Any]] = {}
    for report in reports:
        for name, row in report["usage_by_model"].items():
            total = totals.setdefault(
                name, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
            )
            for key in ("calls", "input_tokens", "output_tokens"):
                total[key] += row[key]
            total["cost_usd"] += row["cost_usd"] or 0.0
    assert set(totals) == set(served)
    for name, row in totals.items():
        billed = served[name]
        assert row["calls"] == billed.requests - (retried or {}).get(name, 0), name
        assert (row["input_tokens"], row["output_tokens"]) == (
            billed.prompt_tokens,
            billed.completion_tokens,
        ), name
        if cost_known is None or name in cost_known:
            assert row["cost_usd"] == pytest.approx(billed.cost, rel=1e-9, abs=1e-12), name
        else:
            assert row["cost_usd"] <= billed.cost + 1e-12, name
    if usage is not None:
        assert usage["input_tokens"] == stats.totals.prompt_tokens
        assert usage["output_tokens"] == stats.totals.completion_tokens
        assert usage["total_tokens"] == stats.totals.total_tokens


# -- fault cases (the fault matrix, and its subset through FusionLLM) ----------------------

F = TypeVar("F")


def build_fault_case(
    fusion_class: Callable[..., F],
    target: str,
    fault: str,
    mode: str,
    *,
    synthesis: bool,
    timeout: float | None,
    healthy: dict[str, Any],
    judge: Any,
    failing_member: Callable[[str], Any],
    failing_judge: Callable[[str], Any],
) -> tuple[F, str, int]:
    """The fusion of a fault case, the simulated model that fails, and how many calls it gets.

    Args:
        fusion_class: `FusionChatModel` or `FusionLLM`.
        target: "one member" (the pool: ada, bob, bad), "all members" (bad0, bad1,
            bad2), or anything else for the judge (the pool: ada, bob, cy).
        fault: The fault (`matrix.FAULTS`).
        mode: The fusion's mode.
        synthesis: The judge fails its second call (merge's synthesis), not its first.
        timeout: The `member_timeout` or `judge_timeout` of the failing calls (a hang).
        healthy: The members ada, bob and cy.
        judge: The judge, when it is not the one that fails.
        failing_member: A member of the failing simulated model.
        failing_judge: A judge of the failing simulated model.
    """
    pool = healthy
    settings: dict[str, Any] = {}
    if target not in ("one member", "all members"):
        prefix = "judge2" if synthesis else "judge"
        failing = f"rel/{prefix}-{fault}"
        judge = failing_judge(failing)
        calls = 2 if synthesis else 1
        if timeout is not None:
            settings["judge_timeout"] = timeout
    else:
        failing = f"rel/f-{fault}"
        if target == "one member":
            pool = {"ada": healthy["ada"], "bob": healthy["bob"], "bad": failing_member(failing)}
            calls = 1
        else:
            pool = {f"bad{i}": failing_member(failing) for i in range(3)}
            calls = 3
        if timeout is not None:
            settings["member_timeout"] = timeout
    fusion = fusion_class(
        pool=pool,
        judge=judge,
        mode=mode,
        seed=3,
        debate_rounds=1,
        deadline=DEADLINE,
        **settings,
    )
    return fusion, failing, calls


def assert_error_matches(pattern: str, error: str | None) -> None:
    """A failed call's error in a report: it matches `pattern` and holds no API key."""
    assert error is not None
    assert re.search(pattern, error), error
    assert "sk-test" not in error


def assert_fault_report(
    sim: Simulator,
    report: dict[str, Any],
    error: Exception | None,
    text: str | None,
    *,
    target: str,
    mode: str,
    status: str,
    expected: str,
    error_pattern: str,
) -> None:
    """The report of a fault case records every failure, with its status and error type,
    and the fusion answered (`text`) or raised (`error`) as it must.

    Args:
        sim: The simulator.
        report: The fusion's report (from its answer, or from the error it raised).
        error: The error the fusion raised, or None.
        text: The fused answer's text, or None (raised).
        target: "one member" (the pool: ada, bob, bad), "all members" (bad0, bad1,
            bad2), or anything else for the judge (the pool: ada, bob, cy).
        mode: The fusion's mode.
        status: The failing call's status (`timeout` for a hang, else `error`).
        expected: `answer`, `fallback`, `NotEnoughAnswersError` or `JudgeError`.
        error_pattern: What each failed call's error must match.
    """
    statuses = {c["name"]: c["status"] for c in report["candidates"]}
    errors = {c["name"]: c["error"] for c in report["candidates"]}
    if target == "one member":
        assert text is not None
        assert statuses == {"ada": "ok", "bob": "ok", "bad": status}
        assert_error_matches(error_pattern, errors["bad"])
        if mode in ("best_of", "vote"):
            assert text == ANSWERS["rel/bob"]
            assert report["winner"] == "bob"
        else:  # the judge's synthesis, the preferred (rollback) answer first
            assert text.startswith("Keep a tested rollback path")
        assert report["judge"]["status"] == "ok"
        assert report["judge_fallback"] is False
    elif target == "all members":
        assert isinstance(error, NotEnoughAnswersError)
        assert statuses == {f"bad{i}": status for i in range(3)}
        assert error.errors == errors
        for failed in errors.values():
            assert_error_matches(error_pattern, failed)
        assert error.answers == {}
        assert report["judge"]["status"] == "skipped"
        assert sim.stats().models["rel/judge"].requests == 0
    else:
        assert statuses == dict.fromkeys(MEMBERS, "ok")
        assert report["judge"]["status"] == status
        assert report["judge_fallback"] is True
        assert_error_matches(error_pattern, report["judge"]["error"])
        assert report["judge_error"] == report["judge"]["error"]
        if expected == "fallback":
            assert text == ANSWERS["rel/ada"]  # the first member in pool order
            assert report["winner"] == "ada"
        else:  # tokens of the judge's answer were sent: every member answer is kept
            assert isinstance(error, JudgeError)
            assert set(error.answers) == set(MEMBERS)


async def assert_fault_served(
    sim: Simulator, failing: str, calls: int, *, target: str, fault: str
) -> None:
    """What the simulator saw of a fault case, once idle: `calls` requests of the `failing`
    model (no retry), the fault injected once per failing participant, and hung requests
    closed by the client side (abandoned), not by the simulator's 5 s hang."""
    await wait_for(lambda: sim.stats().totals.in_flight == 0, timeout=3.0)
    row = sim.stats().models[failing]
    assert row.requests == calls
    assert row.faults == {FAULT_KIND[fault]: 1 if target != "all members" else 3}
    if fault == "hang":
        assert row.abandoned == (3 if target == "all members" else 1)


# -- cancellation ---------------------------------------------------------------------------


def others(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since `before` that are still pending (the test's own excluded)."""
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def assert_cancelling_abandons_every_call(
    sim: Simulator, fusion_call: Coroutine[Any, Any, Any], slow: str, expected: int, phase: str
) -> None:
    """Run `fusion_call` in a task and cancel it once `expected` requests of the `slow` model
    are in flight: each is abandoned within `PROMPTLY`, none completes (when the `phase` is
    "judge", every other request, the members', did), and no task is left."""
    before = set(asyncio.all_tasks())

    task = asyncio.create_task(fusion_call)
    await wait_for(lambda: sim.stats().models[slow].in_flight == expected)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await wait_for(lambda: sim.stats().models[slow].abandoned == expected, timeout=PROMPTLY)
    assert time.monotonic() - cancelled_at < PROMPTLY
    stats = sim.stats()
    assert stats.totals.in_flight == 0
    assert stats.models[slow].completed == 0
    if phase == "judge":
        assert stats.totals.completed == stats.totals.requests - 1  # the members answered
    await settle()
    assert others(before) == []


async def relay_and_cancel(stream: AsyncIterable[Any]) -> tuple[Any, float]:
    """Relay `stream` in a task, as a server relaying it to a client, and cancel the task
    (the client went away) 0.1 s after the first item, while the stream stalls.

    Returns:
        The first item, and when the task was cancelled (`time.monotonic()`).
    """
    items: list[Any] = []

    async def relay() -> None:
        async for item in stream:
            items.append(item)

    task = asyncio.create_task(relay())
    await wait_for(lambda: bool(items))
    # Cancelled while the stream stalls: a cancellation that lands together with a chunk
    # can be lost (see test_a_cancellation_landing_with_a_chunk_is_not_lost).
    await asyncio.sleep(0.1)
    left_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return items[0], left_at


async def assert_the_stalled_judge_was_left(
    sim: Simulator, judge: str, mode: str, before: set[asyncio.Task[Any]]
) -> None:
    """After the reader of a fusion left its judge's stalled stream: nothing in flight, the
    judge's streamed request the one hung (and abandoned), and no task left since `before`."""
    stats = sim.stats()
    assert stats.totals.in_flight == 0
    judge_row = stats.models[judge]
    assert (judge_row.stream_requests, judge_row.faults) == (1, {"hang": 1})
    assert judge_row.completed == (1 if mode == "merge" else 0)  # merge's comparison
    await settle()
    assert others(before) == []


# -- load -----------------------------------------------------------------------------------


async def run_concurrently(runs: Iterable[Awaitable[Any]]) -> tuple[list[Any], float]:
    """Await `runs` together; nothing but `NotEnoughAnswersError` may be raised.

    Returns:
        Each run's result (its exception, if it raised), and the seconds they took.
    """
    started = time.monotonic()
    results = await asyncio.gather(*runs, return_exceptions=True)
    elapsed = time.monotonic() - started

    unexpected = [
        r
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, NotEnoughAnswersError)
    ]
    assert unexpected == [], unexpected[:3]
    return results, elapsed


def faults_by_kind(stats: Stats, models: Iterable[str]) -> dict[str, int]:
    """Per kind of fault the simulator injects, how many `models` got (summed)."""
    return {
        kind: sum(stats.models[name].faults.get(kind, 0) for name in models)
        for kind in dict.fromkeys(FAULT_KIND.values())
    }


def assert_every_fault_reported(reports: list[dict[str, Any]], faults: dict[str, int]) -> None:
    """Every faulted call, and no other, is a failed candidate in one of `reports`, with its
    error (a hang only delays its answer)."""
    failed = [c for r in reports for c in r["candidates"] if c["status"] != "ok"]
    assert len(failed) == sum(n for kind, n in faults.items() if kind != "hang")
    assert all(c["status"] == "error" and c["error"] for c in failed)


class TinyChat(BaseChatModel):
    """A minimal in-process chat model: a fixed answer, a judge that reads the fences.

    As a judge (its prompt holds fenced candidates and a `## Task`) it prefers the candidate
    mentioning "rollback" and answers a verdict, a comparison or a synthesis as asked. Usage
    is counted in words. It keeps nothing between calls, so memory can be measured.
    """

    model: str = "tiny"
    answer: str = "Tiny says hello."

    @property
    def _llm_type(self) -> str:
        return "tiny"

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        text = "\n".join(m.text for m in messages)
        candidates = extract_candidates(text)
        task = text[text.rfind("## Task") :]
        if candidates and "## Task" in text:
            labels = sorted(candidates)
            winner = next((lb for lb in labels if "rollback" in candidates[lb]), labels[0])
            if '"winner"' in task:
                out = json.dumps({"winner": winner, "rationale": "it says rollback"})
            elif '"consensus"' in task:
                out = json.dumps({"consensus": [], "contradictions": [], "gaps": []})
            else:
                out = " ".join(candidates[lb] for lb in dict.fromkeys([winner, *labels]))
        else:
            out = self.answer
        n_in, n_out = len(text.split()), len(out.split())
        usage: UsageMetadata = {
            "input_tokens": n_in,
            "output_tokens": n_out,
            "total_tokens": n_in + n_out,
        }
        return AIMessage(out, usage_metadata=usage, response_metadata={"model_name": self.model})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        words = reply.text.split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if i == 0 else " " + word,
                    usage_metadata=reply.usage_metadata if last else None,
                    chunk_position="last" if last else None,
                )
            )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(messages)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            yield chunk


class NoStreamChat(TinyChat):
    """`TinyChat` without streaming: LangChain's `stream()` then yields one `AIMessage`."""

    _stream = BaseChatModel._stream
    _astream = BaseChatModel._astream
