"""Each fusion mode on the offline demo pool (fake members, no network).

Run: `python examples/quickstart.py`
"""

from __future__ import annotations

import asyncio
import json

from langchain_fusion import FusionChatModel
from langchain_fusion.cli import DEMO_PROVIDER, demo_fusion

QUESTION = "Why is the sky blue?"


def show(title: str, fusion: FusionChatModel) -> None:
    message = fusion.invoke(QUESTION)
    report = message.response_metadata["fusion"]
    print(f"== {title}")
    print(message.text)
    print("   statuses:", {c["name"]: c["status"] for c in report["candidates"]})
    print("   usage:", message.usage_metadata)
    if report["mode"] == "best_of":
        print("   winner:", report["winner"], "-", report.get("rationale"))
    if report["mode"] == "merge":
        print("   comparison:", json.dumps(report["comparison"])[:200], "...")
    if report["mode"] == "debate":
        print("   rounds:", report["rounds"], "stopped early:", report["debate"]["stopped_early"])
        print(report["debate"]["mermaid"])


async def stream_merge() -> None:
    print("== merge, streamed")
    async for chunk in demo_fusion("merge").astream(QUESTION):
        print(chunk.text, end="", flush=True)
    print()


def main() -> None:
    print(f"provider: {DEMO_PROVIDER}")
    for mode in ("best_of", "merge", "debate"):
        show(mode, demo_fusion(mode))
    asyncio.run(stream_merge())


if __name__ == "__main__":
    main()
