"""A LangGraph ReAct agent whose chat model is a fusion: a two-tool task run to completion.

Turn 1: every member proposes tool calls; the fusion returns the calls the judge prefers
(best_of: one member's calls as proposed; merge/debate: the judge writes the calls from
the proposals). The agent runs both tools. Turn 2: the members answer from the tool
results and the fusion writes the final answer.

Offline by default: members and judge are `ChatOpenAI` clients of the local simulator
(127.0.0.1, scenario `examples/scenarios/showcase.yaml`). With `OPENROUTER_API_KEY` set,
they are OpenRouter models instead. The first line printed says which.

Run: `python examples/langchain_agent.py [--mode best_of|merge|debate|vote]`
Needs: `pip install "llm-fusion[sim]" langgraph langchain-openai`
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import BaseTool, tool

from langchain_fusion import FusionChatModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import provider

SCENARIO = Path(__file__).with_name("scenarios") / "showcase.yaml"
QUESTION = "What is the weather in Paris and the local time in Tokyo?"
OPENROUTER_POOL = ["openai/gpt-4o-mini", "google/gemini-2.0-flash-001", "mistralai/mistral-small"]
OPENROUTER_JUDGE = "openai/gpt-4o-mini"
SIM_POOL = ["sim/atlas", "sim/borealis", "sim/cirrus"]
SIM_JUDGE = "sim/judge"


def say(line: str) -> None:
    """Print one line in one write (the agent runs its tools in parallel threads)."""
    sys.stdout.write(line + "\n")


@tool
def get_weather(city: str, unit: str) -> str:
    """The current weather in a city; `unit` is "celsius" or "fahrenheit"."""
    say(f"  [tool] get_weather(city={city!r}, unit={unit!r})")
    degrees = 18 if unit == "celsius" else 64
    return f"sunny and {degrees} degrees {unit} in {city}"


@tool
def get_local_time(city: str) -> str:
    """The local time in a city."""
    say(f"  [tool] get_local_time(city={city!r})")
    return f"21:00 in {city}"


TOOLS: list[BaseTool] = [get_weather, get_local_time]


@contextmanager
def fusion(mode: str) -> Iterator[tuple[FusionChatModel, str]]:
    """The fusion and where its models run: OpenRouter with a key, else the simulator."""
    with provider(SCENARIO) as where:
        if where.openrouter:  # slugs, keyed by OPENROUTER_API_KEY
            model = FusionChatModel(pool=OPENROUTER_POOL, judge=OPENROUTER_JUDGE, mode=mode)
        else:
            pool = [where.chat_openai(m) for m in SIM_POOL]
            model = FusionChatModel(pool=pool, judge=where.chat_openai(SIM_JUDGE), mode=mode)
        yield model, where.description


def make_agent(model: Any, tools: list[BaseTool]) -> Any:
    """LangChain's `create_agent` when installed, else LangGraph's `create_react_agent`."""
    try:
        from langchain.agents import create_agent
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        with warnings.catch_warnings():  # deprecated in favour of langchain's create_agent
            warnings.simplefilter("ignore")
            return create_react_agent(model, tools)
    return create_agent(model, tools)


def dollars(cost: float | None) -> str:
    return "cost unknown" if cost is None else f"${cost:.6f}"


def describe(turn: int, message: AIMessage) -> str:
    report = message.response_metadata["fusion"]
    what = ", ".join(c["name"] for c in message.tool_calls) or "final answer"
    members = " ".join(f"{c['name']}={c['status']}" for c in report["candidates"])
    usage = message.usage_metadata or {}
    extra = f" winner={report['winner']}" if report.get("winner") else ""
    return (
        f"  turn {turn} ({report['mode']}): {what} | {members} | judge={report['judge']['status']}"
        f"{extra} | {usage.get('total_tokens', 0)} tokens, {dollars(report['cost_usd'])}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="merge", choices=["best_of", "merge", "debate", "vote"])
    mode = parser.parse_args(argv).mode
    with fusion(mode) as (model, where):
        print(where)
        agent = make_agent(model, TOOLS)
        print(f"Q: {QUESTION}")
        result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    messages = result["messages"]
    print(f"A: {messages[-1].text}")
    print("fusion reports, one per agent turn:")
    turns = [m for m in messages if isinstance(m, AIMessage)]
    for turn, message in enumerate(turns, 1):
        print(describe(turn, message))


if __name__ == "__main__":
    main()
