"""Each fusion mode over OpenRouter slugs, answered offline by the bundled simulator.

The pool and judge are OpenRouter slugs; `base_url` points them at the local simulator
(real HTTP on 127.0.0.1, the simulated models of the bundled demo scenario). With a real
key, drop `base_url` and use real slugs such as "anthropic/claude-3.7-sonnet".

Run: `python examples/quickstart.py`
"""

from __future__ import annotations

import asyncio
import json

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator, run_simulator

QUESTION = "Why is the sky blue?"
POOL = ["sim/atlas", "sim/borealis", "sim/cirrus"]
JUDGE = "sim/judge"


def fusion_on(sim: Simulator, mode: str) -> FusionChatModel:
    return FusionChatModel(
        pool=POOL, judge=JUDGE, mode=mode, api_key="sk-local", base_url=sim.openrouter_base_url
    )


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


async def stream_merge(sim: Simulator) -> None:
    print("== merge, streamed")
    async for chunk in fusion_on(sim, "merge").astream(QUESTION):
        print(chunk.text, end="", flush=True)
    print()


def main() -> None:
    with run_simulator() as sim:
        print(f"provider: local simulator at {sim.base_url} (bundled demo scenario)")
        for mode in ("best_of", "merge", "debate"):
            show(mode, fusion_on(sim, mode))
        asyncio.run(stream_merge(sim))


if __name__ == "__main__":
    main()
