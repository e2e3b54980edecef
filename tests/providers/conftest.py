from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_fusion.providers import ChatOpenAICompatible
from langchain_fusion.sim import Scenario, Simulator, run_simulator

#: A key that must never show up in any repr, report, error or trace.
SECRET = "sk-or-v1-TOPSECRET-0123456789abcdef"

SCENARIO: dict[str, Any] = {
    "name": "providers",
    "seed": 3,
    "keepalive_interval": 0.05,
    # Usage only when the request asks for it, as OpenAI does: the member must ask.
    "stream_usage": "requested",
    "bank": [{"question": "What is 17*23?", "answer": "391", "wrong": ["381", "401"]}],
    "models": [
        {
            "name": "p/plain",
            "template": "The answer is {answer}.",
            "prompt_price": 0.000001,
            "completion_price": 0.000002,
            "answers": [
                {"match": "hello", "answer": "Hello there, how can I help?"},
                {
                    "match": "weather",
                    "answer": "Let me look that up.",
                    "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
                },
            ],
        },
        {
            "name": "p/wrong",
            "accuracy": 0.0,
            "template": "It is {answer}.",
            "prompt_price": 0.000002,
            "completion_price": 0.000003,
        },
        {
            "name": "p/other",
            "template": "{answer}, clearly.",
            "prompt_price": 0.0000005,
            "completion_price": 0.000001,
        },
        {
            "name": "p/judge",
            "judge": {"rule": "oracle", "accuracy": 1.0},
            "prompt_price": 0.000004,
            "completion_price": 0.000008,
        },
        {
            "name": "p/429",
            "template": "{answer}, after a wait.",
            "prompt_price": 0.000001,
            "completion_price": 0.000001,
            "faults": [{"kind": "rate_limit", "requests": [1], "retry_after": 0.2}],
        },
        {"name": "p/429always", "faults": [{"kind": "rate_limit", "retry_after": 0.05}]},
        {"name": "p/429long", "faults": [{"kind": "rate_limit", "retry_after": 30}]},
        {"name": "p/429five", "faults": [{"kind": "rate_limit", "retry_after": 5}]},
        {
            "name": "p/500once",
            "faults": [{"kind": "server_error", "status": 500, "requests": [1]}],
        },
        {"name": "p/400", "faults": [{"kind": "server_error", "status": 400}]},
        {
            "name": "p/errchunk",
            "template": "one two three four five six {answer}",
            "faults": [{"kind": "error_chunk", "after_tokens": 2}],
        },
        {"name": "p/broken", "faults": [{"kind": "broken_stream", "after_tokens": 2}]},
        {"name": "p/malformed", "faults": [{"kind": "malformed_json"}]},
        {"name": "p/hang", "faults": [{"kind": "hang"}]},
        {
            "name": "p/std",  # for langchain-tests' standard suite
            "answers": [
                {
                    "match": "weather in San Francisco",
                    "answer": "Let me check.",
                    "tool_calls": [
                        {"name": "get_weather", "arguments": {"location": "San Francisco, CA"}}
                    ],
                },
                {
                    "regex": "你好|こんにちは",
                    "answer": "",
                    "structured": {"customer_name": "你好啊集团 こんにちは株式会社"},
                },
            ],
            "default_answer": "Hello! I am a simulated model.",
        },
    ],
}


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


@pytest.fixture
def member(sim: Simulator) -> Callable[..., ChatOpenAICompatible]:
    """`member(model, **fields)`: a `ChatOpenAICompatible` on the simulator."""

    def make(model: str, **fields: Any) -> ChatOpenAICompatible:
        fields.setdefault("api_key", SECRET)
        fields.setdefault("timeout", 10)
        return ChatOpenAICompatible(model=model, base_url=sim.openrouter_base_url, **fields)

    return make


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
def no_openrouter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("OPENROUTER_API_BASE", raising=False)
