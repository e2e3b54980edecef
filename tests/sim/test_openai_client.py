"""ChatOpenAI (langchain-openai over the openai SDK) against the simulator."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from pydantic import BaseModel, ValidationError

from langchain_fusion.sim import Simulator, count_tokens

pytestmark = pytest.mark.timeout(30)


class Person(BaseModel):
    name: str
    age: int


def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return "sunny"


def _join(chunks: list[Any]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full  # type: ignore[no-any-return]


def test_invoke_usage_and_cost(sim: Simulator, openai_model: Any) -> None:
    msg = openai_model("t/plain").invoke("hello")
    assert msg.content == "Hello there, how can I help?"
    assert msg.usage_metadata["input_tokens"] == 1
    assert msg.usage_metadata["output_tokens"] == count_tokens(msg.content) == 6
    usage = msg.response_metadata["token_usage"]
    assert usage["cost"] == pytest.approx(1 * 0.000001 + 6 * 0.000002)
    assert usage["cost_details"]["upstream_inference_completions_cost"] == pytest.approx(12e-6)
    assert msg.response_metadata["system_fingerprint"] == "fp_plain"
    assert msg.response_metadata["finish_reason"] == "stop"
    row = sim.stats().models["t/plain"]
    assert (row.requests, row.completed, row.prompt_tokens, row.completion_tokens) == (1, 1, 1, 6)
    assert row.cost == pytest.approx(usage["cost"])


def test_stream_with_usage(sim: Simulator, openai_model: Any) -> None:
    chunks = list(openai_model("t/plain", stream_usage=True).stream("hello"))
    full = _join(chunks)
    assert full.content == "Hello there, how can I help?"
    assert len([c for c in chunks if c.content]) == 6  # one chunk per token
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_tokens"] == 6
    assert full.response_metadata["finish_reason"] == "stop"
    row = sim.stats().models["t/plain"]
    assert (row.streams_completed, row.completion_tokens) == (1, 6)


async def test_async_invoke_and_stream(sim: Simulator, openai_model: Any) -> None:
    model = openai_model("t/other")
    msg = await model.ainvoke("What is 17*23?")
    assert msg.content == "391, clearly."
    chunks = [c async for c in model.astream("What is 17*23?", stream_usage=True)]
    assert _join(chunks).content == "391, clearly."
    assert sim.stats().models["t/other"].completed == 2


def test_tool_calls_invoke_and_stream(sim: Simulator, openai_model: Any) -> None:
    model = openai_model("t/plain").bind_tools([get_weather])
    msg = model.invoke("What is the weather like?")
    assert msg.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Paris"},
            "id": msg.tool_calls[0]["id"],
            "type": "tool_call",
        }
    ]
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    full = _join(list(model.stream("What is the weather like?")))
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"})]
    forced = openai_model("t/other").bind_tools([get_weather], tool_choice="get_weather")
    assert forced.invoke("Anything").tool_calls[0]["name"] == "get_weather"
    assert sim.stats().models["t/plain"].tool_calls == 2


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_structured_output_json_schema(sim: Simulator, openai_model: Any) -> None:
    structured = openai_model("t/plain").with_structured_output(Person, method="json_schema")
    assert structured.invoke("give me a person") == Person(name="Ada Lovelace", age=36)
    streamed = list(structured.stream("give me a person"))
    assert streamed[-1] == Person(name="Ada Lovelace", age=36)
    tool_based = openai_model("t/other").with_structured_output(Person, method="function_calling")
    assert isinstance(tool_based.invoke("Someone aged 41"), Person)


def test_image_parts_are_accepted_and_counted(sim: Simulator, openai_model: Any) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    message = HumanMessage(content=[{"type": "text", "text": "hello, what is this?"}, image, image])
    msg = openai_model("t/plain").invoke([message])
    assert msg.usage_metadata["input_tokens"] == 4 + 2 * 10
    assert sim.stats().models["t/plain"].images == 2


def test_models_list(sim: Simulator) -> None:
    client = openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert "t/plain" in ids and "t/judge" in ids


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("t/429", openai.RateLimitError, 429),
        ("t/500", openai.InternalServerError, 500),
        ("t/502", openai.InternalServerError, 502),
        ("t/503", openai.InternalServerError, 503),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_status_faults(
    sim: Simulator, openai_model: Any, model: str, error: type, status: int, stream: bool
) -> None:
    client = openai_model(model)
    with pytest.raises(error) as caught:
        if stream:
            list(client.stream("hello"))
        else:
            client.invoke("hello")
    assert caught.value.status_code == status
    assert caught.value.body["code"] == status
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "2"
        assert caught.value.response.headers["retry-after-ms"] == "2000"
    # The schedule fails only request 1: the next one is answered.
    assert client.invoke("hello").content
    row = sim.stats().models[model]
    assert row.faults == {"rate_limit" if status == 429 else "server_error": 1}
    assert (row.requests, row.completed) == (2, 1)


def test_malformed_json(sim: Simulator, openai_model: Any) -> None:
    # The openai SDK lets the decoder's error through, plain and streaming.
    with pytest.raises(json.JSONDecodeError):
        openai_model("t/malformed").invoke("hello")
    sim.reset()
    with pytest.raises(json.JSONDecodeError):
        list(openai_model("t/malformed").stream("hello"))
    assert sim.stats().models["t/malformed"].faults == {"malformed_json": 1}


def test_broken_stream(sim: Simulator, openai_model: Any) -> None:
    # openai 3.x wraps the cut stream in APIConnectionError; 2.x (which llama-index-llms-openai
    # requires) lets httpx's RemoteProtocolError through.
    with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError)):
        list(openai_model("t/broken").stream("hello"))
    sim.reset()
    with pytest.raises((openai.APIConnectionError, openai.APIError)):
        openai_model("t/broken").invoke("hello")
    row = sim.stats().models["t/broken"]
    assert (row.faults, row.completed, row.completion_tokens) == ({"broken_stream": 1}, 0, 0)


def test_error_chunk(sim: Simulator, openai_model: Any) -> None:
    # The openai SDK raises on a stream event that carries `error`.
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(openai_model("t/errchunk").stream("zzz"))
    row = sim.stats().models["t/errchunk"]
    assert (row.completed, row.completion_tokens, row.unbilled_completion_tokens) == (0, 0, 2)
    sim.reset()
    # Non-streaming, the body carries `error` and langchain-openai raises it.
    with pytest.raises(ValueError, match="Upstream error"):
        openai_model("t/errchunk").invoke("zzz")


def test_hang_then_client_timeout_is_abandoned(sim: Simulator, openai_model: Any) -> None:
    with pytest.raises(openai.APITimeoutError):
        openai_model("t/hang", timeout=0.3).invoke("hello")
    _wait_for(lambda: sim.stats().models["t/hang"].abandoned == 1)
    row = sim.stats().models["t/hang"]
    assert (row.faults, row.completed, row.in_flight) == ({"hang": 1}, 0, 0)
    assert openai_model("t/hang").invoke("hello").content  # request 2 is answered


def _wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_off_protocol_model_ignores_structured_output(sim: Simulator, openai_model: Any) -> None:
    class Named(BaseModel):
        name: str

    # json_schema: the openai SDK parses the reply itself and raises on prose.
    strict = openai_model("t/prose-judge").with_structured_output(Named, method="json_schema")
    with pytest.raises(ValidationError, match="Invalid JSON"):
        strict.invoke("Give me a person as JSON")
    tools = openai_model("t/prose-judge").with_structured_output(
        Named, method="function_calling", include_raw=True
    )
    result = tools.invoke("Give me a person as JSON")
    assert result["parsed"] is None  # no tool call to parse
    raw = result["raw"]
    assert raw.tool_calls == [] and raw.content
    assert raw.usage_metadata["output_tokens"] == count_tokens(raw.content)
    stats = sim.stats().models["t/prose-judge"]
    assert stats.completed == 2 and stats.completion_tokens > 0
