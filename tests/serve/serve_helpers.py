"""Helpers of the serve tests: the app served by uvicorn in a thread, configs, clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from langchain_fusion.serve import create_app, parse_config
from langchain_fusion.serve._server import listening_socket
from langchain_fusion.sim import Simulator

SCENARIO_FILE = Path(__file__).with_name("scenarios") / "serve.yaml"
MEMBERS = ["serve/ada", "serve/bob", "serve/cy"]
KEY = "sk-serve-test-key"


def config_for(sim: Simulator, **server: Any) -> Any:
    """The tests' config: one fusion per mode, and fusions with a failing or hanging member."""
    common = {
        "base_url": sim.openrouter_base_url,
        "api_key_env": "SIM_KEY",
        "judge": "serve/judge",
        "seed": 3,
    }
    fusions: dict[str, Any] = {
        f"fusion/{mode}": {
            **common,
            "pool": MEMBERS,
            "mode": mode,
            "debate_rounds": 1,
            "max_cost_usd": 1.0,
            "overridable": ["mode", "debate_rounds"],
        }
        for mode in ("best_of", "merge", "debate", "vote")
    }
    fusions["fusion/failing"] = {**common, "pool": ["serve/down", "serve/down"], "mode": "merge"}
    fusions["fusion/straggler"] = {
        **common,
        "pool": ["serve/ada", "serve/down", "serve/bob", "serve/hang"],
        "mode": "debate",
        "debate_rounds": 1,
        "quorum": 2,
        "grace": 0.05,
    }
    fusions["fusion/hanging"] = {
        **common,
        "pool": ["serve/hang", "serve/hang"],
        "mode": "merge",
        "member_timeout": 0.3,
    }
    fusions["fusion/slow"] = {**common, "pool": ["serve/slow", "serve/ada"], "mode": "merge"}
    fusions["fusion/hang-forever"] = {**common, "pool": ["serve/hang", "serve/hang"]}
    return parse_config({"server": server, "fusions": fusions})


ENV = {"SIM_KEY": "sk-sim-upstream-secret"}


class Served:
    """An app served by uvicorn in a background thread on 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = listening_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    @property
    def state(self) -> Any:
        return self.app.state.fusion_server

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@contextmanager
def serve(sim: Simulator, api_keys: tuple[str, ...] = (), **server: Any) -> Iterator[Served]:
    """The tests' config served over `sim`."""
    app = create_app(config_for(sim, **server), api_keys=api_keys, env=ENV)
    with Served(app) as served:
        yield served


def post(served: Served, body: Any, key: str | None = None, **kwargs: Any) -> httpx.Response:
    """A raw chat-completions request."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        served.v1 + "/chat/completions", json=body, headers=headers, timeout=20, **kwargs
    )


def ask(model: str = "fusion/merge", text: str = "Review this migration plan.") -> dict[str, Any]:
    """A minimal request body."""
    return {"model": model, "messages": [{"role": "user", "content": text}]}
