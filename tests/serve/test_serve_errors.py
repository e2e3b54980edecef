"""Every error status, over raw HTTP, in OpenAI's error shape; none starts a member call
that it should not, and no response shows the upstream key."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from serve_helpers import ENV, KEY, Served, ask, post, serve

from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(60)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert ENV["SIM_KEY"] not in response.text
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fusion/merge"}, "messages"),
        ({"model": "fusion/merge", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({**ask(), "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({**ask(), "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({**ask(), "temperature": 7}, "temperature"),
        ({**ask(), "max_tokens": 0}, "max_tokens"),
        ({**ask(), "n": 3}, "n"),
        ({**ask(), "fusion": {"quorum": 2}}, "fusion.quorum"),
        ({**ask(), "fusion": {"max_cost_usd": 5.0}}, "fusion.max_cost_usd"),
        ({**ask(), "fusion": {"debate_rounds": -1}}, "fusion.debate_rounds"),
        ({**ask(), "response_format": {"type": "xml"}}, "response_format.type"),
        ({**ask(), "tool_choice": True}, "tool_choice"),
        ({**ask(), "tools": [{"type": "nonsense"}]}, "tools"),
    ],
)
def test_400_names_the_field_and_calls_no_model(server: Served, sim: Simulator, body, param):
    response = post(server, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert sim.stats().totals.requests == 0


def test_400_for_a_body_that_is_not_json(server: Served, sim: Simulator):
    response = httpx.post(server.v1 + "/chat/completions", content=b"{not json", timeout=10)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_a_request_may_lower_the_budget_and_set_allowed_settings(server: Served):
    response = post(server, {**ask(), "fusion": {"max_cost_usd": 0.5, "mode": "best_of"}})
    assert response.status_code == 200
    assert response.json()["fusion"]["mode"] == "best_of"


def test_401_without_or_with_a_wrong_key_and_no_member_call(sim: Simulator):
    with serve(sim, api_keys=(KEY,)) as served:
        missing = post(served, ask())
        wrong = post(served, ask(), key="sk-wrong")
        models = httpx.get(served.v1 + "/models", timeout=10)
        pages = httpx.get(served.base_url + "/fusions", timeout=10)
        metrics = httpx.get(served.base_url + "/metrics", timeout=10)
        assert sim.stats().totals.requests == 0  # the simulator saw nothing
        ok = post(served, ask(), key=KEY)
    for response in (missing, wrong, models, pages, metrics):
        assert response.status_code == 401
        assert error_of(response)["type"] == "authentication_error"
    assert KEY not in wrong.text
    assert ok.status_code == 200


def test_404_unknown_model(server: Served, sim: Simulator):
    response = post(server, ask("fusion/nope"))
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "fusion/merge" in error["message"]
    assert sim.stats().totals.requests == 0


def test_413_body_too_large(sim: Simulator):
    with serve(sim, max_body_bytes=2048) as served:
        big = ask(text="word " * 1000)
        response = post(served, big)
        chunked = httpx.post(
            served.v1 + "/chat/completions",
            content=iter([b'{"model": "fusion/merge", "messages": [', b" " * 4096, b"]}"]),
            timeout=10,
        )
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    assert chunked.status_code == 413  # no Content-Length: counted as it is read
    assert sim.stats().totals.requests == 0


def test_too_many_messages_is_a_400(sim: Simulator):
    with serve(sim, max_messages=2) as served:
        body = ask()
        body["messages"] = [{"role": "user", "content": "hi"}] * 3
        response = post(served, body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "too_many_messages"


def test_429_over_the_concurrency_limit_with_retry_after(sim: Simulator):
    # The held request hangs until the server's request timeout (3 s) ends it with a 504.
    with serve(sim, max_concurrent_requests=1, request_timeout=3) as served:
        first: list[httpx.Response] = []
        holder = threading.Thread(
            target=lambda: first.append(post(served, ask("fusion/hang-forever")))
        )
        holder.start()
        deadline = time.monotonic() + 10
        while served.state.slots.in_use == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert served.state.slots.in_use == 1
        second = post(served, ask())
        holder.join(10)
    assert second.status_code == 429
    assert second.headers["retry-after"] == "1"
    assert error_of(second)["type"] == "rate_limit_error"
    assert first and first[0].status_code == 504


def test_502_when_the_fusion_failed_with_the_causes(server: Served):
    response = post(server, ask("fusion/failing"))
    assert response.status_code == 502
    error = error_of(response)
    assert "upstream refused (serve)" in error["message"]
    assert response.json()["fusion"]["candidates"][0]["status"] == "error"  # nothing lost


def test_504_when_every_member_ran_out_of_time(server: Served):
    response = post(server, ask("fusion/hanging"))
    assert response.status_code == 504
    assert error_of(response)["code"] == "deadline_exceeded"


def test_504_past_the_server_request_timeout_and_the_calls_are_closed(sim: Simulator):
    with serve(sim, request_timeout=0.3) as served:
        started = time.monotonic()
        response = post(served, ask("fusion/hang-forever"))
        elapsed = time.monotonic() - started
        assert sim.stats().models["serve/hang"].requests == 2
        deadline = time.monotonic() + 5
        while sim.stats().totals.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.stats().totals.in_flight == 0  # the member requests were closed
    assert response.status_code == 504
    assert "request timeout (0.3s)" in error_of(response)["message"]
    assert elapsed < 5


def test_a_stream_that_fails_before_its_first_chunk_gets_its_status(server: Served):
    response = post(server, {**ask("fusion/failing"), "stream": True})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert "upstream refused (serve)" in error_of(response)["message"]
