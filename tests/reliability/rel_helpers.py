"""Helpers of the reliability tests: clients of the simulator, entry points, accounting.

Members and judges are `ChatOpenAI` (no retries, `stream_usage=True`) or `ChatOpenRouter`
whose SDK client never retries (its default retry, which `max_retries=0` leaves in place,
can retry 5xx for an hour: see DESIGN.md), as in `tests/e2e`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.sim import Simulator

SCENARIO_FILE = Path(__file__).with_name("scenario.yaml")

PROMPT = "Review this migration plan for operational risks."

ANSWERS = {
    "rel/ada": "Rehearse the cutover on a copy of production data. Keep downtime short.",
    "rel/bob": "Keep a tested rollback path until the new system has run a full cycle. "
    "Keep downtime short.",
    "rel/cy": "Freeze writes during the migration window. Keep downtime short.",
}

CLIENTS = ("openai", "openrouter")

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


def join(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    """Streamed chunks added up into one message."""
    assert chunks, "the stream yielded nothing"
    return functools.reduce(operator.add, chunks)


async def call(entry: str, runnable: Any, prompt: Any = PROMPT) -> Any:
    """Call `runnable` through `entry`; sync entries run in a worker thread."""
    if entry == "invoke":
        return await asyncio.to_thread(runnable.invoke, prompt)
    if entry == "stream":
        return join(await asyncio.to_thread(lambda: list(runnable.stream(prompt))))
    if entry == "ainvoke":
        return await runnable.ainvoke(prompt)
    if entry == "astream":
        return join([chunk async for chunk in runnable.astream(prompt)])
    raise AssertionError(entry)


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


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
