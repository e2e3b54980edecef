"""Child-run configuration for member and judge calls.

Children get only the caller's tracers, parented on the fusion's run, so that traces nest
while other handlers (usage counters, streaming handlers, the caller's `on_chat_model_start`
listeners) see the fusion as one chat model call. `ls_*` metadata is dropped, since it
describes the fusion, not the member; child runs are tagged `fusion:<role>:<name>` and
`nostream`, so that LangGraph's message streaming shows only the fused answer.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, CallbackManager
from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer

from langchain_fusion._runtime.calls import ConfigFor
from langchain_fusion._runtime.steps import Call


@dataclass
class Parent:
    """The fusion run that member and judge runs nest under."""

    run_id: UUID | None
    handlers: list[BaseCallbackHandler] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


#: Set by `FusionChatModel.stream`/`astream` around the start of `_stream`, which LangChain
#: calls without a run manager; carries the fusion run's id and the caller's callbacks.
STREAM_PARENT: contextvars.ContextVar[Parent | None] = contextvars.ContextVar(
    "llm_fusion_stream_parent", default=None
)


def parent_of(manager: BaseCallbackManager | Any | None) -> Parent:
    """The parent described by a run manager (or an empty one)."""
    if manager is None:
        return Parent(run_id=None)
    handlers = list(getattr(manager, "inheritable_handlers", None) or manager.handlers)
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
                inheritable_tags=list(parent.tags),
            )
        else:
            config["callbacks"] = []
        return config

    return config_for
