"""ChatOpenAICompatible against the simulator: cost, streams, faults, retries, pools."""

from __future__ import annotations

import asyncio
import functools
import importlib
import operator
import time
from collections.abc import Callable
from typing import Any

import httpx
import httpx2
import pytest
from langchain_core.messages import AIMessageChunk
from pydantic import BaseModel

from langchain_fusion._core.usage import message_cost
from langchain_fusion._http import (
    SHARED_CLIENTS,
    aclose_response,
    deadline_scope,
    parse_retry_after,
)
from langchain_fusion.providers import ChatOpenAICompatible, ProviderError, ProviderTimeoutError
from langchain_fusion.sim import Simulator

SECRET = "sk-or-v1-TOPSECRET-0123456789abcdef"  # the conftest's `member` key

pytestmark = pytest.mark.timeout(30)

Member = Callable[..., ChatOpenAICompatible]


class Person(BaseModel):
    name: str
    age: int


def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return "sunny"


def _join(chunks: list[Any]) -> AIMessageChunk:
    return functools.reduce(operator.add, chunks)  # type: ignore[no-any-return]


def _served(sim: Simulator, model: str) -> tuple[int, int, float]:
    row = sim.stats().models[model]
    return row.prompt_tokens, row.completion_tokens, row.cost


def test_invoke_keeps_usage_and_cost(sim: Simulator, member: Member) -> None:
    msg = member("p/plain").invoke("hello")
    assert msg.content == "Hello there, how can I help?"
    prompt, completion, cost = _served(sim, "p/plain")
    assert msg.usage_metadata is not None
    assert (msg.usage_metadata["input_tokens"], msg.usage_metadata["output_tokens"]) == (
        prompt,
        completion,
    )
    assert msg.response_metadata["token_usage"]["cost"] == pytest.approx(cost, abs=1e-12)
    assert message_cost(msg) == pytest.approx(cost, abs=1e-12)
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "p/plain"


@pytest.mark.parametrize("entry", ["stream", "astream"])
async def test_stream_keeps_cost_on_the_usage_chunk(
    sim: Simulator, member: Member, entry: str
) -> None:
    model = member("p/plain")
    if entry == "stream":
        chunks = await asyncio.to_thread(lambda: list(model.stream("hello")))
    else:
        chunks = [c async for c in model.astream("hello")]
    assert len([c for c in chunks if c.content]) == 6  # tokens arrive one by one
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1  # exactly one chunk carries usage (and cost)
    assert with_usage[0] is chunks[-1] and chunks[-1].chunk_position == "last"
    full = _join(chunks)
    prompt, completion, cost = _served(sim, "p/plain")
    assert full.content == "Hello there, how can I help?"
    assert full.usage_metadata is not None
    assert (full.usage_metadata["input_tokens"], full.usage_metadata["output_tokens"]) == (
        prompt,
        completion,
    )
    # The scenario only sends usage when asked (`stream_usage: requested`): the member asks
    # even with a custom base_url, and keeps OpenRouter's cost.
    assert full.response_metadata["token_usage"]["cost"] == pytest.approx(cost, abs=1e-12)
    assert message_cost(full) == pytest.approx(cost, abs=1e-12)
    assert sim.stats().models["p/plain"].streams_completed == 1


def test_stream_usage_off_is_respected(sim: Simulator, member: Member) -> None:
    full = _join(list(member("p/plain", stream_usage=False).stream("hello")))
    assert full.usage_metadata is None
    assert "token_usage" not in full.response_metadata


async def test_async_invoke_and_streaming_field(sim: Simulator, member: Member) -> None:
    assert (await member("p/other").ainvoke("What is 17*23?")).content == "391, clearly."
    streamed = await member("p/other", streaming=True).ainvoke("What is 17*23?")
    assert streamed.content == "391, clearly."
    assert message_cost(streamed) == pytest.approx(sim.stats().models["p/other"].cost / 2)
    assert sim.stats().models["p/other"].stream_requests == 1


@pytest.mark.parametrize("entry", ["stream", "astream"])
async def test_mid_stream_error_chunk_raises(sim: Simulator, member: Member, entry: str) -> None:
    model = member("p/errchunk")
    chunks: list[Any] = []
    with pytest.raises(ProviderError, match="mid-stream") as caught:
        if entry == "stream":
            await asyncio.to_thread(lambda: chunks.extend(model.stream("What is 17*23?")))
        else:
            async for chunk in model.astream("What is 17*23?"):
                chunks.append(chunk)
    assert "".join(str(c.content) for c in chunks) == "one two "  # sent before the error
    assert _secretless(caught.value)


