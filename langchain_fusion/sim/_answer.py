"""What a simulated model answers: scripted, bank, judge, debate revision, tools and JSON."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_fusion._core.verdict import json_objects
from langchain_fusion.sim._judge import choose, judge_reply, majority_claim
from langchain_fusion.sim._knowledge import fill, first_answer, scripted
from langchain_fusion.sim._protocol import asks_for_format, forced_tool, off_protocol_reply
from langchain_fusion.sim._reading import Fenced, answer_word, claim, read_candidates
from langchain_fusion.sim._request import ChatRequest
from langchain_fusion.sim._scenario import Scenario, ScriptedAnswer, SimModel
from langchain_fusion.sim._schema import fill_schema, numbers_in
from langchain_fusion.sim._tokens import count_tokens, draw, split_tokens

_PROPOSED = "Proposed tool calls:"
_PROPOSAL_RE = re.compile(r"^- ([^\s(]+)\((\{.*\})\)$", re.MULTILINE)


@dataclass(frozen=True)
class ToolCall:
    """A tool call in a reply."""

    id: str
    """The call id (`call_...`)."""

    name: str
    """The tool's name."""

    arguments: str
    """The arguments, JSON-encoded."""

    @property
    def tokens(self) -> int:
        """Completion tokens of this call: words of its name and of its arguments string."""
        return count_tokens(self.name) + count_tokens(self.arguments)


@dataclass
class Answer:
    """A reply before it is put on the wire."""

    text: str
    """The message content ('' with tool calls)."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tool calls proposed."""

    finish_reason: str = "stop"
    """`stop`, `tool_calls`, `length` or `error`."""

    @property
    def completion_tokens(self) -> int:
        """Completion tokens: words of the text plus those of every tool call."""
        return count_tokens(self.text) + sum(c.tokens for c in self.tool_calls)


def _own_previous(request: ChatRequest) -> str | None:
    for message in reversed(request.messages):
        if message.role == "assistant":
            return message.text
    return None


def _revision(
    scenario: Scenario, model: SimModel, request: ChatRequest, peers: list[tuple[str, str]]
) -> str:
    """A debate revision, from what the member sees: its own answer and its peers'.

    When the claim most of those answers make (its own included) is not its own, it adopts
    it with probability `adopt_majority`, in its own phrasing (`template`); on a tie it
    keeps its own claim if that is among the leaders. A long answer (no claim) is kept.
    """
    own = _own_previous(request)
    conversation = "\n".join(m.text for m in request.messages[:-1] if m.role in ("user", "system"))
    if own is None:
        return first_answer(scenario, model, conversation)[0]
    own_claim = claim(own)
    leaders, _ = majority_claim([own, *(text for _, text in peers)])
    if own_claim is None or not leaders or own_claim in leaders:
        return own
    roll = draw(scenario.seed, "adopt", model.name, conversation, *(t for _, t in peers))
    if roll >= model.adopt_majority:
        return own
    adopted = sorted(leaders)[0]
    word = next(answer_word(t) for _, t in peers if claim(t) == adopted)
    return fill(model.template, model, conversation, word or adopted)


def _judge_prompt(request: ChatRequest) -> tuple[str, Fenced] | None:
    """The judge prompt a request answers, with its candidates.

    The last user message's, or for a corrective retry (judge prompt, reply, correction)
    the judge prompt before it.
    """
    system = "\n\n".join(m.text for m in request.messages if m.role == "system")
    users = [i for i, m in enumerate(request.messages) if m.role == "user"]
    if not users:
        return None
    last = users[-1]
    tried = [last]
    if len(users) > 1 and request.messages[last - 1].role == "assistant":
        tried.append(users[-2])  # read only when the last message has no candidates
    for index in tried:
        text = request.messages[index].text
        fenced = read_candidates(f"{system}\n\n{text}" if system else text)
        if fenced.is_judge_task:
            return text, fenced
        if fenced.candidates:
            return None
    return None


def _text(
    scenario: Scenario, model: SimModel, request: ChatRequest
) -> tuple[str, ScriptedAnswer | None]:
    """The reply text, and the scripted answer it came from (for its tools and JSON)."""
    if request.last_role == "tool":
        results = []
        for message in reversed(request.messages):
            if message.role != "tool":
                break
            results.append(message.text)
        return "The tool returned: " + "; ".join(reversed(results)), None
    prompt = request.last_user_text
    if request.last_role == "user":
        judged = _judge_prompt(request)
        if judged is not None:
            judge_prompt, fenced = judged
            rule = _synthesis_script(model, judge_prompt)
            if rule is not None:
                return fill(rule.answer, model, judge_prompt), rule
            return judge_reply(scenario, model, judge_prompt, fenced.candidates), None
        peers = read_candidates(request.fenced_text).candidates
        if peers:
            return _revision(scenario, model, request, peers), None
    return first_answer(scenario, model, prompt)


