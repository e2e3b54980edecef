"""The `fusion` command (also `python -m langchain_fusion`): fuse answers from the shell.

```
fusion ask "What is 17*23?" --mode debate
fusion ask "Review this plan" --pool anthropic/claude-3.7-sonnet,openai/gpt-4o --json
fusion batch questions.jsonl -o answers.jsonl --concurrency 16
fusion sim --scenario my_scenario.yaml --port 8765
fusion serve --config fusions.yaml --port 8000
```

`fusion ask` prints where the answers come from on its first line, then the fused answer and
a compact report: each member's status, latency, tokens and cost, the judge's verdict, and
the totals (`--json`: the whole report). With `OPENROUTER_API_KEY` set, the pool and judge
are OpenRouter slugs; without it, the command starts the local simulator with its bundled
demo scenario and uses the simulated models, so it works offline on a fresh machine. On a
terminal, each member's progress is shown live on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from langchain_fusion.cli._ask import ask, format_report
from langchain_fusion.cli._batch import add_batch_parser
from langchain_fusion.cli._provider import MODES, scenario_roles
from langchain_fusion.cli._serve import add_parser as add_serve_parser

__all__ = ["MODES", "build_parser", "format_report", "main", "scenario_roles"]


def _sim(args: argparse.Namespace) -> int:
    from langchain_fusion.sim import main as sim_main

    return sim_main(list(args.sim_args))


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="fusion",
        description="Fuse the answers of many LLMs: a pool answers, a judge fuses.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ask_parser = commands.add_parser(
        "ask",
        help="ask one question and print the fused answer and a report",
        description=(
            "Ask a pool of models one question and print the fused answer and a report. "
            "With OPENROUTER_API_KEY set the slugs go to OpenRouter (OPENROUTER_API_BASE "
            "overrides the URL); without it, the bundled simulator answers offline."
        ),
    )
    ask_parser.add_argument("prompt")
    ask_parser.add_argument(
        "--mode",
        choices=[*MODES, *(m.replace("_", "-") for m in MODES if "_" in m)],
        default="merge",
        help="fusion mode (default: merge)",
    )
    ask_parser.add_argument(
        "--pool", metavar="SLUG,SLUG", help="comma-separated model slugs (default: by provider)"
    )
    ask_parser.add_argument(
        "--judge", metavar="SLUG", help="the judge's slug (default: by provider)"
    )
    ask_parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="use the simulator with this scenario (YAML/JSON) even if a key is set",
    )
    ask_parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ask_parser.add_argument("--quiet", action="store_true", help="no live progress on the terminal")
    ask_parser.add_argument(
        "--html", metavar="FILE", help="also write the report as a self-contained HTML page"
    )
    ask_parser.set_defaults(handler=ask)
    add_serve_parser(commands)
    add_batch_parser(commands, [*MODES, *(m.replace("_", "-") for m in MODES if "_" in m)])
    sim = commands.add_parser(
        "sim",
        help="run the provider simulator (see `fusion sim --help`)",
        add_help=False,
        description="Run the OpenAI/OpenRouter-compatible simulator on 127.0.0.1.",
    )
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(handler=_sim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fusion` command.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` by default.

    Returns:
        The exit status: 0 on success, 1 when the fusion failed, 2 on a usage error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:  # every argument, `--help` included, goes to the simulator
        return _sim(argparse.Namespace(sim_args=argv[1:]))
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
