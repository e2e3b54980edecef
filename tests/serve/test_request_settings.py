"""How a request's options reach the fusion: max_tokens on the calls, and the limits."""

from __future__ import annotations

import pytest
from serve_helpers import Served, ask, post

from langchain_fusion.serve import parse_config
from langchain_fusion.serve._completions import call_arguments
from langchain_fusion.serve._wire import ChatRequest
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(60)


def test_max_completion_tokens_caps_every_call(server: Served, sim: Simulator):
    response = post(server, {**ask("fusion/merge"), "max_completion_tokens": 3})
    assert response.status_code == 200
    stats = sim.stats().models
    members = [stats[m] for m in ("serve/ada", "serve/bob", "serve/cy")]
    assert [s.requests for s in members] == [1, 1, 1]
    assert [s.completion_tokens for s in members] == [3, 3, 3]
    # the judge's synthesis (the answer) is cut too; the simulator answers its structured
    # comparison whole
    assert len(response.json()["choices"][0]["message"]["content"].split()) == 3


def entry(**settings):
    config = parse_config(
        {"fusions": {"f/x": {"pool": ["a/b", "c/d"], "judge": "a/b", **settings}}}
    )
    return config.fusions["f/x"]


def request(**fields) -> ChatRequest:
    return ChatRequest.model_validate({**ask("f/x"), **fields})


def test_the_member_concurrency_ceiling():
    assert call_arguments(request(), entry(), 8)["max_concurrency"] == 8
    assert call_arguments(request(), entry(max_concurrency=2), 8)["max_concurrency"] == 2
    assert call_arguments(request(), entry(max_concurrency=20), 8)["max_concurrency"] == 8
    assert "max_concurrency" not in call_arguments(request(), entry(), None)


def test_max_tokens_is_capped_by_the_config():
    assert call_arguments(request(max_tokens=500), entry(max_tokens=100), None)["max_tokens"] == 100
    assert call_arguments(request(max_tokens=50), entry(max_tokens=100), None)["max_tokens"] == 50