def _synthesis_script(model: SimModel, prompt: str) -> ScriptedAnswer | None:
    """A judge's scripted answer to a synthesis task (merge, debate), if one matches.

    Matched on the judged conversation (the prompt before its candidates); verdicts and
    comparisons are never scripted.
    """
    task = prompt[prompt.rfind("## Task") :]
    if '"winner"' in task or '"consensus"' in task:
        return None
    return scripted(model, prompt.split("## Candidates", 1)[0])


def _json_in(text: str) -> dict[str, Any] | None:
    objects = json_objects(text)
    return objects[-1] if objects else None


def _proposals(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls a candidate proposed, as a fusion's judge prompt writes them out."""
    _, found, tail = text.rpartition(_PROPOSED)
    calls = []
    for match in _PROPOSAL_RE.finditer(tail if found else ""):
        try:
            args = json.loads(match.group(2))
        except json.JSONDecodeError:
            continue
        if isinstance(args, dict):
            calls.append((match.group(1), args))
    return calls


def _judged_calls(
    scenario: Scenario, model: SimModel, request: ChatRequest, names: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """A judge given tools proposes the calls of the candidate it prefers.

    When that candidate proposed none of the offered tools, the calls of the first other
    candidate (in the order shown) that did; none when no candidate proposed a call.
    """
    if request.last_role != "user":
        return []
    judged = _judge_prompt(request)
    if judged is None:
        return []
    prompt, fenced = judged
    shown = fenced.candidates
    winner, _ = choose(scenario, model, shown, prompt.split("## Candidates", 1)[0])
    texts = fenced.by_label
    for label in [winner, *(lb for lb, _ in shown if lb != winner)]:
        calls = [(name, args) for name, args in _proposals(texts[label]) if name in names]
        if calls:
            return calls
    return []


def _tool_calls(
    scenario: Scenario,
    model: SimModel,
    request: ChatRequest,
    rule: ScriptedAnswer | None,
    text: str,
    call_id: str,
) -> list[ToolCall]:
    names = request.tool_names()
    if not names or request.tool_choice == "none":
        return []
    numbers = numbers_in(request.last_user_text, text)
    calls: list[tuple[str, dict[str, Any]]] = []
    if rule is not None and rule.tool_calls:
        calls = [(c.name, c.arguments) for c in rule.tool_calls if c.name in names]
    forced = forced_tool(request)
    if not calls:  # a judge proposes what its preferred candidate proposed
        choice = request.tool_choice
        named = isinstance(choice, dict) or (isinstance(choice, str) and choice in names)
        allowed = ([forced] if forced else []) if named else names
        calls = _judged_calls(scenario, model, request, allowed)
    if not calls and forced is not None:
        args = rule.structured if rule is not None and rule.structured is not None else None
        args = args if args is not None else _json_in(text)
        if args is None:
            args = fill_schema(request.tool_parameters(forced), text, numbers)
        calls = [(forced, args if isinstance(args, dict) else {})]
    if not calls and model.tool_use == "mention" and request.last_role == "user":
        said = request.last_user_text.casefold()
        for name in names:
            if re.search(rf"(?<!\w){re.escape(name.casefold())}(?!\w)", said):
                args = fill_schema(request.tool_parameters(name), text, numbers)
                calls.append((name, args if isinstance(args, dict) else {}))
    return [
        ToolCall(id=f"call_{call_id}_{i}", name=name, arguments=json.dumps(args))
        for i, (name, args) in enumerate(calls)
    ]


def _structured(request: ChatRequest, rule: ScriptedAnswer | None, text: str) -> str | None:
    fmt = request.response_format
    if not fmt or fmt.get("type") not in ("json_schema", "json_object"):
        return None
    if rule is not None and rule.structured is not None:
        return json.dumps(rule.structured)
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            if isinstance(json.loads(stripped), dict):
                return stripped
        except json.JSONDecodeError:
            pass
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": text})
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    value = fill_schema(schema if isinstance(schema, dict) else {}, text, numbers_in(text))
    return json.dumps(value)


def build_answer(scenario: Scenario, model: SimModel, request: ChatRequest, call_id: str) -> Answer:
    """The reply `model` gives to `request`.

    Args:
        scenario: The scenario (bank, seed).
        model: The simulated model.
        request: The parsed request.
        call_id: A unique id for this request (tool call ids derive from it).
    """
    text, rule = _text(scenario, model, request)
    if model.off_protocol is not None and asks_for_format(request):
        return Answer(text=off_protocol_reply(model.off_protocol, text))
    calls = _tool_calls(scenario, model, request, rule, text, call_id)
    if calls:
        return Answer(text="", tool_calls=calls, finish_reason="tool_calls")
    structured = _structured(request, rule, text)
    if structured is not None:
        text = structured
    elif request.max_tokens is not None and count_tokens(text) > request.max_tokens:
        text = "".join(split_tokens(text)[: request.max_tokens])
        return Answer(text=text, finish_reason="length")
    return Answer(text=text)
