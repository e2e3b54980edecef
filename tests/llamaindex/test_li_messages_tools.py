"""Message conversion both ways (text, images, tool calls, tool results), and tools through
FusionLLM: chat_with_tools, get_tool_calls_from_response, structured prediction."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from li_fakes import fake_judge_llm
from li_helpers import call, fake
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from langchain_fusion.testing import FakeChatModel, FakeJudge
from llamaindex_fusion import FusionLLM
from llamaindex_fusion._messages import (
    to_langchain_message,
    to_langchain_messages,
    to_llamaindex_message,
    usage_metadata,
)

pytestmark = pytest.mark.timeout(30)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


# -- conversion -----------------------------------------------------------------------------


def test_text_roles_and_tool_results_convert_to_langchain() -> None:
    history = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="6 times 7?"),
        ChatMessage(
            role="assistant",
            blocks=[
                TextBlock(text=""),
                ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 6}),
                ToolCallBlock(tool_call_id="c2", tool_name="add", tool_kwargs='{"a": 1, "b": 2}'),
            ],
        ),
        ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "c1"}),
    ]
    system, human, ai, tool = to_langchain_messages(history)
    assert isinstance(system, SystemMessage) and system.content == "Be brief."
    assert isinstance(human, HumanMessage) and human.content == "6 times 7?"
    assert isinstance(ai, AIMessage)
    assert [(c["id"], c["name"], c["args"]) for c in ai.tool_calls] == [
        ("c1", "multiply", {"a": 6}),
        ("c2", "add", {"a": 1, "b": 2}),
    ]
    assert isinstance(tool, ToolMessage) and (tool.content, tool.tool_call_id) == ("42", "c1")


def test_legacy_openai_tool_calls_in_additional_kwargs_are_read() -> None:
    message = ChatMessage(
        role="assistant",
        content="",
        additional_kwargs={
            "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
            ]
        },
    )
    converted = to_langchain_message(message)
    assert isinstance(converted, AIMessage)
    assert converted.tool_calls[0]["name"] == "f" and converted.tool_calls[0]["args"] == {"q": 1}


def test_images_convert_both_ways() -> None:
    by_url = ImageBlock(url="https://example.com/cat.png")
    inline = ImageBlock(image=PNG, image_mimetype="image/png")
    message = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"), by_url, inline])
    converted = to_langchain_message(message)
    assert converted.content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "url": "https://example.com/cat.png", "mime_type": "image/png"},
        {"type": "image", "base64": base64.b64encode(PNG).decode(), "mime_type": "image/png"},
    ]
    back = to_llamaindex_message(converted)
    images = [b for b in back.blocks if isinstance(b, ImageBlock)]
    assert str(images[0].url) == "https://example.com/cat.png"
    assert images[1].resolve_image().read() == PNG
    openai_style = HumanMessage(
        content=[
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
            }
        ]
    )
    (image,) = to_llamaindex_message(openai_style).blocks
    assert isinstance(image, ImageBlock) and image.resolve_image().read() == PNG


def test_langchain_answers_convert_to_llamaindex() -> None:
    ai = AIMessage(
        content="Calling.",
        tool_calls=[{"name": "f", "args": {"x": 1}, "id": "i1", "type": "tool_call"}],
    )
    message = to_llamaindex_message(ai)
    assert message.role == MessageRole.ASSISTANT and message.content == "Calling."
    (block,) = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    assert (block.tool_call_id, block.tool_name, block.tool_kwargs) == ("i1", "f", {"x": 1})
    tool = to_llamaindex_message(ToolMessage(content="ok", tool_call_id="i1"))
    assert tool.role == MessageRole.TOOL and tool.additional_kwargs["tool_call_id"] == "i1"


def test_provider_usage_becomes_usage_metadata() -> None:
    usage = usage_metadata(
        {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 2},
            "cost": 0.5,
        }
    )
    assert usage == {
        "input_tokens": 10,
        "output_tokens": 4,
        "total_tokens": 14,
        "input_token_details": {"cache_read": 3},
        "output_token_details": {"reasoning": 2},
    }
    assert usage_metadata({"input_tokens": 1, "output_tokens": 2}) == {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
    }


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_images_reach_llamaindex_and_langchain_members(method: str) -> None:
    li_member = fake("li", "A cat.")
    lc_member = FakeChatModel(model="lc", responses=["A small cat."])
    llm = FusionLLM(pool=[li_member, lc_member], judge=FakeJudge(), mode="best_of")
    message = ChatMessage(
        role="user",
        blocks=[TextBlock(text="What is this?"), ImageBlock(image=PNG, image_mimetype="image/png")],
    )
    answer = await call(llm, method, [message])
    assert answer.statuses() == {"li": "ok", "lc": "ok"}
    (seen,) = [b for b in li_member.inputs[0][-1].blocks if isinstance(b, ImageBlock)]
    assert seen.resolve_image().read() == PNG
    (lc_input,) = lc_member.inputs
    parts = lc_input[-1].content
    assert {
        "type": "image",
        "base64": base64.b64encode(PNG).decode(),
        "mime_type": "image/png",
    } in parts


async def test_a_member_known_not_to_take_images_sits_out() -> None:
    llm = FusionLLM(
        pool=[fake("li", "A cat."), FakeChatModel(model="lc", responses=["A cat too."])],
        judge=FakeJudge(),
        capabilities={"li": {"image_inputs": False}},
    )
    message = ChatMessage(
        role="user", blocks=[TextBlock(text="?"), ImageBlock(url="https://x/y.png")]
    )
    answer = await call(llm, "achat", [message])
    assert answer.statuses() == {"li": "skipped", "lc": "ok"}


# -- tools ----------------------------------------------------------------------------------


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOL = FunctionTool.from_defaults(fn=multiply)
CALL = {"name": "multiply", "args": {"a": 6, "b": 7}}


def tool_pool() -> list[Any]:
    return [
        fake("a", tool_calls=[CALL]),
        fake("b", tool_calls=[{"name": "multiply", "args": {"a": 6, "b": 8}}]),
        FakeChatModel(model="c", responses=['{"a": 6, "b": 7}']),
    ]


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
async def test_chat_with_tools_proposes_the_fused_call(mode: str) -> None:
    llm = FusionLLM(pool=tool_pool(), judge=fake_judge_llm(prefer='6, "b": 7'), mode=mode)
    user = ChatMessage(role="user", content="What is 6 times 7? Use multiply.")
    response = await llm.achat_with_tools([TOOL], chat_history=[user])
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 6, "b": 7})
    assert selection.tool_id
    stream = await llm.astream_chat_with_tools([TOOL], chat_history=[user], mode=mode)
    responses = [r async for r in stream]
    (streamed,) = llm.get_tool_calls_from_response(responses[-1])
    assert (streamed.tool_name, streamed.tool_kwargs) == ("multiply", {"a": 6, "b": 7})


def test_tool_calls_are_read_from_partial_json_while_streaming() -> None:
    llm = FusionLLM(pool=[fake("a")], judge=fake("j"))
    partial = ChatResponse(
        message=ChatMessage(
            role="assistant",
            blocks=[
                ToolCallBlock(tool_call_id="c", tool_name="multiply", tool_kwargs='{"a": 6, "b')
            ],
        )
    )
    (selection,) = llm.get_tool_calls_from_response(partial)
    assert selection.tool_kwargs == {"a": 6}
    empty = ChatResponse(message=ChatMessage(role="assistant", content="no call"))
    assert llm.get_tool_calls_from_response(empty, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(empty)


async def test_required_tool_calls_skip_members_that_cannot_call_tools() -> None:
    pool = [*tool_pool(), fake("text", "I only talk.", function_calling=False)]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="best_of")
    user = ChatMessage(role="user", content="Use multiply on 6 and 7.")
    response = llm.chat_with_tools([TOOL], chat_history=[user], tool_required=True)
    statuses = {c["name"]: c["status"] for c in response.additional_kwargs["fusion"]["candidates"]}
    assert statuses["text"] == "skipped"
    assert llm.get_tool_calls_from_response(response)[0].tool_name == "multiply"


async def test_only_the_first_call_is_kept_without_parallel_calls() -> None:
    two_calls = [CALL, {"name": "multiply", "args": {"a": 1, "b": 2}}]
    llm = FusionLLM(pool=[fake("a", tool_calls=two_calls)], judge=fake("j"))
    user = ChatMessage(role="user", content="multiply")
    single = llm.chat_with_tools([TOOL], chat_history=[user])
    assert len(llm.get_tool_calls_from_response(single)) == 1
    both = llm.chat_with_tools([TOOL], chat_history=[user], allow_parallel_tool_calls=True)
    assert len(llm.get_tool_calls_from_response(both)) == 2


async def test_tools_reach_llamaindex_members_as_llamaindex_tools() -> None:
    member = fake("a", tool_calls=[CALL])
    llm = FusionLLM(pool=[member], judge=fake("j"))
    await llm.achat_with_tools([TOOL], user_msg="multiply 6 and 7")
    (spec,) = member._kwargs[0]["tools"]
    assert spec["function"]["name"] == "multiply"
    assert set(spec["function"]["parameters"]["properties"]) == {"a", "b"}


PERSON = {"name": "Ada Lovelace", "age": 36}


class Person(BaseModel):
    """A person."""

    name: str
    age: int


async def test_structured_predict_goes_through_the_fusion() -> None:
    from llama_index.core.prompts import PromptTemplate

    answer = json.dumps(PERSON)
    pool = [
        fake("a", answer, propose=_json_call),
        FakeChatModel(model="b", responses=[answer]),
    ]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="best_of")
    person = await llm.astructured_predict(Person, PromptTemplate("Give me a person: {q}"), q="Ada")
    assert person == Person(name="Ada Lovelace", age=36)


def _json_call(
    messages: list[ChatMessage], tools: list[dict[str, Any]], choice: Any
) -> list[ToolCallBlock]:
    name = tools[0]["function"]["name"]
    return [ToolCallBlock(tool_call_id="p", tool_name=name, tool_kwargs=PERSON)]
