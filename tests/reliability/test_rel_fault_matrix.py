"""The fault matrix over real HTTP (see `matrix.py` and docs/reliability.md).

Every simulator fault on one member, on all members and on the judge, in each mode, with
the fusion streaming (`astream`: members with `streaming=True` and the judge's answer as
SSE) or not (`ainvoke`: plain JSON bodies only). In each case the fusion answers (the
judge's failure falls back to the first member's answer, flagged) or raises the documented
error; the report records each failure with its status and error type; the usage of the
calls that succeeded is still counted, equal to what the simulator billed; nothing runs
past the deadline and hung requests are closed by the fusion, not by the simulator.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from matrix import CASES, DEADLINE, DOC, ERRORS, Case, doc_table, markdown_table
from rel_helpers import (
    MEMBERS,
    assert_fault_report,
    assert_fault_served,
    assert_usage_matches,
    build_fault_case,
    call,
    chat,
    openrouter_sdk,
)

from langchain_fusion import FusionChatModel, JudgeError, NotEnoughAnswersError
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("warm_async")]

#: Seconds after which the failing client itself gives up a hung request in a sync fusion:
#: the sync driver cannot interrupt a call's thread, it abandons it (see test_rel_retries.py).
SYNC_HANG_CLIENT_TIMEOUT = 1.0


def build(sim: Simulator, case: Case, sync: bool = False) -> tuple[FusionChatModel, str, int]:
    """The fusion of `case`, the simulated model that fails, and how many calls it gets.

    `sync`: the fusion runs through `invoke`/`stream`; a hanging participant's client then
    has its own short timeout, which ends the request its abandoned thread still holds.
    """
    kw: dict[str, Any] = {"streaming": case.streaming}
    own: dict[str, Any] = {}
    if sync and case.fault == "hang":
        own = (
            {"timeout": SYNC_HANG_CLIENT_TIMEOUT}
            if case.client == "openai"
            else {"client": openrouter_sdk(sim, timeout_ms=int(SYNC_HANG_CLIENT_TIMEOUT * 1000))}
        )
    healthy = {name: chat(sim, "openai", f"rel/{name}", **kw) for name in MEMBERS}
    # The judge keeps its client's default: its answer streams when the fusion streams, its
    # structured calls (verdict, comparison) do not. (With `streaming=True` ChatOpenAI's
    # structured output loses the usage; with `streaming=False` its `astream` yields one
    # AIMessage: see test_rel_accounting.py.)
    judge = chat(sim, "openai", "rel/judge")
    return build_fault_case(
        FusionChatModel,
        case.target,
        case.fault,
        case.fusion_mode,
        synthesis=case.mode == "merge/synthesis",
        timeout=case.timeout,
        healthy=healthy,
        judge=judge,
        failing_member=lambda model: chat(sim, case.client, model, **kw, **own),
        failing_judge=lambda model: chat(sim, case.client, model, **own),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_fault_matrix(sim: Simulator, case: Case) -> None:
    await run_case(sim, case, "astream" if case.streaming else "ainvoke")


async def run_case(sim: Simulator, case: Case, entry: str) -> None:
    """Run `case` through `entry` (`ainvoke`, `astream`, or sync `invoke`, `stream`) and
    check everything the matrix asserts (the sync entries: test_rel_retries.py)."""
    sync = entry in ("invoke", "stream")
    fusion, failing, calls = build(sim, case, sync)

    started = time.monotonic()
    msg: Any = None
    error: Exception | None = None
    try:
        msg = await call(entry, fusion)
    except (NotEnoughAnswersError, JudgeError) as exc:
        error = exc
    elapsed = time.monotonic() - started

    # Nothing runs past the deadline; a hang costs its timeout, not the simulator's 5 s.
    assert elapsed < min(DEADLINE, (case.timeout or 0.0) + 3.0), elapsed

    if case.expected in ("answer", "fallback"):
        assert error is None, f"{case.expected} expected, got {error!r}"
        report = msg.response_metadata["fusion"]
    else:
        assert type(error).__name__ == case.expected, repr(error)
        assert isinstance(error, (NotEnoughAnswersError, JudgeError))
        report = error.report

    # The report records every failure, with its status and error type.
    assert_fault_report(
        sim,
        report,
        error,
        msg.content if msg is not None else None,
        target=case.target,
        mode=case.fusion_mode,
        status=case.status,
        expected=case.expected,
        error_pattern=ERRORS[case.fault, case.client],
    )
    if sync and case.fault == "hang":  # a thread cannot be stopped: its call is abandoned
        hung = [report["judge"]] if case.target == "judge" else report["candidates"]
        hung = [c for c in hung if c["status"] == "timeout"]
        assert hung and all(c.get("abandoned") is True for c in hung), hung

    # What the simulator saw: no retries, the fault injected, hung requests closed by the
    # fusion (sync: by the client's own timeout) rather than by the simulator's 5 s hang.
    await assert_fault_served(sim, failing, calls, target=case.target, fault=case.fault)

    # Every successful call's usage is counted, equal to what the simulator billed.
    # ChatOpenAI drops OpenRouter's `usage.cost` when it streams (see docs/architecture.md).
    cost_known = None
    if case.streaming:
        cost_known = frozenset({failing}) if case.client == "openrouter" else frozenset()
    usage = msg.usage_metadata if msg is not None else None
    assert_usage_matches([report], sim, cost_known=cost_known, usage=usage)


def test_the_doc_lists_every_case() -> None:
    """docs/reliability.md holds the matrix table generated from `CASES`."""
    table = doc_table(DOC.read_text(encoding="utf-8"))
    assert table == markdown_table(), "run: python tests/reliability/matrix.py --write"
    cells = sum(row.count("(OA)") + row.count("(OR)") for row in table.splitlines())
    assert cells == len(CASES)
