"""Retries under faults, within the fusion's deadline; the fault matrix through sync entries.

Retries: members and judges that retry, OpenRouter slugs (`ChatOpenAICompatible`: at most
`max_retries`, a `Retry-After` honoured only when no longer than `max_retry_delay` and when
the retry starts before the fusion's deadline) and `ChatOpenAI` with `max_retries` (its SDK
honours `retry-after-ms`), against `rel/r-*` models that fail their FIRST request only (a
429 with `Retry-After`, a 500, 502 or 503), so that a retry would succeed and a missing one
shows. Through `ainvoke`, `astream`, `invoke` and `stream` (`ChatOpenAI` members streaming
SSE in the streamed ones):

- a member or the judge failing once is retried and answers: no failure in the report, no
  fallback, its answer in the fused one, the wait at least the `Retry-After`;
- a `Retry-After` longer than `max_retry_delay`, or one that would start the retry after the
  deadline, is not waited for: the call fails at once (an `error`, not a timeout), its
  error naming the 429 and the reason, and the fusion answers from the others;
- a `ChatOpenAI` member sleeping out its `Retry-After` past the deadline is cut there (a
  sync fusion abandons its thread, and says so), and no call starts after the deadline (a
  sync fusion still starts the judge's: a bug, `xfail`);
- per model, calls (a retried call is one call), tokens and cost in the report equal what
  the simulator billed: the failed attempts bill nothing.

The fault matrix through `invoke` and `stream` (`test_rel_fault_matrix.run_case`, the async
matrix's own checks): 429, 500, a hang, malformed JSON, a broken stream and a mid-stream
error chunk, on one member, all members and the judge, in best_of and merge.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from entries import wait_for
from matrix import IN_E2E, TARGET_MODES, Case
from rel_helpers import ANSWERS, assert_usage_matches, call, openai_chat, wait_idle
from test_rel_fault_matrix import run_case

from langchain_fusion import FusionChatModel
from langchain_fusion.providers import ChatOpenAICompatible
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("warm_async")]

KEY = "sk-test"
ENTRIES = ("ainvoke", "astream", "invoke", "stream")
#: The fusion's deadline where no test waits for it, and the short one where one does.
DEADLINE = 8.0
SHORT_DEADLINE = 1.0
#: What `rel/r-429late` and `rel/r-judge429late` ask to wait: past `SHORT_DEADLINE`.
LATE_RETRY_AFTER = 1.5

#: merge over the answers of ada, bob and cy: the judge's preferred (rollback) answer, then
#: every other distinct sentence (the simulated judge's synthesis).
SYNTHESIS = (
    "Keep a tested rollback path until the new system has run a full cycle. Keep downtime "
    "short. Freeze writes during the migration window. Rehearse the cutover on a copy of "
    "production data."
)


def fusion(sim: Simulator, pool: dict[str, Any], judge: Any = "rel/judge", **settings: Any) -> Any:
    """A fusion whose slugs go to the simulator's OpenRouter API."""
    settings.setdefault("deadline", DEADLINE)
    return FusionChatModel(
        pool=pool, judge=judge, api_key=KEY, base_url=sim.openrouter_base_url, seed=3, **settings
    )


def streams(entry: str) -> bool:
    return entry in ("astream", "stream")


def retrying(sim: Simulator, model: str, entry: str, **kwargs: Any) -> Any:
    """A `ChatOpenAI` that retries twice, streaming (SSE) when the fusion streams."""
    kwargs.setdefault("streaming", streams(entry))
    return openai_chat(sim, model, max_retries=2, **kwargs)


def member(client: str, sim: Simulator, model: str, entry: str) -> Any:
    """`model` as a slug (`ChatOpenAICompatible`, two retries by default) or a `ChatOpenAI`."""
    return model if client == "slug" else retrying(sim, model, entry)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["candidates"]}


def cost_known(sim: Simulator, entry: str, via_openai: set[str]) -> frozenset[str] | None:
    """Models whose cost the report must know exactly: all, but when the fusion streams not
    those served through ChatOpenAI (it drops OpenRouter's cost when streaming)."""
    if not streams(entry):
        return None
    return frozenset(sim.stats().models) - via_openai


def retry_error(reason: str) -> str:
    """The report's error of a 429 not retried, for `reason`."""
    return r"ProviderError: HTTP 429 from 127\.0\.0\.1: slow down \(rel\) \(" + reason + r"\)"


