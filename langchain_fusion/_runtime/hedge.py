"""Hedged members: a backup copy starts when the first token is late; the loser is cancelled.

`HedgedChatModel` wraps a member and its backup (another model, or the same one again). The
primary starts at once; if it has produced no token after `after` seconds, or fails before
its first token, the backup starts. The first copy to produce a token answers, the other is
cancelled (async) or abandoned at its next chunk (sync). The answer's `response_metadata`
says which copy answered (`hedge`), its model (`hedge_model`) and what became of a loser
that ran (`hedge_loser`: `"cancelled"`, or `"abandoned"` when a sync thread runs on).
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from langchain_fusion._runtime.cancel import cancel_and_wait
from langchain_fusion._runtime.chunks import as_ai_message, as_chunk, merge_chunks
from langchain_fusion._runtime.members import Member, as_member, map_chat_model
from langchain_fusion._runtime.workers import WORKERS

_DONE = object()
_LATE = object()  # what the primary "yields" when its first token is late
PRIMARY, BACKUP = "primary", "backup"


class _Race:
    """Which copy answers: the first to produce a chunk.

    A copy's failure before any chunk is tolerated while the other copy may still answer.
    Shared by the async and sync streams.
    """

    def __init__(self) -> None:
        self.winner: str | None = None
        self.failed: dict[str, BaseException] = {}
        self.started: set[str] = {PRIMARY}

    def take(self, tag: str, item: object) -> tuple[str, Any]:
        """Classify one item from a copy.

        Returns `("chunk", c)`, `("done", None)`, `("raise", e)`, `("skip", None)` for the
        loser's items and a copy's early failure, or `("backup", None)` when the backup is to
        start: the primary is late (`_LATE`) or failed before its first token.
        """
        if item is _LATE:
            return "backup", None
        if self.winner is not None and tag != self.winner:
            return "skip", None
        if isinstance(item, BaseException):
            if self.winner is None:
                self.failed[tag] = item
                if self.started - set(self.failed):
                    return "skip", None
                if BACKUP not in self.started:
                    return "backup", None
            return "raise", item
        if item is _DONE:
            if self.winner is None:
                self.winner = tag
            return "done", None
        if self.winner is None:
            self.winner = tag
        return "chunk", item


def _last_chunk(
    race: _Race, models: dict[str, str], running: set[str] | frozenset[str] = frozenset()
) -> ChatGenerationChunk:
    """The stream's last chunk: which copy won, its model, and what became of the loser.

    A loser that ran took tokens the answer's usage lacks; `running` are the copies whose
    request still runs (sync threads cannot be interrupted).
    """
    winner = race.winner or PRIMARY
    meta: dict[str, Any] = {"hedge": winner, "hedge_model": models[winner]}
    loser = BACKUP if winner == PRIMARY else PRIMARY
    if loser in race.started and loser not in race.failed:
        meta["hedge_loser"] = "abandoned" if loser in running else "cancelled"
    return ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=meta))


def _copy_config(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None, tag: str
) -> RunnableConfig:
    """The run config of one copy: a child of the hedged member's run, so traces nest.

    (An LLM run's manager has no `get_child`: the child manager is built from its
    inheritable handlers, tags and metadata, as LangChain builds a chain's.)
    """
    if run_manager is None:
        return {}
    handlers = list(run_manager.inheritable_handlers)
    tags = list(run_manager.inheritable_tags)
    metadata = dict(run_manager.inheritable_metadata)
    callbacks = CallbackManager(
        handlers=handlers,
        inheritable_handlers=handlers,
        parent_run_id=run_manager.run_id,
        tags=[*tags, f"fusion:hedge:{tag}"],
        inheritable_tags=tags,
        metadata=metadata,
        inheritable_metadata=metadata,
    )
    return {"callbacks": callbacks, "run_name": tag}


def _mark(chunk: Any) -> ChatGenerationChunk:
    message = as_chunk(chunk) or AIMessageChunk(content=str(chunk))
    return ChatGenerationChunk(message=message)


class HedgedChatModel(BaseChatModel):
    """A member with a backup that starts when the member's first token is late."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    primary: Any = Field(...)
    """The member as the user passed it."""

    backup: Any = Field(...)
    """The copy started when the primary is late: another model, or the same one."""

    after: float = Field(default=1.0, gt=0)
    """Seconds without a first token from the primary before the backup starts."""

    primary_model: str = ""
    """The primary's model identifier, for the usage report."""

    backup_model: str = ""
    """The backup's model identifier, for the usage report."""

    @property
    def _models(self) -> dict[str, str]:
        return {PRIMARY: self.primary_model, BACKUP: self.backup_model}

    @property
    def _llm_type(self) -> str:
        return "llm-fusion-hedged"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"primary": repr(self.primary), "backup": repr(self.backup), "after": self.after}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind the tools to both copies."""

        def bind(model: BaseChatModel) -> Runnable[Any, Any]:
            return model.bind_tools(tools, tool_choice=tool_choice, **kwargs)

        return self.model_copy(
            update={
                "primary": map_chat_model(self.primary, bind),
                "backup": map_chat_model(self.backup, bind),
            }
        )

    # -- async ------------------------------------------------------------------------------

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        extra = {**kwargs, **({"stop": stop} if stop else {})}

        async def pump(tag: str, runnable: Any) -> None:
            try:
                config = _copy_config(run_manager, tag)
                async for chunk in runnable.astream(messages, config, **extra):
                    await items.put((tag, chunk))
                await items.put((tag, _DONE))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # handed to the race, which decides
                await items.put((tag, exc))

        race = _Race()
        tasks = {PRIMARY: asyncio.create_task(pump(PRIMARY, self.primary))}
        loop = asyncio.get_running_loop()
        backup_at = loop.time() + self.after
        try:
            while True:
                wait = None
                if BACKUP not in race.started and race.winner is None:
                    wait = max(0.0, backup_at - loop.time())
                try:
                    tag, item = await asyncio.wait_for(items.get(), wait)
                except TimeoutError:
                    tag, item = PRIMARY, _LATE
                had_winner = race.winner is not None
                kind, value = race.take(tag, item)
                if kind == "backup":
                    race.started.add(BACKUP)
                    tasks[BACKUP] = asyncio.create_task(pump(BACKUP, self.backup))
                    continue
                if not had_winner and race.winner is not None:
                    for other, task in tasks.items():
                        if other != race.winner:
                            task.cancel()
                if kind == "chunk":
                    yield _mark(value)
                elif kind == "done":
                    break
                elif kind == "raise":
                    raise value
            yield _last_chunk(race, self._models)
        finally:
            await cancel_and_wait(tasks.values())

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = [c async for c in self._astream(messages, stop, run_manager, **kwargs)]
        return _result(chunks)

    # -- sync -------------------------------------------------------------------------------

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        extra = {**kwargs, **({"stop": stop} if stop else {})}
        abandoned: set[str] = set()
        running: set[str] = set()

        def pump(tag: str, runnable: Any) -> None:
            try:
                stream = runnable.stream(messages, _copy_config(run_manager, tag), **extra)
                for chunk in stream:
                    if tag in abandoned:  # the other copy won: stop reading this one
                        stream.close()
                        return
                    items.put((tag, chunk))
                items.put((tag, _DONE))
            except Exception as exc:  # handed to the race, which decides
                items.put((tag, exc))
            finally:
                running.discard(tag)

        def start(tag: str, runnable: Any) -> None:
            race.started.add(tag)
            running.add(tag)
            WORKERS.submit(pump, tag, runnable)  # a thread that copies the context

        race = _Race()
        start(PRIMARY, self.primary)
        deadline = self.after
        try:
            while True:
                wait = deadline if BACKUP not in race.started and race.winner is None else None
                try:
                    tag, item = items.get(timeout=wait)
                except queue.Empty:
                    tag, item = PRIMARY, _LATE
                kind, value = race.take(tag, item)
                if kind == "backup":
                    start(BACKUP, self.backup)
                    continue
                if race.winner is not None:
                    abandoned.update(race.started - {race.winner})
                if kind == "chunk":
                    yield _mark(value)
                elif kind == "done":
                    break
                elif kind == "raise":
                    raise value
            yield _last_chunk(race, self._models, running)
        finally:
            abandoned.update(race.started)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _result(list(self._stream(messages, stop, run_manager, **kwargs)))


def _result(chunks: list[ChatGenerationChunk]) -> ChatResult:
    total = merge_chunks([as_chunk(c.message) or AIMessageChunk(content="") for c in chunks])
    return ChatResult(generations=[ChatGeneration(message=as_ai_message(total))])


def with_hedges(members: Sequence[Member], hedges: Mapping[str, Any], after: float) -> list[Member]:
    """Wrap each hedged member with its backup (`True` hedges with the member itself).

    Raises:
        ValueError: for a name that is not in the pool, or a backup that is not a chat model.
    """
    names = [m.name for m in members]
    for name, backup in hedges.items():
        if name not in names:
            raise ValueError(
                f"hedge names {name!r}, which is not a pool member: use one of "
                f"{', '.join(map(repr, names))}"
            )
        if backup is not True:
            as_member(backup, f"hedge[{name!r}]")
    out = []
    for member in members:
        backup = hedges.get(member.name)
        if backup is None or backup is False:
            out.append(member)
            continue
        copy = member if backup is True else as_member(backup, f"hedge[{member.name!r}]")
        hedged = HedgedChatModel(
            primary=member.runnable,
            backup=copy.runnable,
            after=after,
            primary_model=member.model,
            backup_model=copy.model,
        )
        out.append(replace(member, runnable=hedged))
    return out
