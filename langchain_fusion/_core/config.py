"""Fusion settings: the knobs shared by every adapter, validated in one place."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

Mode = Literal["best_of", "merge", "debate", "vote"]
Topology = Literal["all", "ring"]
JudgeFailurePolicy = Literal["fallback", "raise"]
SelfVote = Literal["exclude", "allow"]

MODES: tuple[str, ...] = ("best_of", "merge", "debate", "vote")
_MODE_ALIASES = {"best-of": "best_of", "bestof": "best_of", "best_of": "best_of"}

#: Names of the settings that a caller may override per call (`.bind(...)`, invoke kwargs).
SETTING_NAMES: tuple[str, ...] = (
    "mode",
    "criteria",
    "min_successful",
    "quorum",
    "grace",
    "member_timeout",
    "judge_timeout",
    "deadline",
    "debate_rounds",
    "topology",
    "on_judge_failure",
    "judge_passes",
    "judge_self_vote",
    "max_concurrency",
    "seed",
    "skip_judge_on_agreement",
    "agreement",
    "max_tokens",
    "max_cost_usd",
    "prices",
    "hedge_after",
    "rate_limits",
)


class ModelPrice(BaseModel):
    """What a model costs, in USD per token."""

    prompt: float = Field(ge=0)
    """USD per input (prompt) token."""

    completion: float = Field(ge=0)
    """USD per output (completion) token."""


class RateLimit(BaseModel):
    """A provider's rate limit for one model: requests and tokens per window.

    Both counts hold over every moving window of `window_s` seconds (a burst may use a whole
    window's allowance at once), with `margin_s` to spare. Tokens are counted at admission:
    the prompt's estimated tokens plus the call's `max_tokens` when set.
    """

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1)
    """Most requests started in any window."""

    tpm: int | None = Field(default=None, ge=1)
    """Most tokens (estimated prompt tokens plus `max_tokens`) admitted in any window."""

    window_s: float = Field(default=60.0, gt=0)
    """Length of the window in seconds: 60 for per-minute limits; shorter in tests."""

    margin_s: float = Field(default=1.0, ge=0)
    """Seconds each request keeps counting after its window: a request reaches the provider
    some time after it is let through (client CPU, a new connection), so a provider that
    counts on arrival could otherwise see more than `rpm` in its window after a burst."""

    @model_validator(mode="after")
    def _something_limited(self) -> RateLimit:
        if self.rpm is None and self.tpm is None:
            raise ValueError("a rate limit needs rpm, tpm or both: e.g. {'rpm': 500}")
        return self


class FusionSettings(BaseModel):
    """How a fusion runs. Mixed into `FusionChatModel` and `FusionLLM` as their fields.

    Each setting can also be changed for one call, e.g. `fusion.bind(mode="debate")`.
    """

    mode: Mode = "merge"
    """`"best_of"` (the judge picks one answer, returned as written), `"merge"` (the judge
    writes one answer from a structured comparison of all), `"debate"` (members critique
    and revise each other's answers for `debate_rounds`, then the judge writes the answer) or
    `"vote"` (the majority answer wins; the judge picks only on ties or when all answers
    differ). `"best-of"` is accepted too."""

    criteria: str | None = None
    """Optional rubric that steers the judge in every mode, e.g. `"prefer cited sources"`."""

    min_successful: int = Field(default=1, ge=1)
    """Fewest member answers the fusion needs; with fewer it raises `NotEnoughAnswersError`."""

    quorum: int | None = Field(default=None, ge=1)
    """Start judging once this many members answered (plus `grace`); `None` waits for all."""

    grace: float = Field(default=0.0, ge=0)
    """Seconds to wait for the remaining members once `quorum` answers arrived."""

    member_timeout: float | None = Field(default=None, gt=0)
    """Seconds one member call may take before it is cancelled and reported as `timeout`."""

    judge_timeout: float | None = Field(default=None, gt=0)
    """Seconds one judge call may take before it counts as a judge failure."""

    deadline: float | None = Field(default=None, gt=0)
    """Seconds the whole fusion may take; members still running then are cancelled."""

    debate_rounds: int = Field(default=2, ge=0)
    """Critique-and-revise rounds after the members' first answers (debate mode)."""

    topology: Topology = "all"
    """Who sees whom in a debate round: `"all"` (everyone) or `"ring"` (two neighbours)."""

    on_judge_failure: JudgeFailurePolicy = "fallback"
    """`"fallback"`: if the judge fails (every judge of a panel), return the answer that most
    other answers agree with (by `agreement`, pairwise; ties go to pool order), flagged
    `judge_fallback` with `judge_fallback_rule` `"most_agreed"` in the report. `"raise"`:
    raise `JudgeError`, which carries every member answer."""

    judge_passes: int = Field(default=1, ge=1)
    """Times each judge picks (best_of, vote's tie-break) or compares (merge), each pass
    showing the candidates in another order (pass 2 reversed, later passes rotated, labels
    given afresh), to control the judge's position bias. Verdicts are aggregated by
    majority; a tie goes to the tied answer most other answers agree with. Passes run
    concurrently; each costs a judge call (per judge of a panel)."""

    judge_self_vote: SelfVote | None = None
    """Whether a judge whose model is also a pool member's model may vote for that member's
    answer: `"exclude"` discards such a verdict (reported `excluded`), `"allow"` counts it.
    `None` (default): `"exclude"` for a panel of judges, `"allow"` for a single judge (the
    report then says `self_judging: true`)."""

    max_concurrency: int | None = Field(default=None, ge=1)
    """Most member calls in flight at once; `None` runs the whole pool at once."""

    seed: int | None = None
    """Seed for the per-call shuffling of candidates (reproducible runs); `None` is random."""

    skip_judge_on_agreement: bool = False
    """When every answer agrees (see `agreement`), return it without calling the judge."""

    agreement: Callable[[Sequence[str]], bool] | None = Field(default=None, exclude=True)
    """Decides whether answers agree, from their texts; default: equal once normalised
    (case, whitespace, punctuation), which suits short answers."""

    max_tokens: int | None = Field(default=None, ge=1)
    """Cap on the output tokens of every member and judge call (passed as `max_tokens`)."""

    max_cost_usd: float | None = Field(default=None, gt=0)
    """Budget of one fusion call. Before each phase (debate round, judge) the worst case is
    estimated from `prices` (or the providers' reported costs); a phase that would exceed the
    budget is skipped and the report says so."""

    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    """Prices by model identifier, for budgets and `estimate_cost`; a model without one is
    priced from the cost its provider reports, once it has reported one."""

    hedge_after: float = Field(default=1.0, gt=0)
    """Seconds a member with a hedge may go without a first token before its backup starts."""

    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)
    """`{model or slug: {"rpm": ..., "tpm": ..., "window_s": 60}}`: each call to that model
    waits for a slot, shared by every fusion in the process that calls the model; a 429 with
    `Retry-After` pauses the model for all of them. The wait counts against the call's
    timeout and the fusion's deadline. Limits are per process: divide a provider's limit
    among the processes (e.g. Ray actors) that call it."""

    if not TYPE_CHECKING:  # type checkers keep pydantic's typed constructor

        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as error:
                raise without_object_inputs(error) from None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_arguments(cls, data: Any) -> Any:
        # A misspelt setting would otherwise be dropped and the fusion run on defaults.
        if isinstance(data, dict):
            names = accepted_names(cls)
            unknown = [key for key in data if key not in names]
            if unknown:
                raise unknown_arguments_error(cls, unknown)
        return data

    @field_validator("mode", mode="before")
    @classmethod
    def _normalise_mode(cls, value: Any) -> Any:
        if isinstance(value, str):
            key = value.strip().lower()
            if key in _MODE_ALIASES:
                return _MODE_ALIASES[key]
            if key not in MODES:
                raise ValueError(
                    f"unknown mode {value!r}: set mode to one of "
                    + ", ".join(repr(mode) for mode in MODES)
                )
            return key
        return value

    @model_validator(mode="after")
    def _check_against_pool(self, info: ValidationInfo) -> FusionSettings:
        size = (info.context or {}).get("pool_size") if info else None
        if size is not None:
            check_against_pool(self, size)
        return self

    def settings(self) -> dict[str, Any]:
        """The current settings as a plain dict (the fields named in `SETTING_NAMES`)."""
        return {name: getattr(self, name) for name in SETTING_NAMES}


def accepted_names(model: type[BaseModel]) -> set[str]:
    """Every keyword `model` takes: its fields' names and aliases."""
    names = set(model.model_fields)
    for field in model.model_fields.values():
        names.update(a for a in (field.alias, field.validation_alias) if isinstance(a, str))
    return names


def unknown_arguments_error(model: type[BaseModel], unknown: Sequence[str]) -> ValidationError:
    """One error per keyword `model` does not take, suggesting the closest of its own.

    The error shows the keyword, never its value: a misspelt `api_key` holds a secret.
    """
    public = sorted(name for name in accepted_names(model) if not name.startswith("_"))
    errors = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), public, n=1)
        fix = f"did you mean {close[0]!r}?" if close else "remove it"
        errors.append(
            InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_argument",
                    "{model} has no setting {key}: {fix} (see the README's configuration table)",
                    {"model": model.__name__, "key": repr(key), "fix": fix},
                ),
                loc=(str(key),),
                input=str(key),
            )
        )
    return ValidationError.from_exception_data(model.__name__, errors)