# -- failing once, retried -----------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("client", ["slug", "openai"])
async def test_a_rate_limited_member_is_retried_after_its_retry_after(
    sim: Simulator, client: str, entry: str
) -> None:
    flaky = "rel/r-429once"  # 429 + Retry-After 0.2 s, then cy's answer
    pool = {
        "ada": "rel/ada",
        "bob": retrying(sim, "rel/bob", entry),
        "flaky": member(client, sim, flaky, entry),
    }

    msg = await call(entry, fusion(sim, pool, mode="merge"))

    report = msg.response_metadata["fusion"]
    assert msg.content == SYNTHESIS  # the retried member's answer is in the fused one
    assert {name: (c["status"], c["calls"], c["error"]) for name, c in by_name(report).items()} == {
        name: ("ok", 1, None) for name in pool
    }
    assert (report["judge"]["status"], report["judge_fallback"]) == ("ok", False)
    assert by_name(report)["flaky"]["latency_s"] >= 0.2  # it waited for the Retry-After
    row = sim.stats().models[flaky]
    assert (row.requests, row.completed, row.faults) == (2, 1, {"rate_limit": 1})
    via_openai = {"rel/bob"} | ({flaky} if client == "openai" else set())
    assert_usage_matches(
        [report],
        sim,
        cost_known=cost_known(sim, entry, via_openai),
        usage=msg.usage_metadata,
        retried={flaky: 1},
    )


#: A 500, a 502 and a 503 on the first request of three members (the answers of ada, bob
#: and cy); each entry point, the mode and which of them is a ChatOpenAI alternating.
SERVER_ERRORS = {"s500": "rel/r-500once", "s502": "rel/r-502once", "s503": "rel/r-503once"}


@pytest.mark.parametrize(
    ("entry", "mode", "via_openai"),
    [
        ("ainvoke", "best_of", "s502"),
        ("astream", "merge", "s500"),
        ("invoke", "merge", "s503"),
        ("stream", "best_of", "s502"),
    ],
)
async def test_a_server_error_on_the_first_request_is_retried(
    sim: Simulator, entry: str, mode: str, via_openai: str
) -> None:
    pool = {
        name: member("openai" if name == via_openai else "slug", sim, model, entry)
        for name, model in SERVER_ERRORS.items()
    }

    msg = await call(entry, fusion(sim, pool, mode=mode))

    report = msg.response_metadata["fusion"]
    assert [(c["status"], c["calls"], c["error"]) for c in report["candidates"]] == [
        ("ok", 1, None)
    ] * 3
    if mode == "best_of":
        assert msg.content == ANSWERS["rel/bob"]
        assert report["winner"] == "s502"
    else:
        assert msg.content == SYNTHESIS
    assert (report["judge"]["status"], report["judge_fallback"]) == ("ok", False)
    for model in SERVER_ERRORS.values():
        row = sim.stats().models[model]
        assert (row.requests, row.completed, row.faults) == (2, 1, {"server_error": 1}), model
    assert_usage_matches(
        [report],
        sim,
        cost_known=cost_known(sim, entry, {SERVER_ERRORS[via_openai]}),
        usage=msg.usage_metadata,
        retried=dict.fromkeys(SERVER_ERRORS.values(), 1),
    )


#: Which judge fails once, through which entries: a 429 on its first call (merge's
#: comparison), or a 503 on its second (the synthesis, streamed by `astream` and `stream`).
JUDGE_FAULTS = [
    ("rel/r-judge429once", "ainvoke"),
    ("rel/r-judge429once", "invoke"),
    ("rel/r-judge503second", "astream"),
    ("rel/r-judge503second", "stream"),
]


@pytest.mark.parametrize(("judge_model", "entry"), JUDGE_FAULTS)
@pytest.mark.parametrize("client", ["slug", "openai"])
async def test_a_judge_failing_once_is_retried_without_fallback(
    sim: Simulator, client: str, judge_model: str, entry: str
) -> None:
    pool = {"ada": "rel/ada", "bob": "rel/bob", "cy": "rel/cy"}
    # The judge keeps its client's default: its synthesis streams when the fusion streams.
    judge = judge_model if client == "slug" else openai_chat(sim, judge_model, max_retries=2)

    msg = await call(entry, fusion(sim, pool, judge=judge, mode="merge"))

    report = msg.response_metadata["fusion"]
    assert msg.content == SYNTHESIS
    verdict = report["judge"]
    assert (verdict["status"], verdict["calls"], verdict["error"]) == ("ok", 2, None)
    assert report["judge_fallback"] is False
    assert report.get("judge_error") is None
    kind = "rate_limit" if "429" in judge_model else "server_error"
    if kind == "rate_limit":
        assert verdict["latency_s"] >= 0.2  # it waited for the Retry-After
    row = sim.stats().models[judge_model]
    assert (row.requests, row.completed, row.faults) == (3, 2, {kind: 1})
    assert_usage_matches(
        [report],
        sim,
        cost_known=cost_known(sim, entry, {judge_model} if client == "openai" else set()),
        usage=msg.usage_metadata,
        retried={judge_model: 1},
    )


