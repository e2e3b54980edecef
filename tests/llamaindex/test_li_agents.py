"""LlamaIndex agents and RAG on FusionLLM: FunctionAgent calls a tool through the fusion
and answers from its result, ReActAgent runs, a VectorStoreIndex query engine answers with
the retrieved context reaching every member."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, ToolMessage
from li_fakes import FakeLLM, HashEmbedding, fake_judge_llm
from li_helpers import fake
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.tools import FunctionTool

from langchain_fusion.testing import FakeChatModel, FakeJudge
from llamaindex_fusion import FusionLLM

pytestmark = [
    pytest.mark.timeout(30),
    # LlamaIndex's workflows inspect agents with `inspect.getmembers` (pydantic warns)
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

QUESTION = "What is 6 times 7? Use the multiply tool."


class Multiply:
    """A `multiply` tool that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.tool = FunctionTool.from_defaults(fn=self.multiply)

    def multiply(self, a: int, b: int) -> int:
        """Multiply two integers."""
        self.calls.append((a, b))
        return a * b


def li_answer(messages: list[ChatMessage]) -> str:
    last = messages[-1]
    if last.role == MessageRole.TOOL:
        return f"The product is {last.content}."
    return ""


def lc_answer(messages: list[BaseMessage]) -> str:
    if isinstance(messages[-1], ToolMessage):
        return f"The product is {messages[-1].text}."
    return '{"a": 6, "b": 7}'


def tool_pool(kind: str) -> tuple[list[Any], Any]:
    call = {"name": "multiply", "args": {"a": 6, "b": 7}}
    li = [
        FakeLLM(model="a", respond=li_answer, tool_calls=[call]),
        FakeLLM(model="b", respond=li_answer, tool_calls=[call]),
    ]
    if kind == "llamaindex":
        return li, fake_judge_llm()
    return [li[0], FakeChatModel(model="c", respond=lc_answer)], FakeJudge()


@pytest.mark.parametrize("kind", ["llamaindex", "mixed"])
@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_calls_the_tool_and_answers_from_its_result(
    kind: str, mode: str, streaming: bool
) -> None:
    pool, judge = tool_pool(kind)
    multiply = Multiply()
    llm = FusionLLM(pool=pool, judge=judge, mode=mode, debate_rounds=1)
    agent = FunctionAgent(tools=[multiply.tool], llm=llm, streaming=streaming)

    result = await agent.run(user_msg=QUESTION)

    assert multiply.calls == [(6, 7)]
    assert "The product is 42." in str(result.response.content)
    # the tool's result reached every LlamaIndex member as a tool message
    for member in pool:
        if isinstance(member, FakeLLM):
            last = member.inputs[-1]
            assert last[-1].role == MessageRole.TOOL and last[-1].content == "42"


def react_answer(model: str) -> Any:
    def respond(messages: list[ChatMessage]) -> str:
        text = messages[-1].content or ""
        if "Observation:" in text:
            result = text.split("Observation:")[-1].strip()
            return f"Thought: I can answer without using any more tools.\nAnswer: It is {result}."
        args = json.dumps({"a": 6, "b": 7})
        return (
            f"Thought: I need the multiply tool ({model}).\nAction: multiply\nAction Input: {args}"
        )

    return respond


@pytest.mark.parametrize("streaming", [True, False])
async def test_react_agent_runs_through_the_fusion(streaming: bool) -> None:
    multiply = Multiply()
    pool = [
        FakeLLM(model="a", respond=react_answer("a"), function_calling=False),
        FakeChatModel(
            model="b",
            respond=lambda msgs: react_answer("b")(
                [ChatMessage(role="user", content=msgs[-1].text)]
            ),
        ),
    ]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="best_of")
    agent = ReActAgent(tools=[multiply.tool], llm=llm, streaming=streaming)

    result = await agent.run(user_msg=QUESTION)

    assert multiply.calls == [(6, 7)]
    assert str(result.response.content) == "It is 42."
    assert len(pool[0].inputs) == 2  # the tool step and the answer step, each fused


# -- RAG ------------------------------------------------------------------------------------

DOCS = [
    "Zubrowka is a small alpine republic. The capital of Zubrowka is Lutz.",
    "The Grand Budapest hotel employs a concierge named Gustave.",
    "Mendl's bakery is famous for its pastries called Courtesan au chocolat.",
]


def rag_answer(messages: list[ChatMessage]) -> str:
    text = "\n".join(m.content or "" for m in messages)
    return "The capital of Zubrowka is Lutz." if "Lutz" in text else "I do not know."


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_query_engine_answers_through_the_fusion(streaming: bool) -> None:
    pool = [
        FakeLLM(model="a", respond=rag_answer),
        FakeLLM(model="b", respond=rag_answer),
        FakeChatModel(
            model="c",
            respond=lambda msgs: rag_answer([ChatMessage(content=m.text) for m in msgs]),
        ),
    ]
    llm = FusionLLM(pool=pool, judge=fake_judge_llm(), mode="merge")
    index = VectorStoreIndex.from_documents(
        [Document(text=d) for d in DOCS], embed_model=HashEmbedding()
    )
    engine = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=streaming)

    if streaming:
        response = await engine.aquery("What is the capital of Zubrowka?")
        text = "".join([t async for t in response.async_response_gen()])
    else:
        response = await engine.aquery("What is the capital of Zubrowka?")
        text = str(response)

    assert text == "The capital of Zubrowka is Lutz."
    assert "Lutz" in response.source_nodes[0].node.get_content()
    for member in pool:
        inputs = member.inputs[0]
        seen = "\n".join(
            (m.content or "") if isinstance(m, ChatMessage) else m.text for m in inputs
        )
        assert "The capital of Zubrowka is Lutz." in seen  # the retrieved context
        assert "Gustave" not in seen  # and only it
    assert fake("unused").calls == 0
