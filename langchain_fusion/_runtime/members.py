"""Pool members as users hold them: chat models, bound, retried, with fallbacks or config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableWithFallbacks
from langchain_core.runnables.base import RunnableBindingBase
from langchain_core.runnables.configurable import DynamicRunnable

from langchain_fusion._compat import llm_type
from langchain_fusion._core.capabilities import CAPABILITY_KEYS, capability

_ACCEPTED = (
    "a LangChain chat model (BaseChatModel), optionally wrapped with .bind(...), "
    ".with_retry(...), .with_fallbacks([...]) or .with_config(...)"
)


@dataclass(frozen=True)
class Member:
    """One callable participant: a pool member or the judge.

    Attributes:
        name: Unique name in the pool (the judge is always `"judge"`).
        model: The model identifier, for usage grouping and the report.
        runnable: What is called, exactly as the user passed it.
        chat_model: The chat model inside the wrappers.
        overrides: The user's capability overrides.
    """

    name: str
    model: str
    runnable: Runnable[Any, Any]
    chat_model: BaseChatModel
    overrides: Mapping[str, bool] = field(default_factory=dict)

    def capability(self, key: str) -> bool | None:
        """A capability (`image_inputs`, `tool_calling`...): override, else profile, else None."""
        return capability(self.chat_model.profile, self.overrides, key)

    @property
    def accepts_images(self) -> bool:
        """Whether the member may receive images: unless known not to."""
        return self.capability("image_inputs") is not False

    @property
    def supports_tools(self) -> bool:
        """Whether the chat model implements `bind_tools` and is not known to lack tools."""
        implemented = type(self.chat_model).bind_tools is not BaseChatModel.bind_tools
        return implemented and self.capability("tool_calling") is not False

    def with_tools(self, tools: Sequence[dict[str, Any]], tool_choice: Any = None) -> Member:
        """This member with `tools` bound to its chat model, its wrappers kept around it."""
        kwargs = {} if tool_choice is None else {"tool_choice": tool_choice}
        runnable = map_chat_model(self.runnable, lambda m: m.bind_tools(tools, **kwargs))
        return replace(self, runnable=runnable)


def map_chat_model(
    runnable: Any, fn: Callable[[BaseChatModel], Runnable[Any, Any]]
) -> Runnable[Any, Any]:
    """Apply `fn` to the chat model(s) inside the wrappers, rebuilding the wrappers around.

    `.bind`, `.with_config` and `.with_retry` keep their arguments and config, and
    `.with_fallbacks` applies `fn` to every fallback too (LangChain's own attribute
    forwarding would drop the outer wrappers).
    """
    if isinstance(runnable, BaseChatModel):
        return fn(runnable)
    if isinstance(runnable, RunnableBindingBase):
        return runnable.model_copy(update={"bound": map_chat_model(runnable.bound, fn)})
    if isinstance(runnable, RunnableWithFallbacks):
        return runnable.model_copy(
            update={
                "runnable": map_chat_model(runnable.runnable, fn),
                "fallbacks": [map_chat_model(f, fn) for f in runnable.fallbacks],
            }
        )
    if isinstance(runnable, DynamicRunnable):
        return map_chat_model(runnable.default, fn)
    raise TypeError(f"{type(runnable).__name__} holds no chat model")


def unwrap_chat_model(runnable: Any) -> BaseChatModel | None:
    """The chat model inside the wrappers LangChain users apply, or None."""
    seen = 0
    while seen < 32:
        seen += 1
        if isinstance(runnable, BaseChatModel):
            return runnable
        if isinstance(runnable, RunnableBindingBase):  # .bind, .with_config, .with_retry
            runnable = runnable.bound
        elif isinstance(runnable, RunnableWithFallbacks):
            runnable = runnable.runnable
        elif isinstance(runnable, DynamicRunnable):
            runnable = runnable.default
        else:
            return None
    return None


def model_id(chat_model: BaseChatModel) -> str:
    """The model's identifier: `model_name`, `model` or `model_id`, else its type name."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    try:
        return llm_type(chat_model)
    except Exception:
        return type(chat_model).__name__


def _unique(names: Sequence[str]) -> list[str]:
    counts: dict[str, int] = {}
    out = []
    taken = set(names)
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        if counts[name] == 1:
            out.append(name)
            continue
        n = counts[name]
        candidate = f"{name}-{n}"
        while candidate in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


def as_member(value: Any, where: str, name: str | None = None) -> Member:
    """Check one pool entry (or the judge) and wrap it as a `Member`.

    Raises:
        ValueError: naming `where` (e.g. `pool[2]`) and what is accepted.
    """
    if isinstance(value, str):
        raise ValueError(f"{where} is the string {value!r}: pass {_ACCEPTED}")
    chat_model = unwrap_chat_model(value)
    if chat_model is None:
        raise ValueError(
            f"{where} is a {type(value).__name__}, which is not a chat model: pass {_ACCEPTED}"
        )
    model = model_id(chat_model)
    return Member(name=name or model, model=model, runnable=value, chat_model=chat_model)


