"""The simulator's pure parts: scenarios, tokens, faults, answers and the judge (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai.chat_models.base import _convert_message_to_dict
from pydantic import ValidationError

from langchain_fusion._core.fencing import Candidate, new_nonce
from langchain_fusion._core.prompts import (
    COMPARISON_TASK,
    SYNTHESIS_TASK,
    judge_messages,
    revision_messages,
    verdict_task,
)
from langchain_fusion.sim import Fault, Scenario, count_tokens, default_scenario
from langchain_fusion.sim._answer import build_answer
from langchain_fusion.sim._request import parse_request
from langchain_fusion.sim._schema import fill_schema
from langchain_fusion.sim._tokens import split_tokens


def _request(text: str, **body: Any) -> Any:
    return parse_request({"model": "m", "messages": [{"role": "user", "content": text}], **body})


def _answer(scenario: Scenario, model: str, text: str, **body: Any) -> Any:
    found = scenario.model(model)
    assert found is not None
    return build_answer(scenario, found, _request(text, **body), "x")


def test_default_scenario_has_members_and_a_judge() -> None:
    scenario = default_scenario()
    names = [m.name for m in scenario.models]
    assert len(names) == 4
    assert "sim/judge" in names
    answers = {_answer(scenario, n, "Review this migration plan").text for n in names[:3]}
    assert len(answers) == 3  # distinct answers, so fusion is visible


def test_scenario_from_yaml_and_json_files(tmp_path: Path, scenario: Scenario) -> None:
    data = scenario.model_dump()
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "s.json").write_text(json.dumps(data))
    assert Scenario.from_file(tmp_path / "s.yaml") == scenario
    assert Scenario.from_file(tmp_path / "s.json") == scenario


@pytest.mark.parametrize(
    "data",
    [
        {"models": []},
        {"models": [{"name": "a"}, {"name": "a"}]},
        {"models": [{"name": "a", "answers": [{"answer": "x"}]}]},
        {"models": [{"name": "a", "accuracy": 1.5}]},
        {"models": [{"name": "a", "faults": [{"kind": "explode"}]}]},
        {"models": [{"name": "a", "unknown_field": 1}]},
        {"models": [{"name": "a"}], "fallback_model": "b"},
    ],
)
def test_invalid_scenarios_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Scenario.model_validate(data)


def test_tokens_are_whitespace_words_and_pieces_rebuild_the_text() -> None:
    text = "  Hello,   world!\nHow are you?  "
    assert count_tokens(text) == 5
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert len(pieces) == 5
    assert split_tokens("") == []


def test_fault_selection() -> None:
    every = Fault(kind="hang")
    assert every.selects(1, False, 0.9) and every.selects(7, True, 0.9)
    listed = Fault(kind="hang", requests=[2, 4])
    assert [n for n in range(1, 6) if listed.selects(n, False, 0.0)] == [2, 4]
    after = Fault(kind="hang", after=3, stream=True)
    assert [n for n in range(1, 6) if after.selects(n, True, 0.0)] == [3, 4, 5]
    assert not after.selects(4, False, 0.0)
    maybe = Fault(kind="hang", probability=0.5)
    assert maybe.selects(1, False, 0.2) and not maybe.selects(1, False, 0.7)


def test_bank_answers_are_deterministic_and_follow_accuracy(scenario: Scenario) -> None:
    assert _answer(scenario, "t/plain", "what is 17 * 23 ?").text == "The answer is 391."
    wrong = {_answer(scenario, "t/wrong", "What is 17*23?").text for _ in range(5)}
    assert len(wrong) == 1
    assert wrong.pop() in ("It is 381.", "It is 401.")


def test_scripted_match_and_default(scenario: Scenario) -> None:
    assert _answer(scenario, "t/plain", "Well, HELLO!").text == "Hello there, how can I help?"
    assert _answer(scenario, "t/plain", "zzz").text == "I have nothing scripted for that."


def test_schema_filler() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["x", "y"]},
            "pet": {"$ref": "#/$defs/Pet"},
        },
        "$defs": {"Pet": {"type": "object", "properties": {"ok": {"type": "boolean"}}}},
    }
    value = fill_schema(schema, "text", [7.0, 2.5])
    assert value == {
        "name": "text",
        "age": 7,
        "score": 2.5,
        "tags": ["text"],
        "kind": "x",
        "pet": {"ok": True},
    }


def test_response_format_json_schema_and_forced_tool(scenario: Scenario) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "P",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    scripted = _answer(scenario, "t/plain", "give me a person", response_format=fmt)
    assert json.loads(scripted.text) == {"name": "Ada Lovelace", "age": 36}
    filled = _answer(scenario, "t/plain", "zzz", response_format=fmt)
    assert json.loads(filled.text) == {"name": "I have nothing scripted for that."}
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
    }
    forced = _answer(scenario, "t/plain", "add 3 please", tools=[tool], tool_choice="required")
    assert forced.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in forced.tool_calls] == [("add", {"a": 3})]
    mentioned = _answer(scenario, "t/plain", "use add on 5", tools=[tool])
    assert [c.name for c in mentioned.tool_calls] == ["add"]
    plain = _answer(scenario, "t/plain", "nothing to do", tools=[tool])
    assert plain.tool_calls == []


def _judge_prompt(task: str, texts: list[str]) -> str:
    candidates = [Candidate(label=chr(65 + i), text=t) for i, t in enumerate(texts)]
    messages = judge_messages([HumanMessage("What is 17*23?")], candidates, new_nonce(), task)
    return str(messages[-1].content)


def test_judge_answers_each_task_format(scenario: Scenario) -> None:
    texts = ["It is 401.", "The answer is 391.", "391, clearly."]
    verdict = json.loads(
        _answer(scenario, "t/judge", _judge_prompt(verdict_task(["A", "B", "C"]), texts)).text
    )
    assert verdict["winner"] in ("B", "C") and verdict["rationale"]
    comparison = json.loads(
        _answer(scenario, "t/judge", _judge_prompt(COMPARISON_TASK, texts)).text
    )
    assert set(comparison) == {"consensus", "contradictions", "unique_insights", "gaps"}
    assert "391" in comparison["contradictions"][0] and "401" in comparison["contradictions"][0]
    synthesis = _answer(scenario, "t/judge", _judge_prompt(SYNTHESIS_TASK, texts)).text
    assert "391" in synthesis and "401" not in synthesis


def test_judge_rule_oracle_is_seeded_and_respects_accuracy(scenario: Scenario) -> None:
    texts = ["It is 401.", "The answer is 391.", "It is 381."]
    for accuracy, expected in ((1.0, "B"), (0.0, None)):
        data = scenario.model_dump()
        data["models"][3]["judge"]["accuracy"] = accuracy
        judged = Scenario.model_validate(data)
        winners = set()
        for _ in range(3):
            prompt = _judge_prompt(verdict_task(["A", "B", "C"]), texts)
            winners.add(json.loads(_answer(judged, "t/judge", prompt).text)["winner"])
        assert len(winners) == 1
        winner = winners.pop()
        assert winner == expected if expected else winner in ("A", "C")


def test_debate_revision_joins_the_majority(scenario: Scenario) -> None:
    model = scenario.model("t/wrong")
    assert model is not None

    peers = [Candidate("A", "The answer is 391."), Candidate("B", "391, clearly.")]
    own = AIMessage(_answer(scenario, "t/wrong", "What is 17*23?").text)
    messages = revision_messages([HumanMessage("What is 17*23?")], own, peers, new_nonce())
    body = {"model": "t/wrong", "messages": [_convert_message_to_dict(m) for m in messages]}
    assert build_answer(scenario, model, parse_request(body), "x").text == "It is 391."


_VERDICT_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "Verdict",
        "schema": {
            "type": "object",
            "properties": {"winner": {"type": "string"}, "rationale": {"type": "string"}},
            "required": ["winner", "rationale"],
        },
    },
}
_VERDICT_TOOL = {
    "type": "function",
    "function": {"name": "Verdict", "parameters": _VERDICT_SCHEMA["json_schema"]["schema"]},
}


@pytest.mark.parametrize(
    "fmt",
    [
        {"response_format": _VERDICT_SCHEMA},
        {"response_format": {"type": "json_object"}},
        {"tools": [_VERDICT_TOOL], "tool_choice": "required"},
        {
            "tools": [_VERDICT_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "Verdict"}},
        },
        {},  # the judge prompt asks for JSON in words
    ],
)
def test_off_protocol_judges_ignore_the_format(scenario: Scenario, fmt: dict[str, Any]) -> None:
    prompt = _judge_prompt(verdict_task(["A", "B", "C"]), ["It is 401.", "It is 391.", "381"])
    followed = _answer(scenario, "t/judge", prompt, **fmt)
    assert followed.tool_calls or json.loads(followed.text)["winner"] == "B"

    prose = _answer(scenario, "t/prose-judge", prompt, **fmt)
    assert prose.tool_calls == [] and prose.finish_reason == "stop"
    assert prose.text.startswith("I pick candidate B because ")
    assert "{" not in prose.text

    keys = json.loads(_answer(scenario, "t/keys-judge", prompt, **fmt).text)
    assert keys["pick"] == "B" and keys["why"] and "winner" not in keys

    empty = _answer(scenario, "t/empty-judge", prompt, **fmt)
    assert (empty.text, empty.tool_calls, empty.completion_tokens) == ("", [], 0)


def test_off_protocol_comparison_and_plain_requests(scenario: Scenario) -> None:
    prompt = _judge_prompt(COMPARISON_TASK, ["It is 401.", "It is 391."])
    keys = json.loads(_answer(scenario, "t/keys-judge", prompt).text)
    assert set(keys) == {"agreed", "disputed", "notes", "missing"}
    prose = _answer(scenario, "t/prose-judge", prompt).text
    assert prose.startswith("On consensus: ") and "On contradictions: " in prose
    # A request that asks for no format is answered as usual.
    assert _answer(scenario, "t/prose-judge", "What is 17*23?").text == "391"
    plain = _answer(
        scenario, "t/keys-judge", "What is 17*23?", response_format={"type": "json_object"}
    )
    assert json.loads(plain.text) == {"response": "391"}
