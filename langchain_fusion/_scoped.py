"""Iterate a generator with each step inside a context, never across a `yield`.

A fusion's stream sets context variables (the deadline for retries, the children's cleared
callback context, a LlamaIndex span) while it runs members and the judge; the caller's code
between chunks must not see them. Each step is entered and left in the caller's context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

T = TypeVar("T")
Scope = Callable[[], AbstractContextManager[Any]]


def each_step_in(iterator: Iterator[T], scope: Scope) -> Iterator[T]:
    """Iterate `iterator`, each `next` inside a fresh `scope()`; close it at the end."""
    try:
        while True:
            with scope():
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


async def aeach_step_in(iterator: AsyncIterator[T], scope: Scope) -> AsyncIterator[T]:
    """The async twin of `each_step_in`."""
    try:
        while True:
            with scope():
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
