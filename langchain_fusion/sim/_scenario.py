"""The scenario: which models the simulator serves and how each one behaves."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from langchain_fusion.sim._protocol import OffProtocol

FaultKind = Literal[
    "rate_limit", "server_error", "hang", "malformed_json", "broken_stream", "error_chunk"
]
JudgeRule = Literal["agreement", "oracle", "first", "longest", "shortest"]
PlainRule = Literal["first", "longest", "shortest"]

_STRICT = ConfigDict(extra="forbid")


class ToolCallSpec(BaseModel):
    """A tool call a scripted answer proposes."""

    model_config = _STRICT

    name: str
    """Name of the tool; only proposed when the request offers a tool of that name."""

    arguments: dict[str, Any] = Field(default_factory=dict)
    """The call's arguments (sent JSON-encoded, as the wire protocol wants)."""


class ScriptedAnswer(BaseModel):
    """An answer given when the last user message matches.

    `match` is compared after normalising both sides (case-folded, whitespace and the
    punctuation `?!.,;:'"` removed); `regex` is searched in the raw text. Give one of them.
    """

    model_config = _STRICT

    match: str | None = None
    """Substring of the last user message that selects this answer (normalised)."""

    regex: str | None = None
    """Regular expression searched in the last user message."""

    answer: str = ""
    """The reply text; `{model}` and `{prompt}` are replaced by the model's name and the
    last user message."""

    tool_calls: list[ToolCallSpec] = Field(default_factory=list)
    """Tool calls proposed with this answer (when the request offers those tools)."""

    structured: dict[str, Any] | None = None
    """The object returned when the request asks for JSON (`response_format`)."""

    @model_validator(mode="after")
    def _needs_a_matcher(self) -> ScriptedAnswer:
        if self.match is None and self.regex is None:
            raise ValueError("a scripted answer needs `match` or `regex`")
        return self


class BankQuestion(BaseModel):
    """A question with one right answer, answered correctly with a per-model probability."""

    model_config = _STRICT

    question: str
    """The question; it matches any prompt that contains it (normalised, see
    `ScriptedAnswer`)."""

    aliases: list[str] = Field(default_factory=list)
    """Other phrasings that select this question (normalised substrings)."""

    answer: str
    """The right answer, e.g. `"391"`."""

    wrong: list[str] = Field(default_factory=list)
    """Wrong answers a model gives when it misses (chosen deterministically)."""


class Fault(BaseModel):
    """A failure injected into some of a model's requests.

    Which requests: `requests` (1-based request numbers of this model, counted since start or
    the last reset), `after` (every request from that number on) and `probability` (seeded,
    so the same requests fail on every run); with none of them, every request. `stream`
    limits the fault to streaming (`true`) or non-streaming (`false`) requests.
    """

    model_config = _STRICT

    kind: FaultKind
    """`rate_limit` (429 with `Retry-After`), `server_error` (`status`, e.g. 500/502/503),
    `hang` (no response until `seconds` pass or the client goes away; with `after_tokens`,
    a stream stalls after that many tokens instead), `malformed_json`
    (a 200 body, or an SSE event, that is not JSON), `broken_stream` (the connection is cut
    after `after_tokens` tokens) or `error_chunk` (after `after_tokens` tokens, an error chunk
    with `finish_reason: "error"`, as OpenRouter sends when the upstream fails mid-stream)."""

    requests: list[int] = Field(default_factory=list)
    """Request numbers (1-based, per model) that get this fault."""

    after: int | None = Field(default=None, ge=1)
    """Every request from this number on gets this fault."""

    probability: float | None = Field(default=None, ge=0, le=1)
    """Chance that a request gets this fault, drawn from the scenario seed."""

    stream: bool | None = None
    """Only streaming (`true`) or only non-streaming (`false`) requests; `null` for both."""

    status: int = Field(default=500, ge=400, le=599)
    """HTTP status of a `server_error`."""

    retry_after: float | None = Field(default=1.0, ge=0)
    """Seconds sent in `Retry-After` (rounded up) and `retry-after-ms` with a `rate_limit`."""

    seconds: float | None = Field(default=None, ge=0)
    """How long a `hang` lasts before the request is answered normally; `null`: until the
    client disconnects (or the simulator stops)."""

    after_tokens: int | None = Field(default=None, ge=0)
    """Completion tokens sent before a mid-response fault (`broken_stream`, `error_chunk`,
    `malformed_json`; `null`: half of the answer), or before a stream stalls (`hang`;
    `null`: the hang comes before any response)."""

    message: str | None = None
    """Error message sent with the fault."""

    @model_validator(mode="after")
    def _check_numbers(self) -> Fault:
        if any(n < 1 for n in self.requests):
            raise ValueError("fault request numbers start at 1")
        return self

    def selects(self, number: int, stream: bool, draw: float) -> bool:
        """Whether request `number` of its model gets this fault.

        Args:
            number: The 1-based request number of the model.
            stream: Whether the request streams.
            draw: A uniform number in [0, 1) for this request and fault (seeded).
        """
        if self.stream is not None and self.stream != stream:
            return False
        chosen = True
        if self.requests or self.after is not None:
            chosen = number in self.requests or (self.after is not None and number >= self.after)
        if self.probability is not None:
            chosen = chosen and draw < self.probability
        return chosen


