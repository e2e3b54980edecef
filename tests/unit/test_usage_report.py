"""Usage and cost arithmetic, the ledger of calls, and the fusion report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from langchain_fusion._core.outcome import Outcome, describe_error
from langchain_fusion._core.report import build_report
from langchain_fusion._core.usage import (
    Ledger,
    message_cost,
    message_usage,
    sum_cost,
    sum_usage,
)


def _msg(
    inp: int, out: int, *, cost: float | None = None, where: str = "token_usage", **details: Any
) -> AIMessage:
    usage: dict[str, Any] = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    usage.update(details)
    meta: dict[str, Any] = {}
    if cost is not None:
        if where == "top":
            meta["cost"] = cost
        else:
            meta[where] = {"cost": cost}
    return AIMessage("answer", usage_metadata=usage, response_metadata=meta)  # type: ignore[arg-type]


# --- sum_usage / message_cost -------------------------------------------------------------


def test_sum_usage_empty() -> None:
    assert sum_usage([]) == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    assert sum_usage([None, None]) == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def test_sum_usage_with_details() -> None:
    total = sum_usage(
        [
            {
                "input_tokens": 10,
                "output_tokens": 5,
                "total_tokens": 15,
                "input_token_details": {"cache_read": 4},
            },
            None,
            {
                "input_tokens": 7,
                "output_tokens": 20,
                "total_tokens": 27,
                "input_token_details": {"cache_read": 1, "audio": 2},
                "output_token_details": {"reasoning": 12},
            },
            {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        ]
    )
    assert total == {
        "input_tokens": 20,
        "output_tokens": 26,
        "total_tokens": 46,
        "input_token_details": {"cache_read": 5, "audio": 2},
        "output_token_details": {"reasoning": 12},
    }


@pytest.mark.parametrize("where", ["token_usage", "top", "usage"])
def test_message_cost_locations(where: str) -> None:
    assert message_cost(_msg(1, 1, cost=0.0125, where=where)) == 0.0125


def test_message_cost_int_is_float() -> None:
    msg = AIMessage("x", response_metadata={"cost": 2})
    assert message_cost(msg) == 2.0
    assert isinstance(message_cost(msg), float)


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"cost": "0.1"},
        {"cost": True},
        {"cost": None},
        {"token_usage": None},
        {"token_usage": {"prompt_tokens": 3}},
        {"usage": "n/a"},
    ],
)
def test_message_cost_unknown(meta: dict[str, Any]) -> None:
    assert message_cost(AIMessage("x", response_metadata=meta)) is None


def test_message_cost_and_usage_of_none() -> None:
    assert message_cost(None) is None
    assert message_usage(None) is None
    assert message_usage(AIMessage("no usage")) is None


def test_sum_cost() -> None:
    assert sum_cost([]) is None
    assert sum_cost([None, None]) is None
    assert sum_cost([0.1, None, 0.2]) == 0.3
    assert sum_cost([0.0]) == 0.0


# --- Ledger -------------------------------------------------------------------------------


def _ledger() -> Ledger:
    ledger = Ledger()
    ledger.record(Outcome("m1", "gpt-4o", "member", "ok", _msg(100, 50, cost=0.001), latency_s=1.5))
    ledger.record(
        Outcome(
            "m2",
            "claude",
            "member",
            "ok",
            _msg(80, 40, cost=0.002, where="usage", output_token_details={"reasoning": 10}),
            latency_s=2.25,
        )
    )
    ledger.record(
        Outcome("m3", "gemini", "member", "timeout", None, error="TimeoutError", latency_s=5.0)
    )
    ledger.extend(
        [
            Outcome(
                "m1", "gpt-4o", "member", "ok", _msg(200, 60, cost=0.003), round=1, step="revise"
            ),
            Outcome(
                "judge",
                "gpt-4o",
                "judge",
                "ok",
                _msg(500, 30, cost=0.004, where="top"),
                latency_s=0.75,
                step="verdict",
            ),
        ]
    )
    return ledger


def test_ledger_usage() -> None:
    assert _ledger().usage() == {
        "input_tokens": 880,
        "output_tokens": 180,
        "total_tokens": 1060,
        "output_token_details": {"reasoning": 10},
    }


def test_ledger_cost() -> None:
    ledger = _ledger()
    assert ledger.cost() == 0.01
    assert ledger.cost_complete() is True


def test_ledger_cost_incomplete() -> None:
    ledger = _ledger()
    ledger.record(Outcome("m3", "gemini", "member", "ok", _msg(10, 10)))
    assert ledger.cost() == 0.01
    assert ledger.cost_complete() is False


@pytest.mark.parametrize(
    "outcome",
    [
        # succeeded without reporting usage (a client that drops it)
        Outcome("m3", "gpt", "member", "ok", AIMessage("An answer.")),
        # given up after its request went out: the provider may have billed it
        Outcome("m3", "gpt", "member", "timeout", error="timed out", usage_unknown=True),
        Outcome("m3", "gpt", "member", "cancelled", usage_unknown=True),
        # a sync call whose thread runs on
        Outcome("m3", "gpt", "member", "cancelled", abandoned=True),
    ],
    ids=["ok-without-usage", "timeout", "cancelled", "abandoned"],
)
def test_a_call_of_unknown_usage_makes_the_cost_incomplete(outcome: Outcome) -> None:
    ledger = _ledger()
    ledger.record(outcome)
    assert ledger.cost_complete() is False
    summary = build_report(
        mode="best_of",
        members=[("m3", "gpt")],
        judge_model="judge",
        ledger=ledger,
        total_s=1.0,
    )["candidates"][0]
    assert summary["usage_unknown"] is True


def test_a_call_cancelled_before_it_started_leaves_the_cost_complete() -> None:
    ledger = _ledger()
    ledger.record(Outcome("m3", "gpt", "member", "cancelled", error="cancelled before it started"))
    assert ledger.cost_complete() is True


def test_ledger_without_costs() -> None:
    ledger = Ledger()
    ledger.record(Outcome("m1", "x", "member", "ok", _msg(1, 2)))
    assert ledger.cost() is None
    assert ledger.cost_complete() is False
    empty = Ledger()
    assert empty.cost() is None
    assert empty.cost_complete() is True
    assert empty.usage() == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def test_ledger_usage_by_model() -> None:
    assert _ledger().usage_by_model() == {
        "gpt-4o": {
            "calls": 3,
            "input_tokens": 800,
            "output_tokens": 140,
            "total_tokens": 940,
            "cost_usd": 0.008,
        },
        "claude": {
            "calls": 1,
            "input_tokens": 80,
            "output_tokens": 40,
            "total_tokens": 120,
            "cost_usd": 0.002,
        },
        "gemini": {
            "calls": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "cost_usd": None,
        },
    }


def test_ledger_for_name_separates_roles() -> None:
    ledger = _ledger()
    m1 = ledger.for_name("m1")
    assert [(o.round, o.step) for o in m1] == [(0, "answer"), (1, "revise")]
    assert ledger.for_name("judge") == []
    assert [o.step for o in ledger.for_name("judge", role="judge")] == ["verdict"]
    assert ledger.for_name("nobody") == []


def test_outcome_ok_and_describe_error() -> None:
    assert Outcome("a", "m", "member", "ok", AIMessage("x")).ok
    assert not Outcome("a", "m", "member", "ok", None).ok
    assert not Outcome("a", "m", "member", "error", AIMessage("partial")).ok
    assert describe_error(ValueError("bad thing\nsecond line")) == "ValueError: bad thing"
    assert describe_error(TimeoutError()) == "TimeoutError"


# --- build_report -------------------------------------------------------------------------

MEMBERS = [("m1", "gpt-4o"), ("m2", "claude"), ("m3", "gemini"), ("m4", "mistral")]


def _report(**kwargs: Any) -> dict[str, Any]:
    ledger = _ledger()
    ledger.record(
        Outcome("judge", "gpt-4o", "judge", "ok", _msg(10, 5, cost=0.0005), latency_s=0.5)
    )
    defaults: dict[str, Any] = {
        "mode": "best_of",
        "members": MEMBERS,
        "judge_model": "gpt-4o",
        "ledger": ledger,
        "total_s": 6.1234567,
        "winner": "m2",
    }
    defaults.update(kwargs)
    return build_report(**defaults)


def test_report_has_every_documented_key() -> None:
    report = _report()
    for key in ("mode", "candidates", "winner", "rounds", "timings", "usage_by_model", "cost_usd"):
        assert key in report
    assert set(report["timings"]) >= {"total_s", "judge_s"}
    for candidate in report["candidates"]:
        assert set(candidate) >= {
            "name",
            "model",
            "status",
            "latency_s",
            "usage",
            "cost_usd",
            "error",
        }
        assert candidate["status"] in {"ok", "error", "timeout", "cancelled", "skipped"}


def test_report_is_json_serialisable() -> None:
    report = _report(rounds=1, extra={"debate": {"nodes": [], "edges": []}})
    assert json.loads(json.dumps(report)) == report


def test_report_candidates_in_pool_order() -> None:
    report = _report()
    cands = report["candidates"]
    assert [(c["name"], c["model"]) for c in cands] == MEMBERS
    m1, m2, m3, m4 = cands
    assert m1["status"] == "ok"
    assert m1["calls"] == 2
    assert m1["latency_s"] == 1.5
    assert m1["usage"] == {"input_tokens": 300, "output_tokens": 110, "total_tokens": 410}
    assert m1["cost_usd"] == 0.004
    assert m1["error"] is None
    assert m2["usage"]["output_token_details"] == {"reasoning": 10}
    assert m2["cost_usd"] == 0.002
    assert m3["status"] == "timeout"
    assert m3["error"] == "TimeoutError"
    assert m3["cost_usd"] is None
    assert m3["latency_s"] == 5.0
    assert m4 == {
        "name": "m4",
        "model": "mistral",
        "status": "skipped",
        "calls": 0,
        "latency_s": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        "cost_usd": None,
        "error": None,
    }


def test_report_totals_and_timings() -> None:
    report = _report()
    assert report["mode"] == "best_of"
    assert report["winner"] == "m2"
    assert report["rounds"] is None
    assert report["judge_fallback"] is False
    assert report["timings"] == {"total_s": 6.123457, "judge_s": 1.25}
    assert report["usage"] == {
        "input_tokens": 890,
        "output_tokens": 185,
        "total_tokens": 1075,
        "output_token_details": {"reasoning": 10},
    }
    assert report["cost_usd"] == 0.0105
    assert report["cost_complete"] is True
    assert report["usage_by_model"]["gpt-4o"]["calls"] == 4
    assert report["usage_by_model"]["gpt-4o"]["input_tokens"] == 810
    assert report["judge"]["model"] == "gpt-4o"
    assert report["judge"]["calls"] == 2
    assert report["judge"]["status"] == "ok"
    assert report["judge"]["cost_usd"] == 0.0045


def test_report_usage_matches_sum_of_candidates_and_judge() -> None:
    report = _report()
    parts = [c["usage"] for c in report["candidates"]] + [report["judge"]["usage"]]
    assert sum_usage(parts) == report["usage"]


def test_report_without_judge_calls() -> None:
    ledger = Ledger()
    ledger.record(Outcome("m1", "gpt-4o", "member", "ok", _msg(1, 1), latency_s=0.1))
    report = build_report(
        mode="debate",
        members=[("m1", "gpt-4o"), ("m2", "claude")],
        judge_model="judge-model",
        ledger=ledger,
        total_s=0.2,
        rounds=0,
        extra={"judge_fallback": True},
    )
    assert report["judge"]["status"] == "skipped"
    assert report["judge"]["calls"] == 0
    assert report["timings"]["judge_s"] == 0
    assert report["rounds"] == 0
    assert report["winner"] is None
    assert report["judge_fallback"] is True
    assert report["cost_usd"] is None
    assert report["cost_complete"] is False
    assert [c["status"] for c in report["candidates"]] == ["ok", "skipped"]
    json.dumps(report)
