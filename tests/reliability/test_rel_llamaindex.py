"""`FusionLLM` (LlamaIndex) under faults, cancellation and load, over real HTTP.

Members and judge are LlamaIndex `OpenAILike` clients of the simulator (no retries), as in
`tests/llamaindex/test_li_sim.py`; the fusion's engine is the one `FusionChatModel` runs, so
these tests check what the LlamaIndex face adds: its methods (`achat`, `astream_chat`, the
sync `complete`), its response (`additional_kwargs["fusion"]`, `raw["usage"]`), the errors
it lets through (`NotEnoughAnswersError`, `JudgeError`: langchain_fusion's own classes),
and the cancellation of its calls through LlamaIndex's clients and instrumentation.

- Faults: a representative subset of the fault matrix (429, 500, a hang, malformed JSON, a
  cut body or stream, an error chunk) on one member, on all members and on the judge (its
  first call; merge's streamed synthesis too), each mode in turn. The fusion answers or
  raises the documented error; the report records each failure with its status and error
  type; per model, calls and tokens in the report(s) equal what the simulator billed, and
  so does the response's `raw["usage"]` (cost included: `OpenAILike` keeps `usage.cost`).
- Cancellation: `task.cancel()` while the members answer, while the judge answers, and
  while the judge streams: every request in flight is abandoned within a second and no
  task is left; so does a reader that closes the async stream (`aclose()`). A sync reader
  that closes the stream (`close()`) leaves the judge's request running: a strict xfail
  for a dependency bug (see `LEFT_OPEN`).
- Load: 30 concurrent fusions on the `load/*` members (about 10% of calls faulted), every
  mode, half streamed: each ends with an answer or `NotEnoughAnswersError`, every faulted
  call is a failure in a report, and per-model usage and cost equal the simulator's.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from entries import wait_for
from li_clients import openai_like_client
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from matrix import HANG_TIMEOUT, MID_STREAM
from rel_helpers import (
    ANSWERS,
    MEMBERS,
    PROMPT,
    PROMPTLY,
    assert_cancelling_abandons_every_call,
    assert_every_fault_reported,
    assert_fault_report,
    assert_fault_served,
    assert_the_stalled_judge_was_left,
    assert_usage_matches,
    build_fault_case,
    faults_by_kind,
    relay_and_cancel,
    run_concurrently,
)

import langchain_fusion
from langchain_fusion.sim import Simulator
from llamaindex_fusion import FusionLLM, FusionRunError, JudgeError, NotEnoughAnswersError

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

MODES = ("best_of", "merge", "debate", "vote")

_CLIENTS: dict[tuple[str, str], Any] = {}


def li(sim: Simulator, model: str) -> Any:
    """A LlamaIndex `OpenAILike` client of the simulator: no retries, a 10 s timeout.

    Shared by the session (each builds its own HTTP clients, bound to the session loop).
    """
    key = (sim.openai_base_url, model)
    if key not in _CLIENTS:
        _CLIENTS[key] = openai_like_client(sim.openai_base_url, model, "sk-test")
    return _CLIENTS[key]


@pytest.fixture(scope="module")
async def warm_li(rel_shared_sim: Simulator) -> None:
    """One sync and one async call per client kind on the session loop (imports, clients)."""
    messages = [ChatMessage(role="user", content="hello")]
    await li(rel_shared_sim, "rel/ada").achat(messages)
    await asyncio.to_thread(li(rel_shared_sim, "rel/ada").chat, messages)


def user(prompt: str = PROMPT) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=prompt)]


def text_of(response: ChatResponse | CompletionResponse) -> str:
    if isinstance(response, ChatResponse):
        return response.message.content or ""
    return response.text


async def fuse(llm: FusionLLM, method: str) -> ChatResponse | CompletionResponse:
    """The last response of one fusion through `method` (sync ones in a worker thread)."""
    if method == "achat":
        return await llm.achat(user())
    if method == "astream_chat":
        responses = [r async for r in await llm.astream_chat(user())]
        assert responses, "the stream yielded nothing"
        # Every streamed response but the last carries no report; the last carries all.
        assert all("fusion" not in r.additional_kwargs for r in responses[:-1])
        return responses[-1]
    if method == "complete":
        return await asyncio.to_thread(llm.complete, PROMPT)
    raise AssertionError(method)


async def streamed(llm: FusionLLM) -> AsyncIterator[ChatResponse]:
    """The responses of one fusion through `astream_chat`, as one async iterator."""
    async for response in await llm.astream_chat(user()):
        yield response


# -- faults ---------------------------------------------------------------------------------

TARGETS = ("one member", "all members", "judge", "synthesis")
FAULTS = ("429", "500", "hang", "malformed", "broken", "errchunk")
#: The error the report must hold for a fault, through `OpenAILike` (the openai SDK's own
#: exceptions, or an error the response carries).
ERRORS = {
    "429": r"^RateLimitError: Error code: 429 .*slow down \(rel\)",
    "500": r"^InternalServerError: Error code: 500 .*boom 500 \(rel\)",
    "hang": r"^(no answer within [0-9.]+s|timed out)$",
    "malformed": r"^JSONDecodeError: ",
    "broken": r"^(APIConnectionError: Connection error|RemoteProtocolError: peer closed)",
    # A plain reply carries the error (finish_reason "error"); a stream's error event makes
    # the SDK raise.
    "errchunk": r"upstream died \(rel\)",
}


@dataclass(frozen=True)
class Case:
    target: str
    fault: str
    method: str
    mode: str

    @property
    def streaming(self) -> bool:
        return self.method == "astream_chat"

    @property
    def expected(self) -> str:
        """`answer`, `fallback`, `NotEnoughAnswersError` or `JudgeError` (the judge's streamed
        answer broke after tokens were sent)."""
        if self.target == "all members":
            return "NotEnoughAnswersError"
        if self.target == "one member":
            return "answer"
        streamed_judge = self.target == "synthesis" or self.mode == "debate"
        if self.streaming and streamed_judge and self.fault in MID_STREAM:
            return "JudgeError"
        return "fallback"

    @property
    def id(self) -> str:
        return f"{self.target.replace(' ', '-')}-{self.fault}-{self.mode}-{self.method}"


def _cases() -> list[Case]:
    cases = []
    for t, target in enumerate(TARGETS):
        for f, fault in enumerate(FAULTS):
            if target == "synthesis":
                # merge's streamed synthesis (the judge's second call): the faults that
                # strike after tokens went out, streamed and not, and a 500.
                if fault in ("429", "hang"):
                    continue
                methods = ["astream_chat", "achat"] if fault in MID_STREAM else ["astream_chat"]
                cases += [Case(target, fault, m, "merge") for m in methods]
                continue
            mode = MODES[(t + f) % len(MODES)]
            cases += [Case(target, fault, m, mode) for m in ("achat", "astream_chat")]
            # The sync face, through `complete`: a status error, a bad body and an error in
            # the body (not a hang, whose request a sync fusion cannot interrupt: it would
            # run on in its thread until the simulator's 5 s).
            if fault in ("500", "malformed", "errchunk"):
                cases.append(Case(target, fault, "complete", mode))
    return cases


CASES = _cases()


def build(sim: Simulator, case: Case) -> tuple[FusionLLM, str, int]:
    """The fusion of `case`, the simulated model that fails, and how many calls it gets."""
    return build_fault_case(
        FusionLLM,
        case.target,
        case.fault,
        case.mode,
        synthesis=case.target == "synthesis",
        timeout=HANG_TIMEOUT if case.fault == "hang" else None,
        healthy={name: li(sim, f"rel/{name}") for name in MEMBERS},
        judge=li(sim, "rel/judge"),
        failing_member=lambda model: li(sim, model),
        failing_judge=lambda model: li(sim, model),
    )


@pytest.mark.usefixtures("warm_li")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_fusionllm_fault(sim: Simulator, case: Case) -> None:
    fusion, failing, calls = build(sim, case)

    started = time.monotonic()
    response: ChatResponse | CompletionResponse | None = None
    error: FusionRunError | None = None
    try:
        response = await fuse(fusion, case.method)
    except (NotEnoughAnswersError, JudgeError) as exc:
        error = exc
    elapsed = time.monotonic() - started
    assert elapsed < (HANG_TIMEOUT + 3.0 if case.fault == "hang" else 3.0), elapsed

    if case.expected in ("answer", "fallback"):
        assert error is None, f"{case.expected} expected, got {error!r}"
        assert response is not None
        report = response.additional_kwargs["fusion"]
    else:
        assert type(error).__name__ == case.expected, repr(error)
        # The LlamaIndex face raises langchain_fusion's own exceptions, report included.
        assert isinstance(error, getattr(langchain_fusion, case.expected))
        assert isinstance(error, langchain_fusion.FusionError)
        report = error.report
    assert report["mode"] == case.mode

    assert_fault_report(
        sim,
        report,
        error,
        text_of(response) if response is not None else None,
        target=case.target,
        mode=case.mode,
        status="timeout" if case.fault == "hang" else "error",
        expected=case.expected,
        error_pattern=ERRORS[case.fault],
    )

    # What the simulator saw: the fault injected once per call, no retry, hung requests
    # closed by the fusion (abandoned), not by the simulator's 5 s.
    await assert_fault_served(sim, failing, calls, target=case.target, fault=case.fault)

    # Every successful call's usage is counted once, equal to what the simulator billed:
    # per model in the report, and in total in the response's raw usage.
    assert_usage_matches([report], sim)
    totals = sim.stats().totals
    assert report["usage"]["input_tokens"] == totals.prompt_tokens
    assert report["usage"]["output_tokens"] == totals.completion_tokens
    if response is not None:
        assert response.raw is not None
        usage = response.raw["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
            totals.prompt_tokens,
            totals.completion_tokens,
        )
        assert usage["cost"] == pytest.approx(totals.cost, rel=1e-9, abs=1e-12)


# -- cancellation ---------------------------------------------------------------------------


@pytest.mark.usefixtures("warm_li")
@pytest.mark.parametrize(
    ("phase", "mode", "method"),
    [
        ("members", "merge", "achat"),
        ("members", "debate", "astream_chat"),
        ("judge", "best_of", "achat"),
        ("judge", "merge", "astream_chat"),
        ("judge", "debate", "astream_chat"),
    ],
)
async def test_cancelling_a_fusionllm_cancels_every_call(
    sim: Simulator, phase: str, mode: str, method: str
) -> None:
    """The members (or the judge) take 3 s; the fusion's task is cancelled meanwhile."""
    if phase == "members":
        pool = {name: li(sim, "rel/slow") for name in ("a", "b", "c")}
        judge, slow, expected = li(sim, "rel/judge"), "rel/slow", 3
    else:
        pool = {name: li(sim, f"rel/{name}") for name in MEMBERS}
        judge, slow, expected = li(sim, "rel/slow-judge"), "rel/slow-judge", 1
    fusion = FusionLLM(pool=pool, judge=judge, mode=mode, seed=1, debate_rounds=1)
    await assert_cancelling_abandons_every_call(sim, fuse(fusion, method), slow, expected, phase)


