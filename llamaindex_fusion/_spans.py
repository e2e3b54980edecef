"""LlamaIndex instrumentation of a fusion: one span per member and judge call.

Each call the runtime makes (a LangChain chat model or a wrapped LlamaIndex LLM) gets a
span `fusion:<role>:<name>-<id>`, a child of the fusion's own span (`FusionLLM.chat-...`),
tagged with the member's name, model, role, step and round. A LlamaIndex member's own
spans and events nest under that span, and carry the same tags.

The span opens when the driver configures the call (`config_for`, run in the context the
call runs in) and closes when LangChain reports the call's end or error to the
`CallSpans` handler, which the call's config carries. LlamaIndex closes a streaming
method's span as soon as it returns the generator, so the fusion's generators re-enter
the fusion's span around each step (the runtime's `Session` enters it, see `FusionLLM._scope`).
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar
from uuid import UUID, uuid4

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig
from llama_index_instrumentation import get_dispatcher

from langchain_fusion._runtime.steps import Call
from llamaindex_fusion._compat import active_instrument_tags, active_span_id

T = TypeVar("T")

dispatcher = get_dispatcher(__name__)


def fusion_call(role: str, member: str, model: str, step: str, round: int) -> None:
    """The signature that a call span's bound arguments describe (never called)."""


class CallSpans(BaseCallbackHandler):
    """Opens a span per call under the fusion's span, and closes it when the call ends."""

    run_inline = True  # called in the call's own context, never from an executor

    def __init__(self, parent_id: str | None) -> None:
        self.parent_id = parent_id
        self._open: dict[UUID, tuple[str, inspect.BoundArguments]] = {}
        self._lock = threading.Lock()

    def config_for(self, call: Call) -> RunnableConfig:
        """The run config of `call`; opens its span and makes it the active span.

        The driver calls this in the context the call runs in (a task, a worker thread's
        copied context, or the current step of a stream), so the span becomes the parent of
        the spans that a LlamaIndex member opens.
        """
        run_id = uuid4()
        member = call.member
        name = "fusion:judge" if call.role == "judge" else f"fusion:{call.role}:{member.name}"
        span_id = f"{name}-{run_id}"
        tags = {
            "fusion_role": call.role,
            "fusion_member": member.name,
            "fusion_model": member.model,
            "fusion_step": call.step,
            "fusion_round": call.round,
        }
        bound = inspect.signature(fusion_call).bind(
            role=call.role, member=member.name, model=member.model, step=call.step, round=call.round
        )
        with self._lock:
            self._open[run_id] = (span_id, bound)
        dispatcher.span_enter(
            id_=span_id, bound_args=bound, parent_id=self.parent_id, tags=dict(tags)
        )
        active_span_id.set(span_id)
        active_instrument_tags.set({**active_instrument_tags.get(), **tags})
        return {
            "run_id": run_id,
            "run_name": name,
            "callbacks": [self],
            "tags": ["nostream", name, f"fusion:step:{call.step}"],
            "metadata": {
                "fusion_role": call.role,
                "fusion_member": member.name,
                "fusion_round": call.round,
            },
        }

    def _close(self, run_id: UUID, error: BaseException | None) -> None:
        with self._lock:
            entry = self._open.pop(run_id, None)
        if entry is None:
            return
        span_id, bound = entry
        if error is None:
            dispatcher.span_exit(id_=span_id, bound_args=bound)
        else:
            dispatcher.span_drop(id_=span_id, bound_args=bound, err=error)

    def close_all(self, reason: str = "the fusion finished before this call") -> None:
        """Drop the spans of calls that never reported an end (abandoned stragglers)."""
        with self._lock:
            left = list(self._open)
        for run_id in left:
            self._close(run_id, RuntimeError(reason))

    # LangChain reports the end of the outermost run of the call's config: a chat model run,
    # or a chain run when the member is wrapped (retry, fallbacks, structured output).

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the span of a finished chat model call."""
        self._close(run_id, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Drop the span of a failed chat model call."""
        self._close(run_id, error)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the span of a finished wrapped call."""
        self._close(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Drop the span of a failed wrapped call."""
        self._close(run_id, error)


class Scope:
    """Context variables set for a block; re-entrant (one set of tokens per entry)."""

    def __init__(self, values: list[tuple[contextvars.ContextVar[Any], Any]]) -> None:
        self.values = values
        self._tokens: list[list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]]] = []

    def __enter__(self) -> None:
        self._tokens.append([(var, var.set(value)) for var, value in self.values])

    def __exit__(self, *exc: object) -> None:
        for var, token in reversed(self._tokens.pop()):
            var.reset(token)


def closing_spans(iterator: Iterator[T], spans: CallSpans) -> Iterator[T]:
    """Iterate `iterator`; drop the spans of calls still open when the iteration ends."""
    try:
        yield from iterator
    finally:
        spans.close_all()


async def aclosing_spans(iterator: AsyncIterator[T], spans: CallSpans) -> AsyncIterator[T]:
    """The async twin of `closing_spans`."""
    try:
        async for item in iterator:
            yield item
    finally:
        spans.close_all()
