"""The wire format as bytes (raw httpx), `/stats` accounting, disconnects and lifecycle."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest

from langchain_fusion.sim import (
    Scenario,
    SimModel,
    Simulator,
    arun_simulator,
    count_tokens,
    run_simulator,
)

pytestmark = pytest.mark.timeout(30)


def _body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def _events(raw: str) -> tuple[list[str], list[Any]]:
    """(comments, data payloads) of an SSE body, in order."""
    comments, data = [], []
    for block in raw.split("\n\n"):
        if block.startswith(":"):
            comments.append(block)
        elif block.startswith("data: "):
            payload = block[len("data: ") :]
            data.append(payload if payload == "[DONE]" else json.loads(payload))
    return comments, data


def test_non_streaming_body_is_shaped_as_openrouter(sim: Simulator) -> None:
    reply = httpx.post(sim.base_url + "/api/v1/chat/completions", json=_body("t/other", "hi"))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert {"id", "model", "provider", "object", "created", "system_fingerprint", "choices"} <= set(
        body
    )
    assert body["system_fingerprint"] is None  # present, may be null
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert {"prompt_tokens", "completion_tokens", "total_tokens", "cost", "cost_details"} <= set(
        usage
    )
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_is_shaped_as_openrouter(sim: Simulator) -> None:
    with httpx.stream(
        "POST", sim.base_url + "/v1/chat/completions", json=_body("t/slow", "hi", stream=True)
    ) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        raw = reply.read().decode()
    assert raw.startswith(": OPENROUTER PROCESSING\n\n")
    comments, data = _events(raw)
    assert len(comments) >= 3  # ttft 0.25 s, keep-alive every 0.05 s
    assert data[-1] == "[DONE]"
    usage_chunk, finish_chunk = data[-2], data[-3]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == count_tokens(
        "".join(c["choices"][0]["delta"].get("content") or "" for c in data[:-2])
    )
    assert finish_chunk["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" and c["provider"] == "Sim" for c in data[:-1])
    assert data[0]["choices"][0]["delta"]["role"] == "assistant"


def test_stream_pacing_follows_ttft_and_tokens_per_second(sim: Simulator) -> None:
    started = time.monotonic()
    with httpx.stream(
        "POST", sim.base_url + "/v1/chat/completions", json=_body("t/slow", "hi", stream=True)
    ) as reply:
        first = None
        for line in reply.iter_lines():
            if line.startswith("data: {") and first is None:
                first = time.monotonic() - started
    total = time.monotonic() - started
    tokens = sim.stats().models["t/slow"].completion_tokens
    assert first is not None and first >= 0.25
    assert total >= 0.25 + (tokens - 1) / 40


def test_models_endpoint(sim: Simulator) -> None:
    for path in ("/v1/models", "/api/v1/models"):
        data = httpx.get(sim.base_url + path).json()
        assert data["object"] == "list"
        assert [m["id"] for m in data["data"]][:3] == ["t/plain", "t/wrong", "t/other"]


def test_stats_endpoint_and_reset(sim: Simulator) -> None:
    httpx.post(sim.base_url + "/v1/chat/completions", json=_body("t/plain", "hello"))
    over_http = httpx.get(sim.base_url + "/stats").json()
    assert over_http == sim.stats().model_dump()
    assert over_http["models"]["t/plain"]["completion_tokens"] == 6
    assert over_http["totals"]["requests"] == 1
    reset = httpx.post(sim.base_url + "/stats/reset").json()
    assert reset["totals"]["requests"] == 0


def test_rejected_requests(sim: Simulator) -> None:
    url = sim.base_url + "/v1/chat/completions"
    unknown = httpx.post(url, json=_body("nope/nope", "hi"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == 404
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, json={"model": "t/plain"}).status_code == 400
    stats = sim.stats()
    assert stats.rejected == 3
    assert stats.totals.requests == 0


def test_max_tokens_truncates_with_finish_reason_length(sim: Simulator) -> None:
    body = httpx.post(
        sim.base_url + "/v1/chat/completions", json=_body("t/plain", "hello", max_tokens=2)
    ).json()
    assert body["choices"][0]["message"]["content"] == "Hello there, "
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_client_leaving_mid_stream_is_abandoned(sim: Simulator) -> None:
    with httpx.stream(
        "POST", sim.base_url + "/v1/chat/completions", json=_body("t/slow", "hi", stream=True)
    ) as reply:
        for line in reply.iter_lines():
            if line.startswith("data: {"):
                break  # leave after the first token
    deadline = time.monotonic() + 3
    while sim.stats().models["t/slow"].abandoned != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    row = sim.stats().models["t/slow"]
    assert (row.completed, row.completion_tokens, row.in_flight) == (0, 0, 0)
    assert row.unbilled_completion_tokens >= 1


def test_stream_stalling_mid_way_then_client_timeout_is_abandoned(sim: Simulator) -> None:
    seen: list[str] = []
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST",
            sim.base_url + "/v1/chat/completions",
            json=_body("t/stall", "hi", stream=True),
            timeout=httpx.Timeout(5, read=0.3),
        ) as reply,
    ):
        for line in reply.iter_lines():
            if line.startswith("data: {"):
                seen.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
    assert len(seen) == 2
    deadline = time.monotonic() + 3
    while sim.stats().models["t/stall"].abandoned != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    row = sim.stats().models["t/stall"]
    assert (row.faults, row.unbilled_completion_tokens, row.completed) == ({"hang": 1}, 2, 0)


async def test_cancelled_async_request_during_hang_is_abandoned(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(
            client.post(sim.base_url + "/v1/chat/completions", json=_body("t/hang", "hi"))
        )
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    deadline = time.monotonic() + 3
    while sim.stats().models["t/hang"].abandoned != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_exact_accounting_across_clients(
    sim: Simulator, openai_model: Any, openrouter_model: Any
) -> None:
    replies = [
        openai_model("t/plain").invoke("hello"),
        openai_model("t/other").invoke("What is 17*23?"),
        openrouter_model("t/plain").invoke("What is 17*23? Please answer."),
        openrouter_model("t/wrong").invoke("What is 17*23?"),
        _last(openrouter_model("t/plain").stream("hello again")),
        _last(openai_model("t/other", stream_usage=True).stream("hello")),
    ]
    stats = sim.stats()
    assert stats.totals.requests == 6
    assert stats.totals.prompt_tokens == sum(r.usage_metadata["input_tokens"] for r in replies)
    assert stats.totals.completion_tokens == sum(r.usage_metadata["output_tokens"] for r in replies)
    assert stats.totals.completion_tokens == sum(count_tokens(r.text) for r in replies)
    plain_costs = [
        replies[0].response_metadata["token_usage"]["cost"],
        replies[2].response_metadata["cost"],
        replies[4].response_metadata["cost"],
    ]
    assert stats.models["t/plain"].cost == pytest.approx(sum(plain_costs), abs=1e-12)


def _last(chunks: Any) -> Any:
    items = list(chunks)
    full = items[0]
    for item in items[1:]:
        full = full + item
    return full


def test_stream_usage_only_when_requested() -> None:
    scenario = Scenario(stream_usage="requested", models=[SimModel(name="m")])
    with run_simulator(scenario) as sim:
        url = sim.base_url + "/v1/chat/completions"
        _, plain = _events(httpx.post(url, json=_body("m", "hi", stream=True)).text)
        assert not any("usage" in c for c in plain[:-1])
        asked = _body("m", "hi", stream=True, stream_options={"include_usage": True})
        _, with_usage = _events(httpx.post(url, json=asked).text)
        assert with_usage[-2]["usage"]["completion_tokens"] > 0
        row = sim.stats().models["m"]
        assert (row.streams_completed, row.completion_tokens) == (
            2,
            with_usage[-2]["usage"]["completion_tokens"],
        )


def test_stop_cuts_a_hanging_request_quickly() -> None:
    scenario = Scenario(models=[SimModel(name="m", faults=[{"kind": "hang"}])])  # type: ignore[list-item]
    outcome: list[Any] = []

    with run_simulator(scenario) as sim:

        def call() -> None:
            try:
                url = sim.base_url + "/v1/chat/completions"
                outcome.append(httpx.post(url, json=_body("m", "hi"), timeout=10).status_code)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 3
    thread.join(5)
    assert not thread.is_alive()
    assert outcome and outcome[0] != 200  # a 500 or a dropped connection, never an answer


async def test_async_twin_serves_on_its_own_port(sim: Simulator) -> None:
    async with arun_simulator() as other:
        assert other.port != sim.port
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                other.openai_base_url + "/chat/completions",
                json=_body("sim/cirrus", "What is 17*23?"),
            )
        assert reply.json()["choices"][0]["message"]["content"].endswith(".")
        assert other.stats().models["sim/cirrus"].completed == 1
