"""Each of the four fusion modes over OpenRouter slugs, offline on the bundled simulator.

The pool and judge are OpenRouter slugs. With `OPENROUTER_API_KEY` set they go to
OpenRouter (real slugs such as "anthropic/claude-3.7-sonnet"); otherwise `base_url` points
simulated slugs at the local simulator (real HTTP on 127.0.0.1, the bundled demo scenario).
The first line printed says which.

Run: `python examples/quickstart.py`
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from langchain_fusion import FusionChatModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import Provider, provider

QUESTION = "Why is the sky blue?"
SIM_POOL = ["sim/atlas", "sim/borealis", "sim/cirrus"]
SIM_JUDGE = "sim/judge"
OPENROUTER_POOL = ["anthropic/claude-3.7-sonnet", "google/gemini-2.0-flash-001", "openai/gpt-4o"]
OPENROUTER_JUDGE = "openai/gpt-4o"


def fusion_on(where: Provider, mode: str) -> FusionChatModel:
    if where.openrouter:
        pool, judge = OPENROUTER_POOL, OPENROUTER_JUDGE
    else:
        pool, judge = SIM_POOL, SIM_JUDGE
    return FusionChatModel(pool=pool, judge=judge, mode=mode, **where.slug_settings())


def show(title: str, fusion: FusionChatModel) -> None:
    message = fusion.invoke(QUESTION)
    report = message.response_metadata["fusion"]
    print(f"== {title}")
    print(message.text)
    print("   statuses:", {c["name"]: c["status"] for c in report["candidates"]})
    print("   usage:", message.usage_metadata)
    print("   cost (USD, as the provider billed it):", report["cost_usd"])
    if report["mode"] == "best_of":
        print("   winner:", report["winner"], "-", report.get("rationale"))
    if report["mode"] == "merge":
        print("   comparison:", json.dumps(report["comparison"])[:200], "...")
    if report["mode"] == "debate":
        print("   rounds:", report["rounds"], "stopped early:", report["debate"]["stopped_early"])
        print(report["debate"]["mermaid"])


async def stream_merge(where: Provider) -> None:
    print("== merge, streamed")
    async for chunk in fusion_on(where, "merge").astream(QUESTION):
        print(chunk.text, end="", flush=True)
    print()


def main() -> None:
    with provider() as where:
        print(where.description)
        for mode in ("best_of", "merge", "debate", "vote"):
            show(mode, fusion_on(where, mode))
        asyncio.run(stream_merge(where))


if __name__ == "__main__":
    main()
