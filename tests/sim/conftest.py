from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_fusion.sim import Scenario, Simulator, run_simulator

SCENARIO: dict[str, Any] = {
    "name": "tests",
    "seed": 1,
    "keepalive_interval": 0.05,
    "bank": [
        {"question": "What is 17*23?", "answer": "391", "wrong": ["381", "401"]},
    ],
    "models": [
        {
            "name": "t/plain",
            "provider": "Plain",
            "template": "The answer is {answer}.",
            "prompt_price": 0.000001,
            "completion_price": 0.000002,
            "image_tokens": 10,
            "system_fingerprint": "fp_plain",
            "answers": [
                {"match": "hello", "answer": "Hello there, how can I help?"},
                {
                    "match": "weather",
                    "answer": "Let me look that up.",
                    "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
                },
                {
                    "match": "give me a person",
                    "answer": "Ada Lovelace, 36",
                    "structured": {"name": "Ada Lovelace", "age": 36},
                },
            ],
            "default_answer": "I have nothing scripted for that.",
        },
        {"name": "t/wrong", "accuracy": 0.0, "template": "It is {answer}."},
        {"name": "t/other", "template": "{answer}, clearly."},
        {"name": "t/judge", "judge": {"rule": "oracle", "accuracy": 1.0}},
        {"name": "t/prose-judge", "off_protocol": "prose", "judge": {"rule": "oracle"}},
        {"name": "t/keys-judge", "off_protocol": "wrong_keys", "judge": {"rule": "oracle"}},
        {"name": "t/empty-judge", "off_protocol": "empty", "judge": {"rule": "oracle"}},
        {"name": "t/slow", "ttft": 0.25, "tokens_per_second": 40},
        {
            "name": "t/429",
            "faults": [{"kind": "rate_limit", "requests": [1], "retry_after": 2}],
        },
        {"name": "t/500", "faults": [{"kind": "server_error", "status": 500, "requests": [1]}]},
        {"name": "t/502", "faults": [{"kind": "server_error", "status": 502, "requests": [1]}]},
        {"name": "t/503", "faults": [{"kind": "server_error", "status": 503, "requests": [1]}]},
        {"name": "t/hang", "faults": [{"kind": "hang", "requests": [1]}]},
        {"name": "t/malformed", "faults": [{"kind": "malformed_json", "requests": [1]}]},
        {"name": "t/broken", "faults": [{"kind": "broken_stream", "requests": [1]}]},
        {"name": "t/stall", "faults": [{"kind": "hang", "requests": [1], "after_tokens": 2}]},
        {
            "name": "t/errchunk",
            "faults": [{"kind": "error_chunk", "requests": [1], "after_tokens": 2}],
        },
    ],
}

LONG = "one two three four five six seven eight nine ten"


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return Scenario.model_validate(SCENARIO)


@pytest.fixture(scope="session")
def shared_sim(scenario: Scenario) -> Iterator[Simulator]:
    with run_simulator(scenario) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: Simulator) -> Simulator:
    """The session's simulator with zeroed stats and request numbers."""
    shared_sim.reset()
    return shared_sim


def _openai_model(sim: Simulator, model: str, **kwargs: Any) -> Any:
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    return ChatOpenAI(model=model, base_url=sim.openai_base_url, api_key="sk-test", **kwargs)


_SDK_CLIENTS: dict[tuple[str, int], Any] = {}


def _openrouter_model(sim: Simulator, model: str, timeout_ms: int = 10_000, **kwargs: Any) -> Any:
    """A ChatOpenRouter whose SDK client never retries (its default retry loop can run for an
    hour, see docs/architecture.md)."""
    import openrouter
    from langchain_openrouter import ChatOpenRouter
    from openrouter.utils import BackoffStrategy, RetryConfig

    key = (sim.openrouter_base_url, timeout_ms)
    client = _SDK_CLIENTS.get(key)
    if client is None:  # building one costs ~0.1 s (two httpx clients): share them
        client = openrouter.OpenRouter(
            api_key="sk-test",
            server_url=sim.openrouter_base_url,
            retry_config=RetryConfig("none", BackoffStrategy(1, 1, 1.0, 1), False),
            timeout_ms=timeout_ms,
        )
        _SDK_CLIENTS[key] = client
    return ChatOpenRouter(
        model=model,
        base_url=sim.openrouter_base_url,
        api_key="sk-test",
        client=client,
        **kwargs,
    )


@pytest.fixture
def openai_model(sim: Simulator) -> Callable[..., Any]:
    """`openai_model(name, **kwargs)`: a ChatOpenAI on the simulator, no retries."""
    return lambda name, **kwargs: _openai_model(sim, name, **kwargs)


@pytest.fixture
def openrouter_model(sim: Simulator) -> Callable[..., Any]:
    """`openrouter_model(name, timeout_ms=..., **kwargs)`: a ChatOpenRouter, no retries."""
    return lambda name, **kwargs: _openrouter_model(sim, name, **kwargs)