_SHOWN_INPUTS = (str, int, float, bool, type(None))


def without_object_inputs(error: ValidationError) -> ValidationError:
    """`error` with the inputs that are objects left out, its messages unchanged.

    A check of the whole model reports every argument as its input, members included, and
    a member may hold its key in plain text (LlamaIndex's OpenAI clients do), which
    `errors()` and `json()` would then show. A setting's own value is kept, except a key's.
    """
    details = []
    for item in error.errors():
        value = item.get("input")
        secret = any("key" in str(part) for part in item["loc"])
        shown = isinstance(value, _SHOWN_INPUTS) and not secret
        details.append(
            InitErrorDetails(
                type=PydanticCustomError(item["type"], "{message}", {"message": item["msg"]}),
                loc=item["loc"],
                input=value if shown else "(not shown)",
            )
        )
    return ValidationError.from_exception_data(error.title, details)


def check_against_pool(settings: FusionSettings, pool_size: int) -> None:
    """Check the settings that depend on the size of the pool.

    Raises:
        ValueError: naming the field and the fix (pydantic turns it into a ValidationError).
    """
    if settings.min_successful > pool_size:
        raise ValueError(
            f"min_successful ({settings.min_successful}) is greater than the pool size "
            f"({pool_size}): lower min_successful or add members to the pool"
        )
    if settings.quorum is not None:
        if settings.quorum > pool_size:
            raise ValueError(
                f"quorum ({settings.quorum}) is greater than the pool size ({pool_size}): "
                f"set quorum between {settings.min_successful} and {pool_size}, or None"
            )
        if settings.quorum < settings.min_successful:
            raise ValueError(
                f"quorum ({settings.quorum}) is smaller than min_successful "
                f"({settings.min_successful}): set quorum between {settings.min_successful} "
                f"and {pool_size}, or None"
            )


def resolve_settings(
    base: FusionSettings, overrides: dict[str, Any], pool_size: int
) -> FusionSettings:
    """Apply per-call overrides to `base` and validate the result against the pool.

    Raises:
        pydantic.ValidationError: when an override is invalid; raised before any call.
    """
    data = base.settings()
    data.update({k: v for k, v in overrides.items() if k in SETTING_NAMES})
    return FusionSettings.model_validate(data, context={"pool_size": pool_size})
