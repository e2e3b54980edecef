"""Shared fixtures: the five ways of calling a fusion, behind one async callable."""

from __future__ import annotations

import asyncio
import functools
import operator
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

# The checks that test directories share live in helper modules, which pytest does not
# rewrite by itself: have their failed asserts show their values, as in a test module.
pytest.register_assert_rewrite("rel_helpers")

#: A small PNG shipped with the examples, served instead of the standard suites' download.
LOCAL_PNG = Path(__file__).resolve().parents[1] / "examples" / "sun.png"

Answer = Callable[..., Awaitable[AIMessage | AIMessageChunk]]

SYNC_ENTRIES = ("invoke", "stream", "batch")
ASYNC_ENTRIES = ("ainvoke", "astream")
ENTRIES = (*SYNC_ENTRIES, *ASYNC_ENTRIES)


def _sum(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert chunks, "the stream yielded nothing"
    return functools.reduce(operator.add, chunks)


async def _call(entry: str, runnable: Any, prompt: str | list[BaseMessage]) -> Any:
    """Call `runnable` through `entry`; sync entries run in a worker thread (no loop there)."""
    if entry == "invoke":
        return await asyncio.to_thread(runnable.invoke, prompt)
    if entry == "batch":
        results = await asyncio.to_thread(runnable.batch, [prompt])
        return results[0]
    if entry == "stream":
        return _sum(await asyncio.to_thread(lambda: list(runnable.stream(prompt))))
    if entry == "ainvoke":
        return await runnable.ainvoke(prompt)
    if entry == "astream":
        return _sum([chunk async for chunk in runnable.astream(prompt)])
    raise AssertionError(entry)


def _answer_fixture(entry: str) -> Answer:
    async def answer(runnable: Any, prompt: str | list[BaseMessage] = "Question?", **bind: Any):
        if bind:
            runnable = runnable.bind(**bind)
        return await _call(entry, runnable, prompt)

    return answer


@pytest.fixture(params=ENTRIES)
def answer(request: pytest.FixtureRequest) -> Answer:
    """`await answer(fusion, prompt, **per_call_settings)` through every entry point.

    Streams are summed into one `AIMessageChunk` (content, tool calls, usage, metadata).
    """
    return _answer_fixture(request.param)


@pytest.fixture(params=("invoke", "ainvoke"))
def answer_invoke(request: pytest.FixtureRequest) -> Answer:
    """Like `answer`, through `invoke` and `ainvoke` only (for the slower scenarios)."""
    return _answer_fixture(request.param)


@pytest.fixture(params=("stream", "astream"))
def stream_chunks(request: pytest.FixtureRequest) -> Callable[..., Awaitable[Any]]:
    """`await stream_chunks(fusion, prompt)`: the chunks of `stream` or `astream`, and any error.

    Returns `(chunks, exception or None)`, so tests can see what was sent before a failure.
    """

    async def collect(runnable: Any, prompt: str = "Question?") -> tuple[list[Any], Any]:
        chunks: list[Any] = []
        if request.param == "stream":

            def run() -> BaseException | None:
                try:
                    for chunk in runnable.stream(prompt):
                        chunks.append(chunk)
                except Exception as exc:
                    return exc
                return None

            error = await asyncio.to_thread(run)
        else:
            error = None
            try:
                async for chunk in runnable.astream(prompt):
                    chunks.append(chunk)
            except Exception as exc:
                error = exc
        return chunks, error

    return collect


@pytest.fixture
def offline_image(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Serve `examples/sun.png` to `httpx.get`.

    LangChain's standard image tests fetch a PNG from GitHub before calling the model; this
    suite is offline (pytest-socket), so the fetch gets a local image and every model call
    of the test runs unchanged.
    """
    data = LOCAL_PNG.read_bytes()

    def get(url: str, **_: Any) -> httpx.Response:
        return httpx.Response(200, content=data, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", get)
    return data
