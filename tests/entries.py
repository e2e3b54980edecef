"""Calling a fusion through each LangChain entry point, and polling: shared by the e2e and
reliability tests."""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk


def join(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    """Streamed chunks added up into one message."""
    assert chunks, "the stream yielded nothing"
    return functools.reduce(operator.add, chunks)


async def call_entry(entry: str, runnable: Any, prompt: Any) -> Any:
    """Call `runnable` through `entry`; sync entries run in a worker thread (no event loop
    there, as in a sync program)."""
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
