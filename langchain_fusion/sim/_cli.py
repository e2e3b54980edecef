"""`python -m langchain_fusion.sim`: serve a scenario from the command line."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from langchain_fusion.sim._scenario import Scenario, default_scenario_text, load_scenario


def build_parser(prog: str = "python -m langchain_fusion.sim") -> argparse.ArgumentParser:
    """The simulator's argument parser (reusable by a `fusion sim` subcommand)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve simulated OpenAI/OpenRouter-compatible chat models on 127.0.0.1 "
            "(POST /v1/chat/completions, POST /api/v1/chat/completions, GET /v1/models, "
            "GET /stats)."
        ),
    )
    parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="scenario file (YAML or JSON); default: the bundled demo scenario",
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="TCP port (0 picks a free one); default 8765"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn log level (info and below also log each request); default warning",
    )
    parser.add_argument(
        "--print-default",
        action="store_true",
        help="print the bundled default scenario (YAML) and exit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until interrupted.

    Args:
        argv: Command-line arguments (without the program name); `sys.argv[1:]` by default.

    Returns:
        The exit status: 0 on a clean stop, 2 on a bad scenario.
    """
    args = build_parser().parse_args(argv)
    if args.print_default:
        sys.stdout.write(default_scenario_text())
        return 0
    try:
        scenario: Scenario = load_scenario(args.scenario)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"error: cannot load scenario {args.scenario!r}: {exc}", file=sys.stderr)
        return 2
    from langchain_fusion.sim._server import serve

    with contextlib.suppress(KeyboardInterrupt):
        serve(scenario, port=args.port, log_level=args.log_level)
    return 0
