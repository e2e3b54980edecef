"""Faults on real HTTP: one failing member, every member failing.

Each fault of the simulator hits one member, called through `ChatOpenAI` or
`ChatOpenRouter`, with the member streaming its answer (`streaming=True`, so that broken
streams and mid-stream error chunks are real SSE) or not. The fusion still answers, and the
report names the failure (status and error); accounting still matches `/stats`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2e_helpers import (
    ANSWERS,
    CLIENTS,
    ENTRIES,
    PROMPT,
    SYNTHESIS,
    assert_matches_stats,
    call,
    chat,
)
from entries import wait_for

from langchain_fusion import FusionChatModel, FusionError, JudgeError, NotEnoughAnswersError
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("warm_async")]

MEMBER_TIMEOUT = 0.8  # the hang lasts 2 s


def expected_error(fault: str, client: str, streaming: bool) -> tuple[str, list[str]]:
    """The status, and texts the error must contain (`a|b`: either), for `fault` through
    `client`, with the member streaming or not."""
    openai = client == "openai"
    if fault in ("429", "500", "502", "503"):
        message = "slow down (e2e)" if fault == "429" else f"boom {fault} (e2e)"
        sdk = {
            "429": "TooManyRequestsResponseError",
            "500": "InternalServerResponseError",
            "502": "BadGatewayResponseError",
            "503": "ServiceUnavailableResponseError",
        }[fault]
        return "error", [f"Error code: {fault}" if openai else sdk, message]
    if fault == "hang":
        return "timeout", [f"no answer within {MEMBER_TIMEOUT:g}s"]
    if fault == "malformed":
        return "error", ["JSONDecodeError" if openai else "ResponseValidationError"]
    if fault == "broken":
        if openai and streaming:
            # An openai stream lets httpx's RemoteProtocolError through when the cut comes
            # while it iterates, and wraps it when it comes while the SDK still holds the
            # request: which one depends on timing.
            return "error", ["RemoteProtocolError|OpenAIConnectionError"]
        if openai:
            return "error", ["OpenAIConnectionError: Connection error."]
        return "error", ["RemoteProtocolError", "peer closed connection"]
    if fault == "errchunk":
        if openai:  # the openai SDK raises on an SSE event or a body that carries `error`
            return "error", ["upstream died (e2e)"]
        # ChatOpenRouter ends normally with finish_reason "error" (streaming or not): the
        # fusion must see a failure there, not a short answer.
        return "error", ["finish_reason error"]
    raise AssertionError(fault)


def contains(error: str | None, text: str) -> bool:
    """Whether `error` contains `text`, or one of its `|`-separated alternatives."""
    return error is not None and any(part in error for part in text.split("|"))


FAULTS = ["429", "500", "502", "503", "hang", "malformed", "broken", "errchunk"]
FAULT_KIND = {
    "429": "rate_limit",
    "500": "server_error",
    "502": "server_error",
    "503": "server_error",
    "hang": "hang",
    "malformed": "malformed_json",
    "broken": "broken_stream",
    "errchunk": "error_chunk",
}

# The sync driver with members answering in one body, the async driver with members
# streaming (SSE): between them, every client code path a fault can take.
WAYS = [("invoke", False), ("ainvoke", True)]


@pytest.mark.parametrize(("entry", "streaming"), WAYS, ids=["sync-plain", "async-streaming"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fault", FAULTS)
async def test_one_failing_member_is_reported_and_the_fusion_answers(
    sim: Simulator, fault: str, client: str, entry: str, streaming: bool
) -> None:
    name = f"e2e/{fault}"
    timeout: dict[str, Any] = {}
    if fault == "hang" and entry == "invoke":
        # The sync driver cannot close a straggler's connection (see test_e2e_quorum.py):
        # the client's own timeout ends the abandoned request soon after the fusion's.
        timeout = {"timeout": 1.5} if client == "openai" else {"timeout_ms": 1500}
    pool = [
        chat(sim, client, "e2e/ada"),
        chat(sim, client, name, streaming=streaming, **timeout),
        chat(sim, client, "e2e/bob"),
    ]
    fusion = FusionChatModel(
        pool=pool,
        judge=chat(sim, client, "e2e/judge"),
        mode="best_of",
        member_timeout=MEMBER_TIMEOUT,
        seed=3,
    )

    started = time.monotonic()
    msg = await call(entry, fusion)
    elapsed = time.monotonic() - started

    assert msg.content == ANSWERS["e2e/bob"]
    report = msg.response_metadata["fusion"]
    assert report["winner"] == "e2e/bob"
    failed = report["candidates"][1]
    status, texts = expected_error(fault, client, streaming)
    assert (failed["name"], failed["status"]) == (name, status)
    for text in texts:
        assert contains(failed["error"], text)
    assert [c["status"] for c in report["candidates"]] == ["ok", status, "ok"]
    assert "sk-test" not in repr(report)

    row = sim.stats().models[name]
    assert row.requests == 1  # no retry anywhere
    assert row.stream_requests == int(streaming)
    assert row.faults == {FAULT_KIND[fault]: 1}
    assert row.completed == 0
    if fault == "hang":
        assert elapsed < 1.95  # the fusion did not wait for the 2 s hang
        # Closed by the fusion (async: the member's task is cancelled) or by the client's
        # own timeout (sync), never answered.
        await wait_for(lambda: sim.stats().models[name].abandoned == 1)
        assert sim.stats().models[name].in_flight == 0
    sync_hang = fault == "hang" and entry == "invoke"
    assert failed.get("abandoned", False) is sync_hang
    assert_matches_stats(report, msg.usage_metadata, sim, given_up=fault == "hang")


# Each mode through another entry point.
MODE_ENTRIES = [
    ("best_of", "invoke"),
    ("merge", "astream"),
    ("debate", "stream"),
    ("vote", "ainvoke"),
]


@pytest.mark.parametrize(("mode", "entry"), MODE_ENTRIES)
async def test_a_mid_stream_error_chunk_is_a_member_failure_in_every_mode(
    sim: Simulator, mode: str, entry: str
) -> None:
    """A ChatOpenRouter member streams two tokens, then an error chunk with
    `finish_reason: "error"`: ChatOpenRouter raises nothing, the fusion must not take the
    two tokens for an answer."""
    pool = [
        chat(sim, "openrouter", "e2e/ada"),
        chat(sim, "openrouter", "e2e/bob"),
        chat(sim, "openrouter", "e2e/errchunk", streaming=True),
        chat(sim, "openrouter", "e2e/cy"),
    ]
    fusion = FusionChatModel(
        pool=pool, judge=chat(sim, "openrouter", "e2e/judge"), mode=mode, seed=3, debate_rounds=1
    )

    msg = await call(entry, fusion)

    report = msg.response_metadata["fusion"]
    failed = report["candidates"][2]
    assert (failed["status"], failed["error"]) == ("error", "finish_reason error")
    assert failed["calls"] == 1  # out of the debate after its failed first answer
    assert msg.content == (ANSWERS["e2e/bob"] if mode in ("best_of", "vote") else SYNTHESIS)
    assert "e2e/errchunk" not in report.get("labels", {}).values()  # never a candidate
    row = sim.stats().models["e2e/errchunk"]
    assert (row.faults, row.unbilled_completion_tokens) == ({"error_chunk": 1}, 2)
    assert_matches_stats(report, msg.usage_metadata, sim)


ALL_FAILING = [
    ("openai", "e2e/429", False),
    ("openrouter", "e2e/503", False),
    ("openrouter", "e2e/errchunk", True),
    ("openai", "e2e/broken", True),
    ("openai", "e2e/malformed", False),
]


@pytest.mark.parametrize("entry", ENTRIES)
async def test_every_member_failing_raises_with_every_cause(sim: Simulator, entry: str) -> None:
    pool = [chat(sim, client, name, streaming=streaming) for client, name, streaming in ALL_FAILING]
    fusion = FusionChatModel(
        pool=pool, judge=chat(sim, "openrouter", "e2e/judge"), mode="merge", seed=3
    )

    with pytest.raises(NotEnoughAnswersError) as caught:
        await call(entry, fusion)

    error = caught.value
    assert isinstance(error, FusionError)
    names = [name for _, name, _ in ALL_FAILING]
    assert list(error.errors) == names
    expected = {
        name: expected_error(name.removeprefix("e2e/"), client, streaming)[1]
        for client, name, streaming in ALL_FAILING
    }
    for name, texts in expected.items():
        for text in texts:
            assert contains(error.errors[name], text)
            assert contains(str(error), text)  # the message names every cause too
    assert error.answers == {}
    report = error.report
    assert [(c["name"], c["status"]) for c in report["candidates"]] == [
        (name, "error") for name in names
    ]
    assert {c["name"]: c["error"] for c in report["candidates"]} == error.errors
    assert report["judge"]["status"] == "skipped"
    assert sim.stats().models["e2e/judge"].requests == 0
    assert_matches_stats(report, None, sim)


async def test_every_member_timing_out_raises_with_every_cause(sim: Simulator) -> None:
    """Hangs through both clients, cut by member_timeout; the async driver closes both."""
    pool = {
        "hang-openai": chat(sim, "openai", "e2e/hang"),
        "slow-openrouter": chat(sim, "openrouter", "e2e/slow"),
    }
    fusion = FusionChatModel(pool=pool, judge=chat(sim, "openai", "e2e/judge"), member_timeout=0.3)

    with pytest.raises(NotEnoughAnswersError) as caught:
        await fusion.ainvoke(PROMPT)

    assert caught.value.errors == {
        "hang-openai": "no answer within 0.3s",
        "slow-openrouter": "no answer within 0.3s",
    }
    assert [c["status"] for c in caught.value.report["candidates"]] == ["timeout", "timeout"]
    await wait_for(lambda: sim.stats().totals.abandoned == 2)
    assert sim.stats().totals.in_flight == 0


@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
async def test_an_error_chunk_in_the_judges_synthesis(sim: Simulator, entry: str) -> None:
    """Merge's synthesis (the judge's second call) ends in an error chunk after two tokens.

    Not streaming, the judge's failure falls back to the first member's answer, flagged.
    Streaming, two tokens of the synthesis were already sent: they cannot be taken back,
    so the fusion raises `JudgeError`, carrying the members' answers and the report.
    """
    pool = [chat(sim, "openrouter", name) for name in ("e2e/ada", "e2e/bob", "e2e/cy")]
    fusion = FusionChatModel(
        pool=pool, judge=chat(sim, "openrouter", "e2e/judge-errchunk"), mode="merge", seed=3
    )

    if entry == "ainvoke":
        msg = await fusion.ainvoke(PROMPT)
        report = msg.response_metadata["fusion"]
        assert msg.content == ANSWERS["e2e/ada"]
        assert (report["judge_fallback"], report["judge_error"]) == (True, "finish_reason error")
        assert report["winner"] == "e2e/ada"
        assert report["judge"]["status"] == "error"
        assert_matches_stats(report, msg.usage_metadata, sim)
    else:
        chunks: list[Any] = []
        with pytest.raises(JudgeError) as caught:
            async for chunk in fusion.astream(PROMPT):
                chunks.append(chunk)
        assert "".join(str(c.content) for c in chunks) == "Keep a "  # two tokens
        assert set(caught.value.answers) == {"e2e/ada", "e2e/bob", "e2e/cy"}
        assert caught.value.report["judge"]["status"] == "error"
        assert_matches_stats(caught.value.report, None, sim)
    row = sim.stats().models["e2e/judge-errchunk"]
    assert (row.requests, row.faults) == (2, {"error_chunk": 1})