#: LlamaIndex's OpenAI stream generators iterate the openai SDK's stream without closing
#: it, so closing them leaves the HTTP response open until the garbage collector runs; the
#: stalled answer then runs to its end, billed (by the simulator) but in no report. The
#: fusion reads async streams in a task that it cancels, and a cancellation lands inside
#: httpx's read, which closes the response; a sync read cannot be interrupted.
LEFT_OPEN = pytest.mark.xfail(
    strict=True,
    reason=(
        "dependency: a sync llama-index-llms-openai stream closed early leaves its HTTP "
        "response open until the garbage collector runs (its gen() never closes the openai "
        "Stream, which sits in a reference cycle; run-llama/llama_index#13503); the async "
        "path is read in a task and cancelled, which closes it"
    ),
)


@pytest.mark.usefixtures("warm_li")
@pytest.mark.parametrize(
    ("mode", "how"),
    [
        ("merge", "cancel"),
        ("debate", "cancel"),
        ("merge", "aclose"),
        pytest.param("debate", "sync-close", marks=LEFT_OPEN),
    ],
)
async def test_a_reader_that_leaves_the_fusionllm_stream_closes_the_judges_request(
    sim: Simulator, mode: str, how: str
) -> None:
    """The judge's streamed answer stalls (1.5 s) after two tokens; the reader leaves after
    the first."""
    pool = {name: li(sim, f"rel/{name}") for name in MEMBERS}
    fusion = FusionLLM(
        pool=pool, judge=li(sim, "rel/li-stall-judge"), mode=mode, seed=1, debate_rounds=1
    )
    before = set(asyncio.all_tasks())

    # The request must be closed by the fusion, not by the garbage collector (closing an
    # abandoned generator chain would depend on when a collection happens to run).
    gc.disable()
    try:
        if how == "aclose":
            stream = await fusion.astream_chat(user())
            first = await anext(stream)
            left_at = time.monotonic()
            await stream.aclose()
        elif how == "cancel":  # e.g. a server relaying the stream to a client that went away
            first, left_at = await relay_and_cancel(streamed(fusion))
        else:

            def read_one() -> ChatResponse:
                stream = fusion.stream_chat(user())
                response = next(stream)
                stream.close()
                return response

            left_at = time.monotonic()
            first = await asyncio.to_thread(read_one)

        assert first.delta and first.delta in ANSWERS["rel/bob"]
        judge = "rel/li-stall-judge"
        await wait_for(lambda: sim.stats().models[judge].abandoned == 1, timeout=PROMPTLY)
        assert time.monotonic() - left_at < PROMPTLY
    finally:
        gc.enable()
    await assert_the_stalled_judge_was_left(sim, judge, mode, before)