class JudgeSpec(BaseModel):
    """How a model decides when it is asked to judge fenced candidates.

    Candidates are read in the order the prompt shows them. The judge tries, in turn:
    `prefer`; `position_bias`, `self_preference` and `verbosity_bias`, each with its own
    seeded draw per call (drawn on the candidates' texts in the order shown, so a call that
    shows them in another order draws again); then its `rule`. Only `rule: oracle` knows
    the bank's right answers: every other rule is blind.
    """

    model_config = _STRICT

    rule: JudgeRule = "agreement"
    """`agreement` (blind): the answer most candidates agree on (short answers agree when
    they end with the same word, e.g. "The answer is 391." and "391."), ties and answers
    that no other shares decided by `fallback`. `oracle`: looks the right answer up in the
    bank and picks a candidate that gives it with probability `accuracy` (otherwise a wrong
    one); off the bank, `fallback`. `first`/`longest`/`shortest`: by order shown or length."""

    accuracy: float = Field(default=1.0, ge=0, le=1)
    """`oracle` only: probability of picking a right candidate when there is one. The
    decision depends on the candidates' texts, not their order."""

    fallback: PlainRule = "longest"
    """The rule for what `agreement` leaves tied and what `oracle` cannot decide."""

    position_bias: float = Field(default=0.0, ge=0, le=1)
    """Probability of choosing the first candidate shown, whatever it says."""

    self_preference: float = Field(default=0.0, ge=0, le=1)
    """Probability of choosing its own answer when it is among the candidates. Candidates
    are anonymised, so the judge recognises its own answer by its text: a candidate that is
    exactly what this model would answer itself (normalised), as a pool member of the same
    model writes it."""

    verbosity_bias: float = Field(default=0.0, ge=0, le=1)
    """Probability of choosing the longest candidate."""

    prefer: str | None = None
    """Pick the first candidate shown that contains this text; overrides everything else."""

    @field_validator("rule", mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        if value == "bank":
            raise ValueError(
                "judge rule `bank` is now `oracle` (it looks the right answer up in the bank); "
                "`agreement` is the blind rule"
            )
        return value

    def describe(self) -> str:
        """One line saying what this judge is, for people reading a command's output."""
        rule = {
            "agreement": f"blind: picks the answer most candidates agree on, then the "
            f"{self.fallback}; it does not know the right answers",
            "oracle": f"oracle: knows the bank's right answers, picks one with probability "
            f"{self.accuracy:g}",
        }.get(self.rule, f"blind: picks the {self.rule} candidate")
        biases = [
            f"{name} {value:g}"
            for name, value in (
                ("position_bias", self.position_bias),
                ("self_preference", self.self_preference),
                ("verbosity_bias", self.verbosity_bias),
            )
            if value
        ]
        return rule + (f" ({', '.join(biases)})" if biases else "")


class SimModel(BaseModel):
    """One simulated model, addressed by `name` in the request's `model` field."""

    model_config = _STRICT

    name: str
    """The model identifier clients send, e.g. `"sim/atlas"`."""

    provider: str = "Sim"
    """The `provider` reported in responses."""

    description: str = ""
    """Shown in `GET /v1/models`."""

    accuracy: float = Field(default=1.0, ge=0, le=1)
    """Probability of answering a bank question correctly (seeded per model and question)."""

    template: str = "{answer}"
    """How bank answers are phrased; `{answer}` is replaced by the (right or wrong) answer."""

    answers: list[ScriptedAnswer] = Field(default_factory=list)
    """Scripted answers, the first match wins; checked before the bank. A judge's scripted
    answers are used for synthesis tasks only, matched on the judged conversation."""

    default_answer: str = "{model} has no scripted answer to: {prompt}"
    """The reply when nothing matches; `{model}` and `{prompt}` are replaced."""

    ttft: float = Field(default=0.0, ge=0)
    """Seconds before the first token (a non-streaming reply waits this plus generation)."""

    tokens_per_second: float | None = Field(default=None, gt=0)
    """Generation speed; `null` sends all tokens at once."""

    prompt_price: float = Field(default=0.0, ge=0)
    """USD per prompt token."""

    completion_price: float = Field(default=0.0, ge=0)
    """USD per completion token."""

    image_tokens: int = Field(default=85, ge=0)
    """Prompt tokens counted for each image part."""

    system_fingerprint: str | None = None
    """The `system_fingerprint` reported (the key is always present)."""

    context_length: int = 32768
    """Shown in `GET /v1/models`."""

    tool_use: Literal["mention", "never"] = "mention"
    """Without a forced tool or a scripted call: `mention` calls each offered tool whose
    name appears in the last user message; `never` answers in text."""

    off_protocol: OffProtocol | None = None
    """`null`: the model follows the format a request asks for. Set, it ignores it (as many
    self-hosted servers ignore `response_format`): a request that sets `response_format`
    (`json_schema`/`json_object`), forces a tool call (`tool_choice` required or named), or
    asks for JSON in its system or last user message gets plain text instead, no tool call:
    `prose` (the same content in sentences; a verdict reads "I pick candidate B because
    ..."), `wrong_keys` (a JSON object with other keys: `pick`/`why` for a verdict,
    `agreed`/`disputed`/`notes`/`missing` for a comparison, `response` otherwise) or
    `empty` (an empty reply). Requests that ask for no format are answered as usual."""

    error_group: str | None = None
    """Models of one group give the same wrong answer to a bank question when they miss it
    (correlated errors, as models trained on the same data share mistakes); `null`: each
    model draws its own."""

    adopt_majority: float = Field(default=1.0, ge=0, le=1)
    """In a debate revision, probability of adopting the answer most of the answers it sees
    (its own included) agree on, when that is not its own; otherwise it keeps its answer."""

    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    """How this model judges when its prompt holds fenced candidates and a `## Task`. Given
    tools, it proposes the tool calls of the candidate it prefers (else of the first other
    candidate that proposed any)."""

    faults: list[Fault] = Field(default_factory=list)
    """Failures injected into this model's requests; the first that selects a request wins."""


class Scenario(BaseModel):
    """What the simulator serves: models, a question bank, and global settings.

    Load one with `Scenario.from_file(path)` (YAML or JSON) or use `default_scenario()`.
    """

    model_config = _STRICT

    name: str = "custom"
    """A name, shown by the command line."""

    description: str = ""
    """What the scenario is for."""

    seed: int = 0
    """Seed of every random draw (bank correctness, judge choices, probabilistic faults)."""

    keepalive_interval: float = Field(default=1.0, gt=0)
    """Seconds between `: OPENROUTER PROCESSING` comments while a stream waits for its first
    token (one is always sent when the stream opens)."""

    stream_usage: Literal["always", "requested"] = "always"
    """`always` ends every stream with a usage chunk (as OpenRouter does); `requested` only
    when the request sets `stream_options.include_usage`."""

    fallback_model: str | None = None
    """A model that answers requests for unknown model names; `null`: those get a 404."""

    bank: list[BankQuestion] = Field(default_factory=list)
    """Questions with right answers, shared by all models."""

    models: list[SimModel] = Field(min_length=1)
    """The simulated models."""

    @model_validator(mode="after")
    def _check_names(self) -> Scenario:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        if self.fallback_model is not None and self.fallback_model not in names:
            raise ValueError(f"fallback_model {self.fallback_model!r} is not one of the models")
        return self

    def model(self, name: str) -> SimModel | None:
        """The model that serves requests for `name` (or the fallback), if any."""
        for model in self.models:
            if model.name == name:
                return model
        if self.fallback_model is not None:
            return self.model(self.fallback_model)
        return None

    @classmethod
    def from_text(cls, text: str, fmt: Literal["yaml", "json"] = "yaml") -> Scenario:
        """Parse a scenario from YAML or JSON text.

        Raises:
            pydantic.ValidationError: when the scenario is invalid.
            ValueError: when the text is not a mapping.
        """
        data: Any
        if fmt == "json":
            data = json.loads(text)
        else:
            import yaml  # type: ignore[import-untyped]

            data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError("a scenario must be a mapping with at least `models`")
        return cls.model_validate(data)

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """Load a scenario from a `.yaml`/`.yml` or `.json` file."""
        path = Path(path)
        fmt: Literal["yaml", "json"] = "json" if path.suffix.lower() == ".json" else "yaml"
        return cls.from_text(path.read_text(encoding="utf-8"), fmt)


def default_scenario_text() -> str:
    """The YAML text of the bundled default scenario."""
    return (
        resources.files("langchain_fusion.sim")
        .joinpath("scenarios/default.yaml")
        .read_text(encoding="utf-8")
    )


def default_scenario() -> Scenario:
    """The bundled demo scenario: three members with distinct answers and a judge."""
    return Scenario.from_text(default_scenario_text())


def load_scenario(source: Scenario | str | Path | None = None) -> Scenario:
    """A scenario from an instance, a file path, or `None` for the default one."""
    if source is None:
        return default_scenario()
    if isinstance(source, Scenario):
        return source
    return Scenario.from_file(source)