def test_error_body_raises_not_a_short_answer(sim: Simulator, member: Member) -> None:
    with pytest.raises(ProviderError, match="reported an error"):
        member("p/errchunk").invoke("What is 17*23?")


def test_malformed_and_broken_responses_raise(sim: Simulator, member: Member) -> None:
    with pytest.raises(ProviderError, match="malformed JSON"):
        member("p/malformed", max_retries=0).invoke("hello")
    with pytest.raises(ProviderError, match="stream broke"):
        list(member("p/broken", max_retries=0).stream("hello"))


@pytest.mark.parametrize("entry", ["invoke", "ainvoke", "stream"])
async def test_429_with_retry_after_then_success(
    sim: Simulator, member: Member, entry: str
) -> None:
    model = member("p/429")
    started = time.monotonic()
    if entry == "invoke":
        msg: Any = await asyncio.to_thread(model.invoke, "What is 17*23?")
    elif entry == "ainvoke":
        msg = await model.ainvoke("What is 17*23?")
    else:
        msg = _join(await asyncio.to_thread(lambda: list(model.stream("What is 17*23?"))))
    assert msg.content == "391, after a wait."
    assert time.monotonic() - started >= 0.2  # `retry-after-ms: 200` was honoured
    row = sim.stats().models["p/429"]
    assert (row.requests, row.completed, row.faults) == (2, 1, {"rate_limit": 1})


@pytest.mark.parametrize("max_retries", [0, 1, 2])
def test_no_retry_beyond_the_bound(sim: Simulator, member: Member, max_retries: int) -> None:
    with pytest.raises(ProviderError) as caught:
        member("p/429always", max_retries=max_retries).invoke("hello")
    assert caught.value.status_code == 429
    assert caught.value.retries == max_retries
    assert sim.stats().models["p/429always"].requests == max_retries + 1


def test_retry_after_longer_than_max_retry_delay_is_not_waited(
    sim: Simulator, member: Member
) -> None:
    with pytest.raises(ProviderError, match="exceeds max_retry_delay") as caught:
        member("p/429long").invoke("hello")
    assert caught.value.retry_after == 30
    assert sim.stats().models["p/429long"].requests == 1


def test_retry_that_would_miss_the_deadline_is_not_made(sim: Simulator, member: Member) -> None:
    with (
        deadline_scope(time.monotonic() + 0.1),
        pytest.raises(ProviderError, match="deadline"),
    ):
        member("p/429").invoke("hello")  # asks to wait 0.2 s: past the deadline
    assert sim.stats().models["p/429"].requests == 1


def test_server_error_is_retried_and_client_error_is_not(sim: Simulator, member: Member) -> None:
    assert member("p/500once", max_retry_delay=0.01).invoke("hello").content
    assert sim.stats().models["p/500once"].requests == 2
    with pytest.raises(ProviderError, match="HTTP 400") as caught:
        member("p/400").invoke("hello")
    assert caught.value.retries == 0
    assert sim.stats().models["p/400"].requests == 1


def test_connection_failure_after_retries(member: Member) -> None:
    model = ChatOpenAICompatible(
        model="x/y",
        base_url="http://127.0.0.1:9/v1",  # discard port: nothing listens
        max_retries=1,
        max_retry_delay=0.01,
    )
    with pytest.raises(ProviderError, match="ConnectError") as caught:
        model.invoke("hello")
    assert caught.value.retries == 1


async def test_timeout_is_a_provider_timeout(sim: Simulator, member: Member) -> None:
    with pytest.raises(ProviderTimeoutError) as caught:
        await member("p/hang", timeout=0.2, max_retries=0).ainvoke("hello")
    assert isinstance(caught.value, TimeoutError)  # the fusion reports it as a timeout
    deadline = time.monotonic() + 5
    while sim.stats().models["p/hang"].abandoned != 1:  # the connection was closed
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("library", ["httpx2", "httpx"])
async def test_own_clients_of_either_library_raise_the_same_errors(
    sim: Simulator, member: Member, library: str
) -> None:
    """The shared pools are httpx2's; a caller's own httpx clients keep working, their
    failures mapped to the same `ProviderError`s."""
    lib: Any = importlib.import_module(library)
    sync_client, async_client = lib.Client(), lib.AsyncClient()
    own = {"http_client": sync_client, "http_async_client": async_client, "max_retries": 0}
    refused = ChatOpenAICompatible(
        model="x/y",
        base_url="http://127.0.0.1:9/v1",
        **own,  # nothing listens
    )
    try:
        assert (await member("p/plain", **own).ainvoke("hello")).content.startswith("Hello")
        assert (await asyncio.to_thread(member("p/plain", **own).invoke, "hello")).content
        with pytest.raises(ProviderTimeoutError, match="ReadTimeout"):
            await member("p/hang", **own, timeout=0.2).ainvoke("hello")
        with pytest.raises(ProviderTimeoutError, match="ReadTimeout"):
            await asyncio.to_thread(member("p/hang", **own, timeout=0.2).invoke, "hello")
        with pytest.raises(ProviderError, match="stream broke after") as caught:
            async for _ in member("p/broken", **own).astream("hello"):
                pass
        assert not isinstance(caught.value, ProviderTimeoutError)
        with pytest.raises(ProviderError, match="stream broke after"):
            await asyncio.to_thread(lambda: list(member("p/broken", **own).stream("hello")))
        with pytest.raises(ProviderError, match="HTTP 400") as caught:
            await member("p/400", **own).ainvoke("hello")
        assert caught.value.status_code == 400
        with pytest.raises(ProviderError, match=r"ConnectError calling 127\.0\.0\.1"):
            await refused.ainvoke("hello")
        with pytest.raises(ProviderError, match=r"ConnectError calling 127\.0\.0\.1"):
            await asyncio.to_thread(refused.invoke, "hello")
    finally:
        sync_client.close()
        await async_client.aclose()