# -- load -----------------------------------------------------------------------------------

LOAD_FUSIONS = 30
LOAD_MEMBERS = ("load/ada", "load/bob", "load/cy")


@pytest.mark.usefixtures("warm_li")
async def test_concurrent_fusionllm_fusions_with_random_faults(sim: Simulator) -> None:
    pool = {name.split("/")[1]: li(sim, name) for name in LOAD_MEMBERS}
    judge = li(sim, "load/judge")

    async def one(i: int) -> Any:
        fusion = FusionLLM(
            pool=pool, judge=judge, mode=MODES[i % 4], seed=i, debate_rounds=1, deadline=30
        )
        return await fuse(fusion, "astream_chat" if i % 2 else "achat")

    results, elapsed = await run_concurrently(one(i) for i in range(LOAD_FUSIONS))
    reports: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, NotEnoughAnswersError):
            reports.append(result.report)
        else:
            assert not isinstance(result, BaseException)
            assert text_of(result)
            reports.append(result.additional_kwargs["fusion"])
            assert reports[-1]["judge_fallback"] is False  # the judge never fails here
    assert [r["mode"] for r in reports] == [MODES[i % 4] for i in range(LOAD_FUSIONS)]
    # All three members failing is rare (about 1 in 1,000 fusions).
    assert len([r for r in results if isinstance(r, NotEnoughAnswersError)]) <= 2

    await wait_for(lambda: sim.stats().totals.in_flight == 0, timeout=5.0)
    stats = sim.stats()
    requests = sum(stats.models[name].requests for name in LOAD_MEMBERS)
    faults = faults_by_kind(stats, LOAD_MEMBERS)
    assert sum(faults.values()) > 0, (requests, faults)  # the seed does inject faults here
    # Every faulted call, and no other, is a failure in a report, with its error (a hang
    # only delays its answer).
    assert_every_fault_reported(reports, faults)
    # Usage and cost summed over every report are what the simulator billed, per model.
    assert_usage_matches(reports, sim)
    assert elapsed < 20