# -- not retried: too long a wait, or past the deadline -----------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_retry_after_beyond_max_retry_delay_is_not_waited_for(
    sim: Simulator, entry: str
) -> None:
    # Retry-After 30 s against the slug's default max_retry_delay (10 s), and 0.2 s against
    # a member allowed 0.1 s: both would answer if they retried.
    short = ChatOpenAICompatible(
        model="rel/r-429once",
        base_url=sim.openrouter_base_url,
        api_key=KEY,
        max_retry_delay=0.1,
        streaming=streams(entry),
    )
    pool = {"ada": "rel/ada", "bob": "rel/bob", "long": "rel/r-429long", "short": short}

    started = time.monotonic()
    msg = await call(entry, fusion(sim, pool, mode="best_of"))
    elapsed = time.monotonic() - started

    assert elapsed < DEADLINE
    report = msg.response_metadata["fusion"]
    assert (msg.content, report["winner"]) == (ANSWERS["rel/bob"], "bob")
    candidates = by_name(report)
    assert [c["status"] for c in candidates.values()] == ["ok", "ok", "error", "error"]
    reasons = {
        "long": r"Retry-After 30s exceeds max_retry_delay 10s",
        "short": r"Retry-After 0\.2s exceeds max_retry_delay 0\.1s",
    }
    for name, reason in reasons.items():
        assert re.fullmatch(retry_error(reason), candidates[name]["error"]), candidates[name]
        assert "abandoned" not in candidates[name]
    assert (report["judge"]["status"], report["judge_fallback"]) == ("ok", False)
    wait_idle(sim)
    for model in ("rel/r-429long", "rel/r-429once"):
        row = sim.stats().models[model]
        assert (row.requests, row.faults) == (1, {"rate_limit": 1}), model
    assert_usage_matches([report], sim, usage=msg.usage_metadata)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_judge_retry_after_beyond_max_retry_delay_falls_back_at_once(
    sim: Simulator, entry: str
) -> None:
    pool = {"ada": "rel/ada", "bob": "rel/bob", "cy": "rel/cy"}

    started = time.monotonic()
    msg = await call(entry, fusion(sim, pool, judge="rel/r-judge429long", mode="best_of"))
    elapsed = time.monotonic() - started

    assert elapsed < DEADLINE
    report = msg.response_metadata["fusion"]
    assert msg.content == ANSWERS["rel/ada"]  # the first member in pool order
    assert [c["status"] for c in report["candidates"]] == ["ok"] * 3
    judge = report["judge"]
    assert (judge["status"], judge["calls"], report["judge_fallback"]) == ("error", 1, True)
    assert re.fullmatch(retry_error("Retry-After 30s exceeds max_retry_delay 10s"), judge["error"])
    assert report["judge_error"] == judge["error"]
    wait_idle(sim)
    row = sim.stats().models["rel/r-judge429long"]
    assert (row.requests, row.faults) == (1, {"rate_limit": 1})
    assert_usage_matches([report], sim, usage=msg.usage_metadata)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("target", ["member", "judge"])
async def test_a_retry_that_would_start_after_the_deadline_is_not_made(
    sim: Simulator, target: str, entry: str
) -> None:
    # Retry-After 1.5 s fits max_retry_delay (10 s), not the 1 s deadline: the call fails at
    # once. The judge's is its second call, merge's synthesis (streamed by astream/stream).
    if target == "member":
        failing = "rel/r-429late"
        pool = {"ada": "rel/ada", "bob": "rel/bob", "late": failing}
        run = fusion(sim, pool, mode="best_of", deadline=SHORT_DEADLINE)
    else:
        failing = "rel/r-judge429late"
        pool = {"ada": "rel/ada", "bob": "rel/bob", "cy": "rel/cy"}
        run = fusion(sim, pool, judge=failing, mode="merge", deadline=SHORT_DEADLINE)

    started = time.monotonic()
    msg = await call(entry, run)
    elapsed = time.monotonic() - started

    assert elapsed < SHORT_DEADLINE
    report = msg.response_metadata["fusion"]
    failed = by_name(report)["late"] if target == "member" else report["judge"]
    # An error at once, not a timeout at the deadline, and nothing left running.
    assert failed["status"] == "error"
    reason = r"a retry in 1\.5s would start after the fusion's deadline"
    assert re.fullmatch(retry_error(reason), failed["error"]), failed
    assert "abandoned" not in failed
    if target == "member":
        assert (msg.content, report["winner"]) == (ANSWERS["rel/bob"], "bob")
        assert [c["status"] for c in report["candidates"]] == ["ok", "ok", "error"]
        assert (report["judge"]["status"], report["judge_fallback"]) == ("ok", False)
    else:
        assert msg.content == ANSWERS["rel/ada"]
        assert [c["status"] for c in report["candidates"]] == ["ok"] * 3
        assert (failed["calls"], report["judge_fallback"]) == (2, True)
        assert report["judge_error"] == failed["error"]
    wait_idle(sim)
    row = sim.stats().models[failing]
    assert (row.requests, row.faults) == (1 if target == "member" else 2, {"rate_limit": 1})
    assert_usage_matches([report], sim, usage=msg.usage_metadata)


