"""`ChatOpenAI(base_url=...)` against `fusion serve`, and a LangGraph agent through it."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from serve_helpers import Served

from langchain_fusion.sim import Simulator

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:create_react_agent has been moved"),
]


def chat(server: Served, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=server.v1,
        api_key="unused",
        max_retries=0,
        timeout=20,
        stream_usage=True,
    )


def served_usage(sim: Simulator) -> tuple[int, int]:
    stats = sim.stats().totals
    return stats.prompt_tokens, stats.completion_tokens


def test_invoke_and_usage(server: Served, sim: Simulator):
    message = chat(server, "fusion/debate").invoke("Review this migration plan.")
    assert "rollback" in message.text
    usage = message.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"]) == served_usage(sim)


async def test_astream_and_usage(server: Served, sim: Simulator):
    chunks = [c async for c in chat(server, "fusion/merge").astream("Review this migration plan.")]
    assert len([c for c in chunks if c.text]) > 1
    usage = sum(chunks[1:], chunks[0]).usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"]) == served_usage(sim)


def make_agent(model: Any, tools: list[Any]) -> Any:
    try:
        from langchain.agents import create_agent
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model, tools)
    return create_agent(model, tools)


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_langgraph_agent_through_the_server(server: Served, sim: Simulator, entry: str):
    calls: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"sunny and 18 degrees celsius in {city}"

    agent = make_agent(chat(server, "fusion/best_of"), [get_weather])
    state = {"messages": [HumanMessage("What is the weather in Paris?")]}
    result = agent.invoke(state) if entry == "invoke" else await agent.ainvoke(state)
    messages = result["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert calls == ["Paris"]
    assert messages[-1].text and not messages[-1].tool_calls
    fused = [m for m in messages if isinstance(m, AIMessage)]
    input_tokens = sum(m.usage_metadata["input_tokens"] for m in fused)
    output_tokens = sum(m.usage_metadata["output_tokens"] for m in fused)
    assert (input_tokens, output_tokens) == served_usage(sim)