class _SlowClose:
    """A response whose close yields to the event loop before it releases the connection,
    as closing a socket does."""

    def __init__(self) -> None:
        self.released = False

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.released = True


async def test_a_response_close_finishes_when_its_caller_is_cancelled() -> None:
    response = _SlowClose()
    task = asyncio.create_task(aclose_response(response))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the close has started and yielded
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the cancellation goes through at once...
    assert not response.released
    await asyncio.sleep(0.01)
    assert response.released  # ...and the close still ends, releasing the connection


def test_tool_calls_and_structured_output(sim: Simulator, member: Member) -> None:
    model = member("p/plain").bind_tools([get_weather])
    msg = model.invoke("What is the weather like?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    full = _join(list(model.stream("What is the weather like?")))
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"})]
    forced = member("p/other").bind_tools([get_weather], tool_choice="get_weather")
    assert forced.invoke("Anything").tool_calls[0]["name"] == "get_weather"
    person = member("p/other").with_structured_output(Person).invoke("Ada Lovelace, 36")
    assert isinstance(person, Person)


def test_tool_choice_forms() -> None:
    model = ChatOpenAICompatible(model="x/y", base_url="http://127.0.0.1:9/v1")
    bound: Any = model.bind_tools([get_weather], tool_choice="any")
    assert bound.kwargs["tool_choice"] == "required"
    bound = model.bind_tools([get_weather], tool_choice=True)
    assert bound.kwargs["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(ValueError, match="not a bound tool"):
        model.bind_tools([get_weather], tool_choice="nope")


def test_base_url_is_checked() -> None:
    with pytest.raises(ValueError, match="base_url"):
        ChatOpenAICompatible(model="x/y", base_url="openrouter.ai/api/v1")


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_one_shared_pool_per_process_and_per_loop(member: Member) -> None:
    a, b = member("p/plain"), member("p/other")
    assert a._sync_client() is b._sync_client() is SHARED_CLIENTS.sync_client()
    assert a._async_client() is b._async_client()
    other_loop = await asyncio.to_thread(lambda: asyncio.run(_async_client_of(a)))
    assert other_loop is not a._async_client()  # connections never cross event loops
    assert isinstance(a._async_client(), httpx2.AsyncClient)  # httpx2's pools are shared
    assert isinstance(a._sync_client(), httpx2.Client)
    for own in (httpx2.AsyncClient(), httpx.AsyncClient()):  # a client of either library
        try:
            assert member("p/plain", http_async_client=own)._async_client() is own
        finally:
            await own.aclose()


async def _async_client_of(model: ChatOpenAICompatible) -> Any:
    return model._async_client()


def test_a_member_works_across_event_loops(sim: Simulator, member: Member) -> None:
    model = member("p/plain")
    for _ in range(2):  # a second asyncio.run gets its own pool, not the closed loop's
        assert asyncio.run(model.ainvoke("hello")).content == "Hello there, how can I help?"


def test_secret_never_shown(sim: Simulator, member: Member) -> None:
    model = member("p/429long")
    for text in (repr(model), str(model), model._get_llm_string(), model.model_dump_json()):
        assert SECRET not in text
    assert SECRET not in repr(model.model_dump())
    with pytest.raises(ProviderError) as caught:
        model.invoke("hello")
    assert _secretless(caught.value)


def _secretless(exc: BaseException) -> bool:
    """The exception, its cause chain and their reprs never hold the key."""
    seen: BaseException | None = exc
    while seen is not None:
        if SECRET in str(seen) or SECRET in repr(seen):
            return False
        seen = seen.__cause__ or seen.__context__
    return True
