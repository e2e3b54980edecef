"""The runtime façade both faces call: `FusionBase` (shared fields and rules) and `Session`.

As in httpx, where `BaseClient` holds what `Client` and `AsyncClient` share, `FusionBase`
holds what `FusionChatModel` and `FusionLLM` share: the checks of `pool`, `judge`,
`capabilities` and `hedge` at construction, the participants (resolved once per call and
cached between calls while nothing they depend on changes), the capability rule behind
LangChain's `profile` and LlamaIndex's `metadata`, the fusion's identity, and `Session`,
which runs one call: sync, async and both streams, inside the deadline and retry scope and
the children's context. The faces keep only message conversion, callbacks or spans, and
their framework's metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessageChunk, BaseMessage
from pydantic import Field, PrivateAttr, field_validator, model_validator

from langchain_fusion._core.config import FusionSettings, check_against_pool, resolve_settings
from langchain_fusion._http import deadline_scope
from langchain_fusion._runtime.calls import ConfigFor
from langchain_fusion._runtime.drivers import AsyncDriver, SyncDriver
from langchain_fusion._runtime.hedge import with_hedges
from langchain_fusion._runtime.members import (
    Member,
    apply_capabilities,
    derived_profile,
    resolve_judges,
    resolve_pool,
)
from langchain_fusion._runtime.modes import plan
from langchain_fusion._runtime.run import FusionRun, prepare_run
from langchain_fusion._runtime.steps import Deadline, FusionResult
from langchain_fusion._scoped import aeach_step_in, each_step_in
from langchain_fusion._slugs import SlugFields
from langchain_fusion._tracing import children_context

#: A context the face enters around each step of a call (a LlamaIndex span), or none.
ExtraScope = Callable[[], AbstractContextManager[Any]]

# How many participant sets a fusion keeps (one per `hedge_after` value in use).
_CACHED_PARTICIPANTS = 8


def _identity(value: Any) -> Any:
    """What identifies a pool, judge or hedge map: its entries' identities (and names)."""
    if isinstance(value, Mapping):
        return tuple((k, id(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(id(v) for v in value)
    return id(value)


def _snapshot(value: Any) -> Any:
    """`value` with its dicts and lists copied (their other contents shared), to compare later."""
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snapshot(v) for v in value]
    return value


class FusionBase(FusionSettings, SlugFields):
    """What `FusionChatModel` and `FusionLLM` share; each declares `pool`, `judge`, `hedge`.

    A face that takes other kinds of models than LangChain chat models converts them in
    `_as_model`.
    """

    capabilities: dict[str, dict[str, bool]] = Field(default_factory=dict)
    """Per-member overrides of what a model accepts, by member name (or `"judge"`), e.g.
    `{"local-llama": {"image_inputs": False}}`; keys `image_inputs` and `tool_calling`. A
    member known not to accept images (from this or its model's profile) sits out calls
    with images, reported `skipped`."""

    _participants_cache: dict[Any, tuple[list[Member], list[Member]]] = PrivateAttr(
        default_factory=dict
    )
    _settings_cache: tuple[dict[str, Any], FusionSettings] | None = PrivateAttr(default=None)

    if TYPE_CHECKING:  # declared by the face, with its own documentation
        hedge: dict[str, Any]

    @classmethod
    def _as_model(cls, value: Any, where: str) -> Any:
        """A pool entry, judge or backup as the runtime takes it (a LangChain runnable)."""
        return value

    @classmethod
    def _pool_models(cls, pool: Any) -> Any:
        if isinstance(pool, Mapping):
            return {k: cls._as_model(v, f"pool[{k!r}]") for k, v in pool.items()}
        if isinstance(pool, Sequence) and not isinstance(pool, (str, bytes)):
            return [cls._as_model(v, f"pool[{i}]") for i, v in enumerate(pool)]
        return pool  # `resolve_pool` raises, naming what a pool is

    @classmethod
    def _judge_models(cls, judge: Any) -> Any:
        if isinstance(judge, list):
            return [cls._as_model(v, f"judge[{i}]") for i, v in enumerate(judge)]
        return cls._as_model(judge, "judge")

    # -- checks at construction ---------------------------------------------------------------

    @field_validator("pool", mode="before", check_fields=False)
    @classmethod
    def _validate_pool(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            value = list(value)
        # Slugs are checked here for their form; their key once every field is known.
        resolve_pool(cls._pool_models(cls._check_slugs(value)[0]))
        return value

    @field_validator("judge", mode="before", check_fields=False)
    @classmethod
    def _validate_judge(cls, value: Any) -> Any:
        if isinstance(value, tuple):
            value = list(value)
        resolve_judges(cls._judge_models(cls._check_slugs(judge=value)[1]))
        return value

    @model_validator(mode="after")
    def _validate_settings_against_pool(self) -> Any:
        self._resolved()  # a slug without an API key fails here, naming api_key
        check_against_pool(self, len(self.pool))
        self._participants()  # capabilities and hedges must name members and known keys
        return self

    # -- participants -------------------------------------------------------------------------

    def _participants(self, hedge_after: float | None = None) -> tuple[list[Member], list[Member]]:
        """The resolved pool and judges, with capability overrides and hedges applied.

        Cached: built again only when the pool, judge, capabilities, hedges or `hedge_after`
        changed (the entries' identities are compared, so that a member replaced in place
        is seen).
        """
        pool, judge = self._resolved()
        after = hedge_after or self.hedge_after
        hedge = self.hedge
        key = (
            _identity(pool),
            _identity(judge),
            tuple((name, tuple(caps.items())) for name, caps in self.capabilities.items()),
            _identity(hedge),
            after,
        )
        cached = self._participants_cache.get(key)
        if cached is not None:
            return cached
        members, judges = apply_capabilities(
            resolve_pool(self._pool_models(pool)),
            resolve_judges(self._judge_models(judge)),
            self.capabilities,
        )
        backups = {
            name: b if isinstance(b, bool) else self._as_model(b, f"hedge[{name!r}]")
            for name, b in hedge.items()
        }
        participants = with_hedges(members, backups, after), judges
        if len(self._participants_cache) >= _CACHED_PARTICIPANTS:
            self._participants_cache.clear()
        self._participants_cache[key] = participants
        return participants

    @property
    def members(self) -> list[Member]:
        """The pool as the runtime calls it: unique names, in pool order."""
        return self._participants()[0]

    def _judge_members(self) -> list[Member]:
        """The judges as the runtime calls them: `judge`, then a panel's `judge-2`..."""
        return self._participants()[1]

    def _derived_profile(self) -> dict[str, Any]:
        """What the fusion accepts and can do: one rule for both faces (see `derived_profile`)."""
        members, judges = self._participants()
        return derived_profile(members, judges[0], self.min_successful, self.mode)

    def _identity_params(self) -> dict[str, Any]:
        """What identifies the fusion: its members, its judge(s) and its settings."""
        members, judge_members = self._participants()
        judges = [j.model for j in judge_members]
        return {
            "pool": [f"{m.name}={m.model}" for m in members],
            "judge": judges[0] if len(judges) == 1 else judges,
            **self.settings(),
        }

    # -- one call -----------------------------------------------------------------------------

    def _call_settings(self, overrides: dict[str, Any]) -> FusionSettings:
        """The settings of one call: the fusion's, with per-call overrides, validated.

        Without overrides, the last validated settings are reused while they are unchanged
        (compared by value with a copy of their dicts and lists, so that one changed in place
        is seen).
        """
        data = self.settings()
        if not overrides and self._settings_cache is not None:
            cached, settings = self._settings_cache
            if cached == data:
                return settings
        settings = resolve_settings(self, overrides, len(self.pool))
        if not overrides:
            self._settings_cache = (_snapshot(data), settings)
        return settings

    def _session(
        self,
        conversation: Sequence[BaseMessage],
        kwargs: dict[str, Any],
        stop: list[str] | None = None,
    ) -> Session:
        """Validate one call's input and per-call arguments, before any model is called."""
        run = prepare_run(conversation, kwargs, self._call_settings, self._participants, stop)
        return Session(run)


class Session:
    """One fusion call, ready to run: sync, async, or streamed.

    Members and the judge run inside the children's context (no inherited callbacks, see
    `_tracing.children_context`) and the fusion's deadline, which bounds their retries
    (`_http.deadline_scope`), and inside the face's own scope (a LlamaIndex span). A stream
    enters them around each step only, never across a `yield` to the caller.
    """

    def __init__(self, run: FusionRun) -> None:
        self.run = run
        self.deadline = Deadline(run.settings.deadline)

    @contextmanager
    def _scope(self, extra: ExtraScope | None) -> Iterator[None]:
        with children_context(), deadline_scope(self.deadline.at), (extra or nullcontext)():
            yield

    def _sync(self, config_for: ConfigFor) -> SyncDriver:
        return SyncDriver(config_for, self.deadline, self.run.settings.max_concurrency)

    def _async(self, config_for: ConfigFor) -> AsyncDriver:
        return AsyncDriver(config_for, self.deadline, self.run.settings.max_concurrency)

    def invoke(self, config_for: ConfigFor, extra: ExtraScope | None = None) -> FusionResult:
        """Run the fusion to its result."""
        with self._scope(extra):
            return self._sync(config_for).run(plan(self.run))

    async def ainvoke(self, config_for: ConfigFor, extra: ExtraScope | None = None) -> FusionResult:
        """Async `invoke`."""
        with self._scope(extra):
            return await self._async(config_for).run(plan(self.run))

    def stream(
        self, config_for: ConfigFor, extra: ExtraScope | None = None
    ) -> Iterator[AIMessageChunk | FusionResult]:
        """Stream the fused answer's chunks; the last item is the result."""
        steps = self._sync(config_for).stream(plan(self.run))
        return each_step_in(steps, lambda: self._scope(extra))

    def astream(
        self, config_for: ConfigFor, extra: ExtraScope | None = None
    ) -> AsyncIterator[AIMessageChunk | FusionResult]:
        """Async `stream`."""
        steps = self._async(config_for).stream(plan(self.run))
        return aeach_step_in(steps, lambda: self._scope(extra))
