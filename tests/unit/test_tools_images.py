"""Tools, structured output and images carried through the whole panel, in every mode."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from langchain_fusion import FusionChatModel, FusionInputError
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing import FakeChatModel, FakeJudge

MODES = ("best_of", "merge", "debate")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city", "unit"],
        },
    },
}

IMAGE = {"type": "image", "url": "https://example.com/cat.png"}
OPENAI_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def text_only(name: str, answer: str) -> FakeChatModel:
    return FakeChatModel(model=name, responses=[answer], profile={"image_inputs": False})


def report(message: AIMessage) -> dict:
    return message.response_metadata["fusion"]


def statuses(message: AIMessage) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report(message)["candidates"]}


# -- tools ----------------------------------------------------------------------------------


def weather_pool() -> list[FakeChatModel]:
    return [
        FakeChatModel(model="a", responses=['{"city": "Paris", "unit": "celsius"}']),
        FakeChatModel(model="b", responses=['{"city": "Paris", "unit": "kelvin"}']),
        FakeChatModel(model="c", responses=['{"city": "Paris", "unit": "celsius"}']),
    ]


async def test_best_of_returns_the_chosen_tool_call_as_proposed(answer):
    pool = weather_pool()
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(prefer="kelvin"), mode="best_of")
    message = await answer(fusion.bind_tools([WEATHER], tool_choice="any"), "Weather in Paris?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "kelvin"})
    ]
    assert report(message)["winner"] == "b"


async def test_the_judge_sees_each_candidates_proposed_calls():
    judge = FakeJudge()
    fusion = FusionChatModel(pool=weather_pool(), judge=judge, mode="best_of")
    await fusion.bind_tools([WEATHER], tool_choice="any").ainvoke("Weather in Paris?")
    seen = extract_candidates("\n".join(m.text for m in judge.inputs[0]))
    assert sorted(seen.values()) == sorted(
        f'Proposed tool calls:\n- get_weather({{"city": "Paris", "unit": "{unit}"}})'
        for unit in ("celsius", "kelvin", "celsius")
    )


@pytest.mark.parametrize("mode", ["merge", "debate"])
async def test_the_judge_writes_the_final_tool_call_from_the_candidates(answer, mode):
    fusion = FusionChatModel(pool=weather_pool(), judge=FakeJudge(), mode=mode, debate_rounds=1)
    message = await answer(fusion.bind_tools([WEATHER], tool_choice="any"), "Weather in Paris?")
    # The fake judge fuses the proposals field by field: "celsius" is the majority unit.
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"})
    ]
    assert message.tool_calls[0]["id"]


async def test_members_that_cannot_call_tools_sit_out_a_required_tool_call():
    pool = [
        *weather_pool()[:2],
        FakeChatModel(model="plain", responses=["No tools here."], profile={"tool_calling": False}),
    ]
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="best_of")
    message = await fusion.bind_tools([WEATHER], tool_choice="any").ainvoke("Weather?")
    assert statuses(message)["plain"] == "skipped"
    assert "tool" in report(message)["candidates"][2]["error"]
    assert pool[2].calls == 0


async def test_a_judge_that_cannot_call_tools_cannot_write_a_required_call():
    judge = FakeJudge(profile={"tool_calling": False})
    pool = weather_pool()
    fusion = FusionChatModel(pool=pool, judge=judge, mode="merge")
    with pytest.raises(FusionInputError, match="judge cannot call tools"):
        await fusion.bind_tools([WEATHER], tool_choice="any").ainvoke("Weather?")
    assert sum(m.calls for m in pool) == 0
    # best_of returns a member's call as written: the judge only chooses.
    message = await fusion.bind_tools([WEATHER], tool_choice="any").ainvoke(
        "Weather?", mode="best_of"
    )
    assert message.tool_calls[0]["name"] == "get_weather"


def test_tool_choice_true_needs_exactly_one_tool():
    fusion = FusionChatModel(pool=weather_pool(), judge=FakeJudge())
    with pytest.raises(ValueError, match="exactly one tool"):
        fusion.bind_tools(
            [WEATHER, {**WEATHER, "function": {**WEATHER["function"], "name": "x"}}],
            tool_choice=True,
        )
    bound = fusion.bind_tools([WEATHER], tool_choice=True)
    assert bound.kwargs["tool_choice"] == "get_weather"  # type: ignore[attr-defined]


async def test_a_tool_result_history_reaches_every_member_intact():
    pool = [
        FakeChatModel(model="a", responses=["It is 18 C."]),
        FakeChatModel(model="b", responses=["18 degrees."]),
    ]
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="merge")
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage(
            "",
            tool_calls=[
                {
                    "name": "get_weather",
                    "args": {"city": "Paris", "unit": "c"},
                    "id": "call_7",
                    "type": "tool_call",
                }
            ],
        ),
        ToolMessage("18", tool_call_id="call_7"),
    ]
    message = await fusion.bind_tools([WEATHER]).ainvoke(history)
    for member in pool:
        received = member.inputs[0]
        assert received == history
        assert received[1].tool_calls[0]["id"] == received[2].tool_call_id == "call_7"
    # after a tool result the members answer in text, and so does the fusion
    assert not message.tool_calls
    assert "18" in message.text


@pytest.mark.parametrize("mode", MODES)
async def test_streamed_tool_call_chunks_combine_into_valid_calls(stream_chunks, mode):
    fusion = FusionChatModel(
        pool=weather_pool(), judge=FakeJudge(prefer="kelvin"), mode=mode, debate_rounds=1
    )
    chunks, error = await stream_chunks(
        fusion.bind_tools([WEATHER], tool_choice="any"), "Weather in Paris?"
    )
    assert error is None
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert len(total.tool_calls) == 1
    assert total.tool_calls[0]["name"] == "get_weather"
    assert total.tool_calls[0]["args"]["city"] == "Paris"
    assert sum(1 for c in chunks if c.usage_metadata) == 1


@pytest.mark.parametrize("mode", ["merge", "debate"])
async def test_a_judge_that_does_not_stream_writes_the_call_of_a_streamed_fusion(
    stream_chunks, mode
):
    # Its stream is one whole AIMessage: its tool calls must come through as chunks.
    judge = FakeJudge(disable_streaming=True)
    fusion = FusionChatModel(pool=weather_pool(), judge=judge, mode=mode, debate_rounds=1)
    chunks, error = await stream_chunks(
        fusion.bind_tools([WEATHER], tool_choice="any"), "Weather in Paris?"
    )
    assert error is None
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"})
    ]
    fusion_report = total.response_metadata["fusion"]
    assert (fusion_report["judge"]["status"], fusion_report["judge_fallback"]) == ("ok", False)


# -- structured output ----------------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


class PersonDict(TypedDict):
    name: str
    age: int


PERSON_SCHEMA = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def person_pool() -> list[FakeChatModel]:
    return [
        FakeChatModel(model="a", responses=['{"name": "Ada Lovelace", "age": 36}']),
        FakeChatModel(model="b", responses=['{"name": "Ada Lovelace", "age": 37}']),
        FakeChatModel(model="c", responses=['{"name": "Ada Lovelace", "age": 36}']),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "schema", [Person, PersonDict, PERSON_SCHEMA], ids=["pydantic", "typeddict", "json"]
)
async def test_structured_output_in_every_mode(answer_invoke, mode, schema):
    fusion = FusionChatModel(pool=person_pool(), judge=FakeJudge(), mode=mode, debate_rounds=1)
    result = await answer_invoke(
        fusion.with_structured_output(schema), "Who wrote notes on the Analytical Engine?"
    )
    data = result.model_dump() if isinstance(result, BaseModel) else result
    assert data["name"] == "Ada Lovelace"
    if mode != "best_of":
        assert data["age"] == 36  # fused field by field: the majority value


async def test_structured_output_include_raw_keeps_the_report():
    fusion = FusionChatModel(pool=person_pool(), judge=FakeJudge(), mode="merge")
    result = await fusion.with_structured_output(Person, include_raw=True).ainvoke("Who?")
    assert isinstance(result["parsed"], Person)
    assert result["parsing_error"] is None
    assert report(result["raw"])["mode"] == "merge"
    assert result["raw"].usage_metadata["total_tokens"] > 0


# -- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [IMAGE, OPENAI_IMAGE], ids=["v1", "openai"])
async def test_text_only_members_sit_out_a_call_with_images(answer, block):
    vision = FakeChatModel(
        model="vision", responses=["A cat on a mat."], profile={"image_inputs": True}
    )
    blind = text_only("blind", "I cannot see.")
    judge = FakeJudge(profile={"image_inputs": True})
    fusion = FusionChatModel(pool=[vision, blind], judge=judge, mode="merge")
    prompt = [HumanMessage(content=[{"type": "text", "text": "What is this?"}, block])]
    message = await answer(fusion, prompt)
    assert statuses(message) == {"vision": "ok", "blind": "skipped"}
    assert report(message)["candidates"][1]["error"] == "does not accept image inputs"
    assert blind.calls == 0
    assert block in vision.inputs[0][0].content
    assert message.text == "A cat on a mat."  # the only answer is returned as written


async def test_the_judge_receives_the_images_when_it_accepts_them():
    pool = [
        FakeChatModel(model="a", responses=["A cat."]),
        FakeChatModel(model="b", responses=["A kitten."]),
    ]
    seeing, blind = FakeJudge(), FakeJudge(profile={"image_inputs": False})
    prompt = [HumanMessage(content=[{"type": "text", "text": "What is this?"}, IMAGE])]
    for judge in (seeing, blind):
        await FusionChatModel(pool=pool, judge=judge, mode="best_of").ainvoke(prompt)
    assert IMAGE in seeing.inputs[0][-1].content
    assert all(
        IMAGE not in (m.content if isinstance(m.content, list) else []) for m in blind.inputs[0]
    )
    assert "1 image(s) attached" in blind.inputs[0][-1].text


async def test_no_member_accepts_images_is_an_error_before_any_call():
    pool = [text_only("a", "x"), text_only("b", "y")]
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="merge")
    prompt = [HumanMessage(content=[{"type": "text", "text": "What is this?"}, IMAGE])]
    with pytest.raises(FusionInputError, match="does not accept image inputs"):
        await fusion.ainvoke(prompt)
    assert sum(m.calls for m in pool) == 0


async def test_capabilities_override_the_profile():
    pool = [text_only("a", "A cat."), text_only("b", "A dog.")]
    fusion = FusionChatModel(
        pool=pool, judge=FakeJudge(), mode="best_of", capabilities={"b": {"image_inputs": True}}
    )
    prompt = [HumanMessage(content=[{"type": "text", "text": "What is this?"}, IMAGE])]
    message = await fusion.ainvoke(prompt)
    assert statuses(message) == {"a": "skipped", "b": "ok"}


@pytest.mark.parametrize(
    ("capabilities", "match"),
    [
        ({"nobody": {"image_inputs": True}}, "not a pool member"),
        ({"a": {"flying": True}}, "unknown key"),
    ],
)
def test_capabilities_are_validated_at_construction(capabilities, match):
    with pytest.raises(ValidationError, match=match):
        FusionChatModel(
            pool=[FakeChatModel(model="a")], judge=FakeJudge(), capabilities=capabilities
        )


def test_profile_is_derived_from_the_pool():
    seeing = [
        FakeChatModel(model=n, profile={"image_inputs": True, "max_input_tokens": t})
        for n, t in (("a", 8000), ("b", 32000))
    ]
    blind = text_only("c", "x")
    fusion = FusionChatModel(pool=[*seeing, blind], judge=FakeJudge(), min_successful=2)
    assert fusion.profile is not None
    assert fusion.profile["image_inputs"] is True
    assert fusion.profile["tool_calling"] is True
    assert fusion.profile["max_input_tokens"] == 8000
    stricter = FusionChatModel(pool=[*seeing, blind], judge=FakeJudge(), min_successful=3)
    assert stricter.profile is not None and stricter.profile["image_inputs"] is False
    no_tools = FusionChatModel(pool=seeing, judge=FakeJudge(profile={"tool_calling": False}))
    assert no_tools.profile is not None and no_tools.profile["tool_calling"] is False
