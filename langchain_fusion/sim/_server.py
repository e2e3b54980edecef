"""Running the simulator: uvicorn in a background thread, or in the foreground."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType

import uvicorn

from langchain_fusion.sim._app import create_app
from langchain_fusion.sim._reply import SimState
from langchain_fusion.sim._scenario import Scenario, load_scenario
from langchain_fusion.sim._stats import Stats

HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def bind_socket(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (`port=0` picks a free port).

    Made with an explicit `IPPROTO_TCP`, so that its accepted connections carry it too:
    asyncio sets `TCP_NODELAY` only on sockets whose `proto` says TCP, and without it every
    reply written in two parts (headers, body) stalls ~40 ms on Nagle and delayed ACKs.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def make_server(state: SimState, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for the simulator app (h11, asyncio, no access log by default)."""
    config = uvicorn.Config(
        create_app(state.scenario, state),
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        log_level=log_level,
        access_log=log_level in ("debug", "trace"),
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


class Simulator:
    """A simulator served by uvicorn in a background thread, on 127.0.0.1.

    Use `run_simulator()` (or `arun_simulator()`) rather than this class directly:

    ```python
    with run_simulator(scenario) as sim:
        model = ChatOpenAI(model="sim/atlas", base_url=sim.base_url + "/v1", api_key="sk-test")
        model.invoke("What is 17*23?")
        sim.stats().models["sim/atlas"].completion_tokens
    ```
    """

    def __init__(self, scenario: Scenario, port: int = 0, log_level: str = "warning") -> None:
        self.scenario = scenario
        """The scenario being served."""
        self._state = SimState(scenario)
        self._sock = bind_socket(port)
        self.port: int = self._sock.getsockname()[1]
        """The TCP port served (the one picked when 0 was asked)."""
        self._server = make_server(self._state, log_level)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`; clients add `/v1` (OpenAI) or `/api/v1` (OpenRouter)."""
        return f"http://{HOST}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """`base_url + "/v1"`, for `ChatOpenAI(base_url=...)`."""
        return self.base_url + "/v1"

    @property
    def openrouter_base_url(self) -> str:
        """`base_url + "/api/v1"`, for `ChatOpenRouter(base_url=...)`."""
        return self.base_url + "/api/v1"

    def stats(self) -> Stats:
        """What was served so far (the same data as `GET /stats`)."""
        return self._state.recorder.snapshot()

    def reset(self) -> None:
        """Zero the stats and the per-model request numbers that fault schedules use."""
        self._state.recorder.reset()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def start(self) -> Simulator:
        """Start serving; returns once the server accepts connections.

        Raises:
            RuntimeError: when the server did not start.
        """
        self._thread = threading.Thread(target=self._run, name="fusion-sim", daemon=True)
        self._thread.start()
        deadline = _START_TIMEOUT_S
        step = 0.005
        while not self._server.started:
            if not self._thread.is_alive() or deadline <= 0:
                self._sock.close()
                raise RuntimeError(f"the simulator did not start: {self._error!r}")
            self._thread.join(step)
            deadline -= step
        return self

    def stop(self) -> None:
        """Stop serving: replies in flight are cut, then the thread ends."""
        self._state.close_threadsafe()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(_STOP_TIMEOUT_S)
        self._sock.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def run_simulator(
    scenario: Scenario | str | Path | None = None, *, port: int = 0, log_level: str = "warning"
) -> Iterator[Simulator]:
    """Serve a scenario on 127.0.0.1 in a background thread for the duration of a block.

    Args:
        scenario: A `Scenario`, a YAML/JSON file, or `None` for the bundled default.
        port: TCP port; 0 picks a free one (read it from `sim.port` / `sim.base_url`).
        log_level: uvicorn's log level.

    Yields:
        The running `Simulator`: `sim.base_url`, `sim.stats()`, `sim.reset()`.
    """
    sim = Simulator(load_scenario(scenario), port=port, log_level=log_level)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@asynccontextmanager
async def arun_simulator(
    scenario: Scenario | str | Path | None = None, *, port: int = 0, log_level: str = "warning"
) -> AsyncIterator[Simulator]:
    """`run_simulator` for async code: starts and stops without blocking the event loop.

    The server still runs in its own thread, so sync and async clients both work.
    """
    sim = Simulator(load_scenario(scenario), port=port, log_level=log_level)
    await asyncio.to_thread(sim.start)
    try:
        yield sim
    finally:
        await asyncio.to_thread(sim.stop)


def serve(
    scenario: Scenario,
    port: int = 0,
    log_level: str = "info",
    announce: bool = True,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C), printing the URL once listening."""
    state = SimState(scenario)
    sock = bind_socket(port)
    server = make_server(state, log_level)
    if announce:
        names = ", ".join(m.name for m in scenario.models)
        print(
            f"llm-fusion simulator: http://{HOST}:{sock.getsockname()[1]} "
            f"(scenario {scenario.name!r}; models: {names})",
            flush=True,
        )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
