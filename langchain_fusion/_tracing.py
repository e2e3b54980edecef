"""Child-run configuration for member and judge calls.

Children get only the caller's tracers, parented on the fusion's run, so that traces nest
while other handlers (usage counters, streaming handlers, the caller's `on_chat_model_start`
listeners) see the fusion as one chat model call. `ls_*` metadata is dropped, since it
describes the fusion, not the member, and so are the fusion's invocation parameters that
LangSmith's tracer carries as default metadata for nested runs; child runs are tagged
`fusion:<role>:<name>` and `nostream`, so that LangGraph's message streaming shows only the
fused answer.

Handlers that LangChain adds to every run from context variables
(`get_usage_metadata_callback()` and other configure hooks) are cleared while children are
configured, unless they are tracers: they too would see every member and judge call, and
count its usage a second time.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer
from langchain_core.tracers.langchain import LangChainTracer

from langchain_fusion._compat import configure_hook_vars, var_child_runnable_config
from langchain_fusion._runtime.calls import ConfigFor
from langchain_fusion._runtime.steps import Call

T = TypeVar("T")


@dataclass
class Parent:
    """The fusion run that member and judge runs nest under."""

    run_id: UUID | None
    handlers: list[BaseCallbackHandler] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


#: Set by `FusionChatModel.stream`/`astream` around the start of `_stream`, which LangChain
#: calls without a run manager: gives the fusion run's parent (its id and the caller's
#: callbacks), computed only when `_stream` asks for it.
STREAM_PARENT: contextvars.ContextVar[Callable[[], Parent] | None] = contextvars.ContextVar(
    "llm_fusion_stream_parent", default=None
)


def without_defaults(
    handler: BaseCallbackHandler, defaults: Mapping[str, Any]
) -> BaseCallbackHandler:
    """`handler`, without the tracing metadata defaults that `defaults` put on it.

    LangChain hands the fusion's run a copy of each `LangChainTracer` whose metadata defaults
    include the fusion's invocation parameters (`_type`, `pool`, `mode`...); passed on as is,
    that copy would stamp them on every member and judge run ("first wins"), over the
    member's own `_type`. Defaults set by the caller (a different value) are kept.
    """
    if not isinstance(handler, LangChainTracer) or not handler.tracing_metadata:
        return handler
    own = {
        k: v
        for k, v in handler.tracing_metadata.items()
        if not (k in defaults and defaults[k] == v)
    }
    if len(own) == len(handler.tracing_metadata):
        return handler
    clone = handler.copy_with_metadata_defaults()
    clone.tracing_metadata = own or None
    return clone


def parent_of(
    manager: BaseCallbackManager | Any | None,
    fusion_params: Callable[[], Mapping[str, Any]] | None = None,
) -> Parent:
    """The parent described by a run manager (or an empty one).

    `fusion_params` gives the fusion's invocation parameters, which LangChain set as tracer
    metadata defaults on the manager's tracers; they are taken off again for the children
    (computed only when a tracer carries such defaults).
    """
    if manager is None:
        return Parent(run_id=None)
    handlers = list(getattr(manager, "inheritable_handlers", None) or manager.handlers)
    if fusion_params is not None and any(
        isinstance(h, LangChainTracer) and h.tracing_metadata for h in handlers
    ):
        params = fusion_params()
        handlers = [without_defaults(h, params) for h in handlers]
    return Parent(
        run_id=getattr(manager, "run_id", None) or getattr(manager, "parent_run_id", None),
        handlers=handlers,
        tags=list(getattr(manager, "inheritable_tags", []) or []),
        metadata=dict(getattr(manager, "inheritable_metadata", {}) or {}),
    )


def child_config_factory(parent: Parent) -> ConfigFor:
    """A function giving each call its run config: tracers only, tagged, no `ls_*` metadata."""
    tracers = [h for h in parent.handlers if isinstance(h, (BaseTracer, AsyncBaseTracer))]
    metadata = {k: v for k, v in parent.metadata.items() if not k.startswith("ls_")}

    def config_for(call: Call) -> RunnableConfig:
        tags = ["nostream", f"fusion:{call.role}:{call.member.name}", f"fusion:step:{call.step}"]
        config: RunnableConfig = {
            "tags": tags,
            "metadata": {
                **metadata,
                "fusion_role": call.role,
                "fusion_member": call.member.name,
                "fusion_round": call.round,
            },
            "run_name": f"fusion:{call.role}:{call.member.name}",
        }
        if tracers:
            config["callbacks"] = CallbackManager(
                handlers=list(tracers),
                inheritable_handlers=list(tracers),
                parent_run_id=parent.run_id,
                # the caller's inheritable tags go on the child runs too, as LangChain
                # does for nested runs (`inheritable_tags` alone only reach grandchildren)
                tags=list(parent.tags),
                inheritable_tags=list(parent.tags),
            )
        else:
            config["callbacks"] = []
        return config

    return config_for


@contextmanager
def children_context() -> Iterator[None]:
    """Clear the non-tracer handlers that LangChain would add to child runs from context.

    LangChain's configure hooks (`get_usage_metadata_callback()`, and the like) put their
    handler on every run made in their context. The fusion's own run already has them;
    members and judge, configured inside this block (their tasks and threads copy the
    context), do not. The enclosing runnable's config (`var_child_runnable_config`, set
    while a chain runs its steps) is cleared too: a wrapped member (`.bind`, tools) merges
    it into its own config and would hand the chain's callbacks to the member's run.
    Hold it only where nothing but the fusion's own code runs.
    """
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = [
        (var_child_runnable_config, var_child_runnable_config.set(None))
    ]
    for var in configure_hook_vars():
        handler = var.get()
        if handler is not None and not isinstance(handler, (BaseTracer, AsyncBaseTracer)):
            tokens.append((var, var.set(None)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
