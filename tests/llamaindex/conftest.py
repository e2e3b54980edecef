"""Fixtures of the LlamaIndex tests: the calling methods, instrumentation recorders, and a
simulator with OpenAILike (LlamaIndex) and ChatOpenAI (LangChain) clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from li_clients import openai_like_client
from li_helpers import METHODS, SCENARIO, EventRecorder, Instrumentation
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler

from langchain_fusion.sim import Scenario, Simulator, run_simulator


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def instrumentation() -> Iterator[Instrumentation]:
    """A span handler and an event handler on the root dispatcher, for one test."""
    root = get_dispatcher()
    spans = SimpleSpanHandler()
    events = EventRecorder()
    root.add_span_handler(spans)
    root.add_event_handler(events)
    try:
        yield Instrumentation(spans, events)
    finally:
        root.span_handlers.remove(spans)
        root.event_handlers.remove(events)


# -- the simulator --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[Simulator]:
    with run_simulator(Scenario.model_validate(SCENARIO)) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: Simulator) -> Simulator:
    """The session's simulator with zeroed stats."""
    shared_sim.reset()
    return shared_sim


_CLIENTS: dict[tuple[str, str], Any] = {}


@pytest.fixture
def openai_like(shared_sim: Simulator) -> Callable[[str], Any]:
    """`openai_like(model)`: a LlamaIndex `OpenAILike` client of the simulator, no retries.

    Clients are shared by the session (each builds its own HTTP clients, ~0.1 s).
    """

    def make(model: str) -> Any:
        key = ("li", model)
        if key not in _CLIENTS:
            _CLIENTS[key] = openai_like_client(shared_sim.openai_base_url, model, "sk-test-li")
        return _CLIENTS[key]

    return make


@pytest.fixture
def chat_openai(shared_sim: Simulator) -> Callable[[str], Any]:
    """`chat_openai(model)`: a LangChain `ChatOpenAI` client of the simulator, no retries."""
    from langchain_openai import ChatOpenAI

    def make(model: str) -> Any:
        key = ("lc", model)
        if key not in _CLIENTS:
            _CLIENTS[key] = ChatOpenAI(
                model=model,
                base_url=shared_sim.openai_base_url,
                api_key="sk-test-lc",
                max_retries=0,
                timeout=10,
            )
        return _CLIENTS[key]

    return make
