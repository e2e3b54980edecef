"""One fusion call's state and the phases every mode shares.

`FusionRun` holds the members, judge, settings, conversation and ledger of one call; the
mode runners (`_runtime/modes/`) drive it. `prepare_run` validates the input and the
per-call arguments before any model is called.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_fusion._core import prompts
from langchain_fusion._core.agreement import answers_agree
from langchain_fusion._core.budget import Pricing, estimate_tokens, phase_cost
from langchain_fusion._core.capabilities import image_blocks
from langchain_fusion._core.config import SETTING_NAMES, FusionSettings
from langchain_fusion._core.fencing import Candidate, anonymise, message_text
from langchain_fusion._core.judging import agreement_counts
from langchain_fusion._core.outcome import Outcome
from langchain_fusion._core.report import build_report
from langchain_fusion._core.usage import Ledger
from langchain_fusion._exceptions import FusionInputError, NotEnoughAnswersError
from langchain_fusion._runtime.limits import register as register_limits
from langchain_fusion._runtime.members import Member
from langchain_fusion._runtime.steps import Call, FanOut, FusionResult
from langchain_fusion._runtime.tool_choice import forces_tool_call

#: What a mode runner is: a generator of steps that returns the fusion's result.
Steps = Generator[Call | FanOut, Any, Any]

SINGLE_ANSWER = "only one member answered"
MEMBERS_AGREE = "the members agree"
OVER_BUDGET = "the judge would exceed max_cost_usd"


def prepare_run(
    conversation: Sequence[BaseMessage],
    kwargs: dict[str, Any],
    settings_for: Callable[[dict[str, Any]], FusionSettings],
    participants: Callable[[float], tuple[list[Member], list[Member]]],
    stop: list[str] | None = None,
) -> FusionRun:
    """Validate the input and the per-call arguments, then set up the run.

    The runtime façade (`_runtime/session.py`) calls this before any model is called.

    Args:
        conversation: The input, as LangChain messages.
        kwargs: Per-call arguments: setting overrides, `tools`, `tool_choice`.
        settings_for: The call's validated settings, from its setting overrides.
        participants: Resolves `(members, judges)` for a `hedge_after` value.
        stop: The caller's stop sequences.

    Raises:
        FusionInputError: for an empty input or an unknown per-call argument.
        pydantic.ValidationError: for an invalid setting override.
    """
    if not conversation:
        raise FusionInputError(
            "no messages to fuse: pass a prompt string or a non-empty list of messages"
        )
    kwargs = dict(kwargs)
    tools = kwargs.pop("tools", None)
    tool_choice = kwargs.pop("tool_choice", None)
    unknown = sorted(k for k in kwargs if k not in SETTING_NAMES)
    if unknown:
        raise FusionInputError(
            f"unknown per-call argument(s) {', '.join(unknown)}: a fusion accepts "
            f"{', '.join(SETTING_NAMES)}, tools and tool_choice; set member options on "
            "the members themselves"
        )
    settings = settings_for(kwargs)
    register_limits(settings.rate_limits)
    members, judges = participants(settings.hedge_after)
    return FusionRun(
        members, judges, settings, conversation, stop, tools=tools, tool_choice=tool_choice
    )


class FusionRun:
    """One fusion call: its members, judge, settings, conversation, and ledger of calls."""

    def __init__(
        self,
        members: Sequence[Member],
        judges: Sequence[Member],
        settings: FusionSettings,
        conversation: Sequence[BaseMessage],
        stop: list[str] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> None:
        self.members = list(members)
        self.stop = stop
        #: The judges: one, or a panel; the first writes the answer where one is written.
        self.judges = list(judges)
        self.judge = judge = self.judges[0]
        self.settings = settings
        self.conversation = list(conversation)
        #: The judge as it writes the final answer: with the caller's tools, if any.
        self.writer = judge
        #: Members that sit this call out, with the reason (reported as `skipped`).
        self.skipped: dict[str, str] = {}
        images = image_blocks(self.conversation)
        #: The conversation's images, for a judge that may see them.
        self.judge_images = images if judge.accepts_images else []
        if images:
            for member in self.members:
                if not member.accepts_images:
                    self.skipped[member.name] = "does not accept image inputs"
        if tools:
            self._bind_tools(list(tools), tool_choice, settings)
        if len(self.skipped) == len(self.members):
            raise FusionInputError(
                "no pool member can take this call: "
                + "; ".join(f"{name} {why}" for name, why in self.skipped.items())
                + ". Add members that can, or override a member's `capabilities`"
            )
        self.rng = random.Random(settings.seed)
        self.ledger = Ledger()
        self.pricing = Pricing(settings.prices, self.ledger.outcomes)
        #: Phases skipped to stay within `max_cost_usd`, and models that could not be priced.
        self.budget_skipped: list[str] = []
        self.unpriced: set[str] = set()
        self.started = time.monotonic()
        #: Wall time of the judge phases (concurrent passes and judges count once).
        self.judge_s = 0.0
        self.latest: dict[str, AIMessage] = {}
        models = {m.model for m in self.members}
        #: A single judge that is also a pool member's model (reported `self_judging`).
        self.self_judging = len(self.judges) == 1 and judge.model in models
        self_vote = settings.judge_self_vote or ("exclude" if len(self.judges) > 1 else "allow")
        self._exclude_self = self_vote == "exclude"

    def _bind_tools(
        self, tools: list[dict[str, Any]], tool_choice: Any, settings: FusionSettings
    ) -> None:
        """Bind the caller's tools to every member that can call tools, and to the judge.

        Raises:
            FusionInputError: before any call, when a tool call is required and (merge,
                debate) the judge cannot make one.
        """
        forced = forces_tool_call(tool_choice)
        bound = []
        for member in self.members:
            if member.supports_tools:
                bound.append(member.with_tools(tools, tool_choice))
            else:
                bound.append(member)
                if forced:
                    self.skipped.setdefault(
                        member.name, "cannot call tools, and tool_choice requires a tool call"
                    )
        self.members = bound
        if self.judge.supports_tools:
            self.writer = self.judge.with_tools(tools, tool_choice)
        elif forced and settings.mode != "best_of":
            raise FusionInputError(
                f"the judge cannot call tools, and in {settings.mode} mode it writes the answer, "
                "which must be a tool call: use a judge that supports tool calling, or "
                "mode='best_of'"
            )

    # -- shared phases ----------------------------------------------------------------------

    def answer_phase(self) -> Steps:
        s = self.settings
        # In best_of a member's answer is returned as written, so it obeys the caller's stop.
        stop = self.stop if s.mode == "best_of" else None
        calls = [
            Call(m, self.conversation, timeout=s.member_timeout, stop=stop, max_tokens=s.max_tokens)
            for m in self.members
            if m.name not in self.skipped
        ]
        quorum = None if s.quorum is None else min(s.quorum, len(calls))
        answers: list[Outcome] = yield FanOut(calls, quorum, s.grace)
        by_name = {o.name: o for o in answers}
        outcomes = [
            by_name.get(m.name)
            or Outcome(m.name, m.model, "member", "skipped", error=self.skipped[m.name], made=False)
            for m in self.members
        ]
        self.ledger.extend(outcomes)
        for outcome in outcomes:
            if outcome.ok and outcome.message is not None:
                self.latest[outcome.name] = outcome.message
        answered = [o for o in outcomes if o.ok]
        if len(answered) < s.min_successful:
            raise NotEnoughAnswersError(
                f"only {len(answered)} of {len(self.members)} members answered, "
                f"min_successful is {s.min_successful}: "
                + "; ".join(f"{o.name}: {o.status} ({o.error})" for o in outcomes if not o.ok),
                answers=dict(self.latest),
                errors={o.name: o.error or o.status for o in outcomes if not o.ok},
                report=self.report(extra={"error": "not enough answers"}),
            )
        return answered

    def candidates(self, names: Sequence[str]) -> tuple[dict[str, str], list[Candidate]]:
        mapping = anonymise(names, self.rng)
        return mapping, [
            Candidate(label, message_text(self.latest[name])) for label, name in mapping.items()
        ]

    def judge_input(
        self, candidates: list[Candidate], nonce: str, task: str, extra: str | None = None
    ) -> list[BaseMessage]:
        return prompts.judge_messages(
            self.conversation,
            candidates,
            nonce,
            task,
            self.settings.criteria,
            extra=extra,
            images=self.judge_images,
        )

    # -- results ----------------------------------------------------------------------------

    def report(
        self,
        winner: str | None = None,
        rounds: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        common: dict[str, Any] = {}
        if self.settings.max_cost_usd is not None:
            common["budget"] = {
                "max_cost_usd": self.settings.max_cost_usd,
                "spent_usd": self.pricing.spent(),
                "skipped": list(self.budget_skipped),
                "unpriced": sorted(self.unpriced),
            }
        if self.self_judging:
            common["self_judging"] = True
        return build_report(
            mode=self.settings.mode,
            members=[(m.name, m.model) for m in self.members],
            judge_model=self.judge.model,
            judges=[(j.name, j.model) for j in self.judges] if len(self.judges) > 1 else (),
            ledger=self.ledger,
            total_s=time.monotonic() - self.started,
            judge_s=self.judge_s,
            winner=winner,
            rounds=rounds,
            extra={**common, **(extra or {})},
        )

    def finish(
        self,
        message: AIMessage,
        *,
        winner: str | None = None,
        rounds: int | None = None,
        streamed: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> FusionResult:
        answer = AIMessage(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            tool_calls=message.tool_calls,
            invalid_tool_calls=message.invalid_tool_calls,
        )
        return FusionResult(
            message=answer,
            report=self.report(winner, rounds, extra),
            usage=self.ledger.usage(),
            streamed=streamed,
            answers=dict(self.latest),
        )

    def agree(self, names: Sequence[str]) -> bool:
        texts = [message_text(self.latest[name]) for name in names]
        return (self.settings.agreement or answers_agree)(texts)

    def agreement_counts(self, names: Sequence[str]) -> dict[str, int]:
        """How many other answers of `names` each agrees with (the agreement gate's test)."""
        texts = {name: message_text(self.latest[name]) for name in names}
        return agreement_counts(names, texts, self.settings.agreement or answers_agree)

    def excludes_self_vote(self, judge: Member, winner: str) -> bool:
        """Whether `judge`'s vote for member `winner` is discarded (`judge_self_vote`)."""
        model = next((m.model for m in self.members if m.name == winner), None)
        return self._exclude_self and model == judge.model

    def without_judge(
        self, names: list[str], rounds: int | None = None, extra: dict[str, Any] | None = None
    ) -> FusionResult | None:
        """Return the answer without a judge call when judging is needless.

        With a single answer there is nothing to judge; with `skip_judge_on_agreement`,
        answers that agree are returned as the first of them (pool order) is written.
        """
        if len(names) == 1:
            reason = SINGLE_ANSWER
        elif self.settings.skip_judge_on_agreement and self.agree(names):
            reason = MEMBERS_AGREE
        else:
            return None
        extra = {**(extra or {}), "judge_skipped": reason}
        if reason == MEMBERS_AGREE:
            extra["agreed"] = True
        return self.finish(self.latest[names[0]], winner=names[0], rounds=rounds, extra=extra)

    def affordable(self, phase: str, calls: Sequence[tuple[str, list[BaseMessage]]]) -> bool:
        """Whether a phase's worst case fits in `max_cost_usd`; records a phase it skips.

        A phase whose cost cannot be estimated (a model without a known price) goes ahead,
        and the report lists the unpriced models.
        """
        budget = self.settings.max_cost_usd
        if budget is None:
            return True
        estimate = [(model, estimate_tokens(messages)) for model, messages in calls]
        cost, unknown = phase_cost(self.pricing, estimate, self.settings.max_tokens)
        spent = self.pricing.spent()
        if cost is None or spent is None:
            self.unpriced.update(unknown, self.pricing.unpriced())
            return True
        if spent + cost <= budget:
            return True
        self.budget_skipped.append(phase)
        return False

    def over_budget(
        self, names: list[str], rounds: int | None = None, extra: dict[str, Any] | None = None
    ) -> FusionResult:
        """The judge phase would exceed the budget: the first answer in pool order."""
        first = next(m.name for m in self.members if m.name in names)
        extra = {**(extra or {}), "judge_skipped": OVER_BUDGET}
        return self.finish(self.latest[first], winner=first, rounds=rounds, extra=extra)