def resolve_pool(pool: Sequence[Any] | Mapping[str, Any]) -> list[Member]:
    """Turn the `pool` field into members with unique names, in pool order.

    A mapping names members explicitly; otherwise names come from the models, made unique
    with `-2`, `-3`... suffixes.

    Raises:
        ValueError: for an empty pool or an entry that is not a chat model.
    """
    if isinstance(pool, Mapping):
        items = list(pool.items())
        if not items:
            raise ValueError("pool is empty: give at least one chat model")
        for key, _ in items:
            if not isinstance(key, str) or not key or key == "judge":
                raise ValueError(
                    f"pool has the name {key!r}: names must be non-empty strings other than 'judge'"
                )
        return [as_member(v, f"pool[{k!r}]", name=k) for k, v in items]
    if isinstance(pool, (str, bytes)) or not isinstance(pool, Sequence):
        raise ValueError(
            f"pool is a {type(pool).__name__}: give a list of chat models or a dict "
            "{name: chat model}"
        )
    if not pool:
        raise ValueError("pool is empty: give at least one chat model")
    members = [as_member(v, f"pool[{i}]") for i, v in enumerate(pool)]
    names = _unique([m.name for m in members])
    return [
        Member(name=n, model=m.model, runnable=m.runnable, chat_model=m.chat_model)
        for n, m in zip(names, members, strict=True)
    ]


def judge_names(count: int) -> list[str]:
    """The judges' member names: `"judge"` alone; a panel's `"judge"`, `"judge-2"`, ..."""
    return ["judge" if i == 0 else f"judge-{i + 1}" for i in range(count)]


def resolve_judges(judge: Any) -> list[Member]:
    """Check the `judge` field and wrap it as members: one judge, or a panel (a list).

    The first judge is named `"judge"` (it writes the answer where one is written); a
    panel's others `"judge-2"`, `"judge-3"`...

    Raises:
        ValueError: when a judge is not a chat model, or the panel is empty.
    """
    if isinstance(judge, (list, tuple)):
        if not judge:
            raise ValueError("judge is an empty list: give a chat model, or a list of them")
        names = judge_names(len(judge))
        return [as_member(v, f"judge[{i}]", name=names[i]) for i, v in enumerate(judge)]
    return [as_member(judge, "judge", name="judge")]


def apply_capabilities(
    members: Sequence[Member],
    judges: Sequence[Member],
    capabilities: Mapping[str, Mapping[str, bool]],
) -> tuple[list[Member], list[Member]]:
    """Attach the user's capability overrides (by member name, or `"judge"` for every judge).

    Raises:
        ValueError: for a name that is not in the pool, or an unknown capability key.
    """
    names = [m.name for m in members]
    for name, caps in capabilities.items():
        if name not in names and name != "judge":
            raise ValueError(
                f"capabilities names {name!r}, which is not a pool member: use one of "
                f"{', '.join(map(repr, names))} or 'judge'"
            )
        unknown = sorted(set(caps) - set(CAPABILITY_KEYS))
        if unknown:
            raise ValueError(
                f"capabilities[{name!r}] has unknown key(s) {', '.join(unknown)}: use "
                f"{', '.join(CAPABILITY_KEYS)}"
            )
    return (
        [replace(m, overrides=dict(capabilities.get(m.name, {}))) for m in members],
        [replace(j, overrides=dict(capabilities.get("judge", {}))) for j in judges],
    )


def derived_profile(
    members: Sequence[Member], judge: Member, min_successful: int, mode: str
) -> dict[str, Any]:
    """What a fusion accepts and can do, from its members and judge: one rule for both faces.

    A capability that a member lacks makes it sit the call out (reported `skipped`), so the
    fusion has it when at least `min_successful` members have it: image inputs when that
    many are known to accept images; tool calling (and structured output) when that many
    can call tools and the judge can too where it writes the answer (every mode but
    `best_of`). The limits are the smallest known among members and judge.
    """
    images = sum(1 for m in members if m.capability("image_inputs") is True)
    tools = sum(1 for m in members if m.supports_tools)
    calls_tools = tools >= min_successful and (mode == "best_of" or judge.supports_tools)
    profile: dict[str, Any] = {
        "text_inputs": True,
        "text_outputs": True,
        "image_inputs": images >= min_successful,
        "tool_calling": calls_tools,
        "structured_output": calls_tools,
    }
    for key in ("max_input_tokens", "max_output_tokens"):
        known = [
            limit
            for m in [*members, judge]
            if isinstance(limit := (m.chat_model.profile or {}).get(key), int) and limit > 0
        ]
        if known:
            profile[key] = min(known)
    return profile
