"""The `fusion` command: ask a question to a fusion from the shell.

```
fusion ask "Why is the sky blue?" --mode merge
fusion ask "Why is the sky blue?" --mode debate --json
```

It says which provider answered. Until real providers are wired in, it uses the offline
demo pool: in-process fake members from `langchain_fusion.testing`, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from langchain_fusion._core.config import MODES
from langchain_fusion.chat_models import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

DEMO_PROVIDER = "offline demo pool (in-process fake members, no network)"


def demo_fusion(mode: str) -> FusionChatModel:
    """A fusion over three fake members with distinct answers and a fake judge."""
    pool = {
        "careful": FakeChatModel(
            model="demo-careful",
            responses=["Sunlight scatters off air molecules. Blue light scatters most."],
            latency=0.3,
        ),
        "physicist": FakeChatModel(
            model="demo-physicist",
            responses=[
                "Sunlight scatters off air molecules. Rayleigh scattering grows as "
                "the inverse fourth power of wavelength."
            ],
            latency=0.5,
        ),
        "poet": FakeChatModel(
            model="demo-poet",
            responses=[
                "Blue light scatters most. Our eyes are more sensitive to blue than to violet."
            ],
            latency=0.2,
        ),
    }
    return FusionChatModel(pool=pool, judge=FakeJudge(model="demo-judge", latency=0.1), mode=mode)


def _ask(args: argparse.Namespace) -> int:
    fusion = demo_fusion(args.mode)
    print(f"provider: {DEMO_PROVIDER}", file=sys.stderr)
    message = fusion.invoke(args.prompt)
    report = message.response_metadata["fusion"]
    if args.json:
        print(
            json.dumps(
                {"answer": message.text, "usage": message.usage_metadata, "fusion": report},
                indent=2,
            )
        )
        return 0
    print(message.text)
    print(file=sys.stderr)
    for candidate in report["candidates"]:
        print(
            f"  {candidate['name']:<10} {candidate['status']:<9} "
            f"{candidate['latency_s']:.2f}s  {candidate['usage']['total_tokens']} tokens",
            file=sys.stderr,
        )
    total_tokens = message.usage_metadata["total_tokens"] if message.usage_metadata else 0
    print(
        f"  mode {report['mode']}, winner {report['winner']}, rounds {report['rounds']}, "
        f"total {report['timings']['total_s']:.2f}s, {total_tokens} tokens",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="fusion", description="Fuse the answers of many LLMs.")
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="ask one question and print the fused answer")
    ask.add_argument("prompt")
    ask.add_argument(
        "--mode", choices=[m.replace("_", "-") for m in MODES] + list(MODES), default="merge"
    )
    ask.add_argument("--json", action="store_true", help="print answer and report as JSON")
    ask.set_defaults(handler=_ask)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fusion` command."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
