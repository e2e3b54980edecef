"""A LangGraph ReAct agent runs a two-tool task to completion through a fusion, every mode.

Turn 1: the members propose both tool calls (bob with the wrong unit); the fusion returns
the calls the judge prefers (Celsius). The agent runs both tools. Turn 2: every member sees
the tool results and answers from them; the fusion answers and the agent stops.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents_helpers import MEMBERS, MODES, assert_usage_is_what_was_billed, fusion, report
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from langchain_fusion.sim import Simulator

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:create_react_agent has been moved"),
]

TASK = "What is the weather in Paris and the local time in Tokyo?"
WEATHER = "sunny and 18 degrees celsius in Paris"
TIME = "21:00 in Tokyo"
# What every simulated model answers once the last message is a tool result.
FINAL = f"The tool returned: {WEATHER}; {TIME}"


def make_tools(log: list[tuple[str, dict[str, Any]]]) -> list[BaseTool]:
    @tool
    def get_weather(city: str, unit: str) -> str:
        """The current weather in a city, in `celsius` or `fahrenheit`."""
        log.append(("get_weather", {"city": city, "unit": unit}))
        return f"sunny and 18 degrees {unit} in {city}"

    @tool
    def get_local_time(city: str) -> str:
        """The local time in a city."""
        log.append(("get_local_time", {"city": city}))
        return f"21:00 in {city}"

    return [get_weather, get_local_time]


def make_agent(model: Any, tools: list[BaseTool]) -> Any:
    """LangChain's `create_agent` when installed, else LangGraph's `create_react_agent`."""
    try:
        from langchain.agents import create_agent
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model, tools)
    return create_agent(model, tools)


async def run(agent: Any, entry: str) -> list[Any]:
    state = {"messages": [HumanMessage(TASK)]}
    if entry == "invoke":
        result = await asyncio.to_thread(agent.invoke, state)
    else:
        result = await agent.ainvoke(state)
    return list(result["messages"])


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
@pytest.mark.parametrize("mode", MODES)
async def test_react_agent_completes_a_two_tool_task(sim: Simulator, mode: str, entry: str):
    log: list[tuple[str, dict[str, Any]]] = []
    agent = make_agent(fusion(sim, mode, debate_rounds=1), make_tools(log))

    messages = await run(agent, entry)

    assert [type(m) for m in messages] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
    ]
    calls, first_result, second_result, answer = messages[1:]
    # Each tool ran once (in parallel), with the preferred proposals' arguments (not bob's
    # unit).
    assert sorted(log, key=lambda call: call[0]) == [
        ("get_local_time", {"city": "Tokyo"}),
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
    ]
    assert [c["name"] for c in calls.tool_calls] == ["get_weather", "get_local_time"]
    assert [c["id"] for c in calls.tool_calls] == [
        first_result.tool_call_id,
        second_result.tool_call_id,
    ]
    assert (first_result.text, second_result.text) == (WEATHER, TIME)
    # Every simulated model answers so only after a tool result: in merge and debate, where
    # the judge fuses all three answers, any member that missed the results would show.
    assert answer.text == FINAL
    assert not answer.tool_calls

    # Both agent turns were fusions of the whole pool in `mode`.
    for turn in (calls, answer):
        fused = report(turn)
        assert fused["mode"] == mode
        assert {c["name"]: c["status"] for c in fused["candidates"]} == dict.fromkeys(MEMBERS, "ok")
    if mode == "best_of":
        assert report(calls)["winner"] in ("agents/ada", "agents/cy")  # the Celsius ones
    if mode == "vote":  # ada and cy propose the same calls: a majority, no judge needed
        assert report(calls)["winner"] == "agents/ada"
        assert report(calls)["judge_skipped"] == "majority"

    stats = sim.stats().models
    # Every member answered both turns (debate: plus one revision round, in turn 1 only, as
    # the members agree on the final answer).
    member_requests = 3 if mode == "debate" else 2
    assert {name: stats[name].requests for name in MEMBERS} == dict.fromkeys(
        MEMBERS, member_requests
    )
    # In merge and debate the judge itself wrote turn 1's two calls.
    assert stats["agents/judge"].tool_calls == (2 if mode in ("merge", "debate") else 0)
    assert_usage_is_what_was_billed([calls, answer], sim)


async def test_agent_message_stream_shows_only_the_fused_answer(sim: Simulator):
    """`stream_mode="messages"` streams the fusion's tokens, never a member's or the judge's."""
    log: list[tuple[str, dict[str, Any]]] = []
    agent = make_agent(fusion(sim, "merge"), make_tools(log))
    chunks = []
    async for message, _meta in agent.astream(
        {"messages": [HumanMessage(TASK)]}, stream_mode="messages"
    ):
        if isinstance(message, AIMessageChunk):
            chunks.append(message)
    assert len(log) == 2
    text = "".join(c.text for c in chunks)
    assert text == FINAL
    assert all(
        c.response_metadata.get("fusion") is None or c.chunk_position == "last" for c in chunks
    )
