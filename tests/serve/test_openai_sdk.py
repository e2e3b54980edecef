"""The official OpenAI SDK against `fusion serve`: sync, async, streaming, tools, structured
output; the usage in every response is what the simulator served."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel
from serve_helpers import Served

from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(60)

PROMPT = "Review this migration plan."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def client(server: Served) -> OpenAI:
    return OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=20)


def assert_usage_is_what_was_served(usage, sim: Simulator) -> None:
    stats = sim.stats().totals
    assert usage.prompt_tokens == stats.prompt_tokens > 0
    assert usage.completion_tokens == stats.completion_tokens > 0
    assert usage.total_tokens == stats.total_tokens
    assert usage.model_extra["cost"] == pytest.approx(stats.cost, rel=1e-9, abs=1e-12)


def test_models_lists_the_virtual_models(server: Served):
    ids = [m.id for m in client(server).models.list()]
    assert {"fusion/merge", "fusion/debate", "fusion/best_of", "fusion/vote"} <= set(ids)


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate", "vote"])
def test_sync_completion_every_mode(server: Served, sim: Simulator, mode: str):
    completion = client(server).chat.completions.create(
        model=f"fusion/{mode}", messages=[{"role": "user", "content": PROMPT}]
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert "rollback" in (choice.message.content or "")  # the judge prefers ada's answer
    assert completion.model == f"fusion/{mode}"
    report = completion.model_extra["fusion"]
    assert report["mode"] == mode
    assert report["id"] and completion.id == f"chatcmpl-{report['id']}"
    assert_usage_is_what_was_served(completion.usage, sim)


async def test_async_completion(server: Served, sim: Simulator):
    async with AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0) as aclient:
        completion = await aclient.chat.completions.create(
            model="fusion/merge",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": PROMPT},
            ],
        )
    assert completion.choices[0].message.content
    assert_usage_is_what_was_served(completion.usage, sim)


def test_streaming_with_usage(server: Served, sim: Simulator):
    stream = client(server).chat.completions.create(
        model="fusion/merge",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert "rollback" in text
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    report = chunks[-1].model_extra["fusion"]
    assert report["mode"] == "merge"
    assert chunks[0].id == f"chatcmpl-{report['id']}"
    assert_usage_is_what_was_served(chunks[-1].usage, sim)
    page = httpx.get(f"{server.base_url}/fusions/{report['id']}", timeout=10)
    assert text in page.text  # the streamed answer is kept with its report


async def test_async_streaming_without_usage_chunk(server: Served):
    async with AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model="fusion/debate", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["fusion"]["mode"] == "debate"


@pytest.mark.parametrize("mode", ["best_of", "merge"])
def test_tools(server: Served, sim: Simulator, mode: str):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    completion = client(server).chat.completions.create(
        model=f"fusion/{mode}", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert_usage_is_what_was_served(completion.usage, sim)
    if mode != "best_of":
        return
    # the tool result goes back (the simulated members answer from it), and best_of answers
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 18 C"},
    ]
    answer = client(server).chat.completions.create(
        model=f"fusion/{mode}", messages=messages, tools=[WEATHER_TOOL]
    )
    assert answer.choices[0].finish_reason == "stop"


def test_streamed_tool_calls(server: Served):
    stream = client(server).chat.completions.create(
        model="fusion/best_of",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = list(stream)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


class Verdict(BaseModel):
    answer: str
    confidence: float


@pytest.mark.parametrize("mode", ["best_of", "merge"])
def test_structured_output_with_response_format(server: Served, sim: Simulator, mode: str):
    completion = client(server).chat.completions.parse(
        model=f"fusion/{mode}",
        messages=[{"role": "user", "content": "What is 17*23?"}],
        response_format=Verdict,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Verdict)
    assert_usage_is_what_was_served(completion.usage, sim)


def test_json_object(server: Served):
    completion = client(server).chat.completions.create(
        model="fusion/merge",
        messages=[{"role": "user", "content": "What is 17*23? Answer in JSON."}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_structured_output_streamed(server: Served):
    stream = client(server).chat.completions.create(
        model="fusion/merge",
        messages=[{"role": "user", "content": "What is 17*23?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "Verdict", "schema": Verdict.model_json_schema()},
        },
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    Verdict.model_validate_json(text)


def test_images_reach_the_members(server: Served, sim: Simulator):
    pixel = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    completion = client(server).chat.completions.create(
        model="fusion/merge",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this image."},
                    {"type": "image_url", "image_url": {"url": pixel}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content
    assert sim.stats().totals.images >= 3
