"""`fusion serve`: the configured fusions behind an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import logging
import sys


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` to the command's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="serve fusions as virtual models behind an OpenAI-compatible API",
        description=(
            "Serve the fusions of a config file (YAML/JSON, key 'fusions') as virtual models "
            "behind an OpenAI-compatible API: /v1/models, /v1/chat/completions, /fusions, "
            "/metrics. Without --config, one fusion per mode over the bundled simulator."
        ),
    )
    serve.add_argument("--config", metavar="FILE", help="the fusions config (YAML or JSON)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a key clients must send as 'Authorization: Bearer KEY' (repeatable); also "
        "read from FUSION_API_KEYS (comma-separated) and --api-key-file",
    )
    serve.add_argument("--api-key-file", metavar="FILE", help="server API keys, one per line")
    serve.add_argument("--log-level", default="info", help="log level (default info)")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until interrupted; 2 on a bad config or an unsafe bind."""
    from langchain_fusion.serve import ConfigError, check_bind, create_app, load_config
    from langchain_fusion.serve._app import DEMO_MODES
    from langchain_fusion.serve._security import read_key_file
    from langchain_fusion.serve._server import listening_socket, run_server

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        config = load_config(args.config) if args.config else None
        keys = list(args.api_key)
        if args.api_key_file:
            keys += read_key_file(args.api_key_file)
        app = create_app(config, api_keys=keys)
        server = app.state.fusion_server
        check_bind(args.host, server.keys)
        sock = listening_socket(args.host, args.port)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    models = ", ".join(server.fusions) or ", ".join(
        f"fusion/{m.replace('_', '-')}" for m in DEMO_MODES
    )
    auth = "API key required" if server.keys else "no API key: loopback only"
    print(f"fusion serve: http://{host}:{port}/v1 ({auth}); models: {models}", flush=True)
    if config is None:
        print(
            "no --config: the demo fusions run over the bundled simulator, started in-process "
            "(simulated models, no network)",
            flush=True,
        )
    run_server(app, sock, shutdown_grace=server.limits.shutdown_grace, log_level=args.log_level)
    return 0
