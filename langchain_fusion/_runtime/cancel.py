"""Cancelling tasks so that they end: a cancellation can be lost, so it is repeated."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

# How long cancelled tasks get to unwind (close their connections) before we move on.
CANCEL_WAIT_S = 1.0

# How often a task that survived its cancellation is cancelled again.
RECANCEL_S = 0.05


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], timeout: float = CANCEL_WAIT_S
) -> None:
    """Cancel `tasks` and wait up to `timeout` seconds for them to end.

    On Python 3.11, `asyncio.wait_for` (clients wrap each streamed chunk in it) returns a
    result that lands together with a cancellation and drops the cancellation, so a task
    that is still running after a short wait is cancelled again.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = end - loop.time()
        if left <= 0:
            return
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
