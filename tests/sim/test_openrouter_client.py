"""ChatOpenRouter (langchain-openrouter over the openrouter SDK) against the simulator.

Every model here gets an SDK client built with `RetryConfig("none", ...)`: the SDK's default
retry (also what `max_retries=0` leaves in place) can retry 5xx for an hour.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openrouter
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from openrouter import errors
from pydantic import BaseModel

from langchain_fusion.sim import Simulator

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


def test_invoke_usage_and_cost(sim: Simulator, openrouter_model: Any) -> None:
    msg = openrouter_model("t/plain").invoke("hello")
    assert msg.content == "Hello there, how can I help?"
    assert msg.usage_metadata["input_tokens"] == 1
    assert msg.usage_metadata["output_tokens"] == 6
    assert msg.response_metadata["cost"] == pytest.approx(13e-6)
    assert msg.response_metadata["cost_details"]["upstream_inference_prompt_cost"] == 1e-6
    assert msg.response_metadata["finish_reason"] == "stop"
    row = sim.stats().models["t/plain"]
    assert (row.completed, row.prompt_tokens, row.completion_tokens) == (1, 1, 6)
    assert row.cost == pytest.approx(msg.response_metadata["cost"])


def test_stream_keeps_usage_and_cost(sim: Simulator, openrouter_model: Any) -> None:
    full = _join(list(openrouter_model("t/plain").stream("hello")))
    assert full.content == "Hello there, how can I help?"
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_tokens"] == 6
    assert full.response_metadata["cost"] == pytest.approx(13e-6)
    assert full.response_metadata["finish_reason"] == "stop"
    assert sim.stats().models["t/plain"].streams_completed == 1


async def test_async_invoke_and_stream(sim: Simulator, openrouter_model: Any) -> None:
    model = openrouter_model("t/other")
    assert (await model.ainvoke("What is 17*23?")).content == "391, clearly."
    chunks = [c async for c in model.astream("What is 17*23?")]
    assert _join(chunks).content == "391, clearly."
    assert sim.stats().models["t/other"].completed == 2


def test_tool_calls_invoke_and_stream(sim: Simulator, openrouter_model: Any) -> None:
    model = openrouter_model("t/plain").bind_tools([get_weather])
    msg = model.invoke("What is the weather like?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})]
    full = _join(list(model.stream("What is the weather like?")))
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(sim: Simulator, openrouter_model: Any, method: str) -> None:
    structured = openrouter_model("t/plain").with_structured_output(Person, method=method)
    assert structured.invoke("give me a person") == Person(name="Ada Lovelace", age=36)


def test_image_parts_are_counted(sim: Simulator, openrouter_model: Any) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    msg = openrouter_model("t/plain").invoke(
        [HumanMessage(content=[{"type": "text", "text": "hello"}, image])]
    )
    assert msg.usage_metadata["input_tokens"] == 1 + 10
    assert sim.stats().models["t/plain"].images == 1


def test_models_list_validates_in_the_sdk(sim: Simulator) -> None:
    client = openrouter.OpenRouter(api_key="sk-test", server_url=sim.openrouter_base_url)
    listing = client.models.list()
    assert listing is not None
    assert [m.id for m in listing.result.data][:2] == ["t/plain", "t/wrong"]
    assert listing.result.data[0].pricing.prompt == "0.000001"


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("t/429", errors.TooManyRequestsResponseError, 429),
        ("t/500", errors.InternalServerResponseError, 500),
        ("t/502", errors.BadGatewayResponseError, 502),
        ("t/503", errors.ServiceUnavailableResponseError, 503),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_status_faults(
    sim: Simulator, openrouter_model: Any, model: str, error: type, status: int, stream: bool
) -> None:
    client = openrouter_model(model)
    with pytest.raises(error) as caught:
        if stream:
            list(client.stream("hello"))
        else:
            client.invoke("hello")
    assert caught.value.status_code == status
    assert caught.value.data.error.code == status
    assert client.invoke("hello").content  # only request 1 fails


def test_sdk_retry_recovers_from_a_single_503(sim: Simulator) -> None:
    """ChatOpenRouter's own backoff (max_retries=1): safe here, the fault fails only once."""
    from langchain_openrouter import ChatOpenRouter

    model = ChatOpenRouter(
        model="t/503", base_url=sim.openrouter_base_url, api_key="sk-test", max_retries=1
    )
    assert model.invoke("hello").content
    assert sim.stats().models["t/503"].requests == 2


def test_malformed_json(sim: Simulator, openrouter_model: Any) -> None:
    with pytest.raises(errors.ResponseValidationError):
        openrouter_model("t/malformed").invoke("hello")
    sim.reset()
    with pytest.raises(errors.ResponseValidationError):
        list(openrouter_model("t/malformed").stream("hello"))


def test_broken_stream(sim: Simulator, openrouter_model: Any) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        list(openrouter_model("t/broken").stream("hello"))
    sim.reset()
    with pytest.raises(httpx.RemoteProtocolError):
        openrouter_model("t/broken").invoke("hello")


def test_error_chunk_ends_the_stream_with_finish_reason_error(
    sim: Simulator, openrouter_model: Any
) -> None:
    # ChatOpenRouter raises only on error chunks without choices: this one ends "normally".
    full = _join(list(openrouter_model("t/errchunk").stream("zzz")))
    assert full.response_metadata["finish_reason"] == "error"
    assert full.content == "t/errchunk has "
    assert full.usage_metadata is None
    row = sim.stats().models["t/errchunk"]
    assert (row.faults, row.completed, row.unbilled_completion_tokens) == ({"error_chunk": 1}, 0, 2)


def test_hang_then_client_timeout_is_abandoned(sim: Simulator, openrouter_model: Any) -> None:
    with pytest.raises(httpx.TimeoutException):
        openrouter_model("t/hang", timeout_ms=300).invoke("hello")
    deadline = time.monotonic() + 3
    while sim.stats().models["t/hang"].abandoned != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
