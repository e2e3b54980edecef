"""Worker threads for sync code, reused from call to call, that copy the caller's context.

The sync driver's fan-outs and a sync hedge's copies run on these threads. A thread that is
idle takes the next piece of work; when none is idle a new one starts, so that a straggler
the fusion gave up on (a sync call cannot be interrupted) never holds up later work. Idle
threads end after `IDLE_S` seconds. How many calls run at once is bounded by the caller
(`max_concurrency`), not here.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds an idle worker waits for work before it ends.
IDLE_S = 30.0

_Work = tuple[Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class Workers:
    """A pool of daemon threads that grows on demand and shrinks when idle."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self.idle_s = idle_s
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn(*args)` on a worker, in a copy of the caller's context."""
        future: Future[T] = Future()
        self._work.put((future, contextvars.copy_context(), fn, args))
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # that idle worker is taken by this piece of work
        if spawn:
            threading.Thread(target=self._loop, name="llm-fusion-worker", daemon=True).start()
        return future

    def _loop(self) -> None:
        while True:
            try:
                future, context, fn, args = self._work.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # still counted idle: no work is on its way to us
                        self._idle -= 1
                        return
                continue  # a submitter counted on this worker: its work is queued
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(context.run(fn, *args))
                except BaseException as exc:
                    future.set_exception(exc)
            del future, context, fn, args  # nothing of the work outlives it
            with self._lock:
                self._idle += 1


#: The process's workers, shared by every fusion.
WORKERS = Workers()
