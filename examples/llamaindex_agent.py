"""A LlamaIndex FunctionAgent whose LLM is a fusion: the members propose tool calls, the
judge chooses, the agent runs the tool, and the fusion answers from its result.

Offline by default: the members and the judge are `OpenAILike` clients of the local
provider simulator (127.0.0.1, no network); its models call a tool that the question names.
With `OPENROUTER_API_KEY` set, they are OpenRouter slugs instead (`"openai/gpt-4o-mini"`),
which `FusionLLM` sends to OpenRouter with that key.

Run: `python examples/llamaindex_agent.py [--mode best_of|merge|debate]`
Needs: `pip install "llm-fusion[llamaindex,sim]" llama-index-llms-openai-like`.

On the simulator use `best_of` (the default): its judge calls every tool its prompt names,
so it cannot write an agent's final answer in merge or debate mode. Real judges can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.core.tools import FunctionTool
from pydantic import Field

from llamaindex_fusion import FusionLLM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import provider

QUESTION = "Use multiply to compute 17 times 23."
OPENROUTER_POOL = ["openai/gpt-4o-mini", "google/gemini-2.0-flash-001", "mistralai/mistral-small"]
OPENROUTER_JUDGE = "openai/gpt-4o-mini"
SIM_POOL = ["sim/atlas", "sim/borealis", "sim/cirrus"]
SIM_JUDGE = "sim/judge"


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    print(f"  [tool] multiply({a}, {b})")
    return a * b


class FusionReports(BaseEventHandler):
    """Keeps the fusion report of every FusionLLM call (from LlamaIndex instrumentation)."""

    reports: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "FusionReports"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, LLMChatEndEvent) and event.response is not None:
            report = event.response.additional_kwargs.get("fusion")
            if report is not None:
                self.reports.append(report)


@contextmanager
def models() -> Iterator[tuple[list[Any], Any, str]]:
    """The pool and judge: OpenRouter slugs with a key, else the local simulator."""
    with provider() as where:
        if where.openrouter:  # slugs: FusionLLM reads OPENROUTER_API_KEY
            yield list(OPENROUTER_POOL), OPENROUTER_JUDGE, where.description
            return
        pool = [where.openai_like(m) for m in SIM_POOL]
        yield pool, where.openai_like(SIM_JUDGE), where.description


def summary(report: dict[str, Any]) -> str:
    lines = [f"mode: {report['mode']}  winner: {report['winner']}  rounds: {report['rounds']}"]
    for c in report["candidates"]:
        lines.append(
            f"  {c['name']:<28} {c['status']:<9} {c['latency_s']:.2f}s  "
            f"{c['usage'].get('total_tokens', 0)} tokens  cost {c['cost_usd']}"
        )
    lines.append(f"  judge: {report['judge']['status']}  usage: {json.dumps(report['usage'])}")
    return "\n".join(lines)


async def run(mode: str) -> None:
    reports = FusionReports()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(reports)
    try:
        with models() as (pool, judge, where):
            print(where)
            llm = FusionLLM(pool=pool, judge=judge, mode=mode)
            agent = FunctionAgent(
                tools=[FunctionTool.from_defaults(fn=multiply)],
                llm=llm,
                system_prompt="Use the tools to compute; then answer with the result.",
            )
            print(f"Q: {QUESTION}")
            result = await agent.run(user_msg=QUESTION)
    finally:
        dispatcher.event_handlers.remove(reports)
    print(f"A: {result.response.content}\n")
    for turn, report in enumerate(reports.reports, 1):
        print(f"fusion report, agent turn {turn}\n{summary(report)}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="best_of", choices=["best_of", "merge", "debate", "vote"])
    asyncio.run(run(parser.parse_args(argv).mode))


if __name__ == "__main__":
    main()