class CalledAfterTheDeadline(AssertionError):
    """A request reached the simulator after the fusion's deadline had passed."""


@pytest.mark.parametrize("entry", ["ainvoke", "invoke"])
async def test_a_chatopenai_member_waiting_out_a_retry_after_is_cut_at_the_deadline(
    sim: Simulator, entry: str
) -> None:
    # ChatOpenAI knows nothing of the deadline: its SDK sleeps the 1.5 s Retry-After, and
    # the fusion cuts the member at its 1 s deadline; the judge then has no time left.
    late = "rel/r-429late"
    pool = {
        "ada": retrying(sim, "rel/ada", entry),
        "bob": retrying(sim, "rel/bob", entry),
        "late": retrying(sim, late, entry),
    }
    run = fusion(
        sim, pool, judge=openai_chat(sim, "rel/judge"), mode="best_of", deadline=SHORT_DEADLINE
    )

    started = time.monotonic()
    msg = await call(entry, run)
    elapsed = time.monotonic() - started

    assert elapsed < SHORT_DEADLINE + 1.0  # nothing waited past the deadline
    report = msg.response_metadata["fusion"]
    assert msg.content == ANSWERS["rel/ada"]  # judge timed out: the first member's answer
    candidates = by_name(report)
    assert [c["status"] for c in candidates.values()] == ["ok", "ok", "timeout"]
    assert candidates["late"]["error"] == "fusion deadline reached"
    assert (report["judge"]["status"], report["judge"]["error"]) == (
        "timeout",
        "fusion deadline reached",
    )
    assert report["judge_fallback"] is True
    sync = entry == "invoke"
    # A sync fusion cannot stop the member's thread: it is abandoned, and the report says
    # that its cost may be incomplete (the SDK's retry goes out after the deadline).
    assert candidates["late"].get("abandoned", False) is sync
    if sync:
        assert report["cost_complete"] is False

    # Past the moment of the retry: an async fusion cancelled the wait, so no retry was made.
    await asyncio.sleep(max(0.0, started + LATE_RETRY_AFTER + 0.3 - time.monotonic()))
    await wait_for(lambda: sim.stats().totals.in_flight == 0)
    stats = sim.stats()
    if not sync:
        assert (stats.models[late].requests, stats.models[late].faults) == (1, {"rate_limit": 1})
        # The judge's call, due after the deadline, was never made: reported, not counted.
        assert report["judge"]["calls"] == 0
        assert "rel/judge" not in report["usage_by_model"]
        known = cost_known(sim, entry, {"rel/ada", "rel/bob", late})
        assert_usage_matches([report], sim, cost_known=known, usage=msg.usage_metadata)
    # No call starts once the deadline has passed: the judge got no request.
    if stats.models["rel/judge"].requests:
        raise CalledAfterTheDeadline(f"the judge got {stats.models['rel/judge']}")


# -- the fault matrix through the sync entry points -----------------------------------------

SYNC_FAULTS = ("429", "500", "hang", "malformed", "broken", "errchunk")


def sync_mode(target: str, fault: str, streaming: bool) -> str:
    """The mode of a case: one per fault, best_of and merge in turn by pairs of faults, so
    that `Case.client` alternates too (each fault through both clients, one per entry
    point). One member's best_of through `invoke` is in tests/e2e: merge instead."""
    mode = "merge" if SYNC_FAULTS.index(fault) // 2 % 2 else "best_of"
    return "merge" if (target, mode) in IN_E2E and not streaming else mode


SYNC_CASES = [
    Case(target, fault, sync_mode(target, fault, streaming), streaming)
    for target in TARGET_MODES
    for fault in SYNC_FAULTS
    for streaming in (False, True)
]


@pytest.mark.parametrize("case", SYNC_CASES, ids=[c.id for c in SYNC_CASES])
async def test_fault_matrix_through_invoke_and_stream(sim: Simulator, case: Case) -> None:
    """The async matrix's case and checks, through `invoke` (plain) or `stream` (members
    streaming, the judge's answer streamed). A hang's thread is abandoned (flagged in the
    report) and its request ended by the failing client's own timeout."""
    await run_case(sim, case, "stream" if case.streaming else "invoke")
