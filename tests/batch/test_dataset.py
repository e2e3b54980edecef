"""fuse_dataset / afuse_dataset: rows in, one complete line per row out, resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from langchain_fusion import FusionChatModel
from langchain_fusion.batch import OutFile, afuse_dataset, fuse_dataset, read_rows
from langchain_fusion.testing import FakeChatModel, FakeJudge


def _answer(messages: list[BaseMessage]) -> str:
    text = str(messages[-1].content)
    if "boom" in text:
        raise RuntimeError("the member broke on this row")
    return f"answer to {text}"


def make_fusion(fail_marked: bool = True) -> FusionChatModel:
    member = FakeChatModel(respond=_answer if fail_marked else None, cost_per_token=1e-6)
    return FusionChatModel(
        pool={"a": member, "b": member.model_copy()},
        judge=FakeJudge(),
        mode="best_of",
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_bad_rows_are_reported_with_their_line_and_skipped(tmp_path: Path) -> None:
    source = write_rows(
        tmp_path / "in.jsonl",
        [
            {"id": 1, "prompt": "one"},
            "{not json",
            {"prompt": "no id"},
            {"id": 1, "prompt": "again"},
            {"id": 3, "messages": []},
            {"id": 4, "prompt": "  "},
            [1, 2],
            {"id": True, "prompt": "bool id"},
            {"id": "5", "messages": [{"role": "user", "content": "five"}]},
        ],
    )
    rows, bad = read_rows(source)
    assert [r.id for r in rows] == [1, "5"]
    reasons = {b.line: b.reason for b in bad}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8]
    assert "invalid JSON" in reasons[2]
    assert 'missing "id"' in reasons[3]
    assert "duplicate id 1 (first on line 1)" in reasons[4]
    assert "empty" in reasons[5]
    assert "prompt" in reasons[6]
    assert "JSON object" in reasons[7]
    assert "string or an integer" in reasons[8]


async def test_each_row_is_written_once_and_a_rerun_skips_them(tmp_path: Path) -> None:
    rows = [{"id": i, "prompt": f"question {i}"} for i in range(10)]
    rows.append({"id": "broken", "prompt": "boom"})
    out = tmp_path / "out.jsonl"
    fusion = make_fusion()
    summary = await afuse_dataset(fusion, rows, out, concurrency=3)
    assert (summary.ok, summary.failed, summary.skipped) == (10, 1, 0)
    written = {r["id"]: r for r in lines(out)}
    assert len(written) == 11 == len(lines(out))
    assert written[3]["answer"] == "answer to question 3"
    assert written[3]["usage"]["total_tokens"] > 0
    assert written[3]["cost_usd"] > 0
    assert written[3]["report"]["mode"] == "best_of"
    failed = written["broken"]
    assert failed["status"] == "error"
    assert "NotEnoughAnswersError" in failed["error"]
    assert failed["report"]["candidates"][0]["status"] == "error"  # the members' errors kept
    assert summary.tokens == sum(r["usage"]["total_tokens"] for r in written.values() if r["usage"])

    calls_before = fusion.pool["a"]._calls  # type: ignore[index]
    again = await afuse_dataset(fusion, rows, out, concurrency=3)
    assert (again.ok, again.failed, again.skipped) == (0, 0, 11)
    assert fusion.pool["a"]._calls == calls_before  # type: ignore[index]  # nothing paid twice
    assert len(lines(out)) == 11


def test_failed_rows_run_again_only_with_retry_failed(tmp_path: Path) -> None:
    rows = [{"id": i, "prompt": f"boom {i}" if i % 2 else f"fine {i}"} for i in range(6)]
    out = tmp_path / "out.jsonl"
    first = fuse_dataset(make_fusion(), rows, out, concurrency=2)
    assert (first.ok, first.failed) == (3, 3)
    fixed = make_fusion(fail_marked=False)
    second = fuse_dataset(fixed, rows, out)
    assert (second.ok, second.failed, second.skipped) == (0, 0, 6)
    third = fuse_dataset(fixed, rows, out, retry_failed=True)
    assert (third.ok, third.failed, third.skipped) == (3, 0, 3)
    written = lines(out)
    assert sorted(r["id"] for r in written) == list(range(6))  # each id exactly once
    assert all(r["status"] == "ok" for r in written)


def test_a_torn_last_line_is_cut_off_and_its_row_run_again(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "prompt": f"q {i}"} for i in range(4)]
    out = tmp_path / "out.jsonl"
    fuse_dataset(make_fusion(), rows[:2], out)
    whole = out.read_bytes()
    torn = b'{"id": "r2", "status": "ok", "answer": "half a li'
    out.write_bytes(whole + torn)
    summary = fuse_dataset(make_fusion(), rows, out)
    assert summary.torn_line == len(torn)
    assert (summary.ok, summary.skipped) == (2, 2)
    assert sorted(r["id"] for r in lines(out)) == ["r0", "r1", "r2", "r3"]
    assert out.read_bytes().startswith(whole)


def test_out_file_keeps_unreadable_lines_and_reports_them(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 1, "status": "ok"}\nnot json\n{"id": 2, "status": "error"}\n')
    with OutFile(out) as kept:
        assert kept.done == {"1"} and kept.failed == {"2"} and kept.unreadable == [2]
    assert out.read_text().count("\n") == 3


async def test_the_budget_stops_starting_rows_and_says_so(tmp_path: Path) -> None:
    rows = [{"id": i, "prompt": f"question number {i}"} for i in range(20)]
    out = tmp_path / "out.jsonl"
    fusion = make_fusion()
    one = await afuse_dataset(fusion, rows[:1], tmp_path / "probe.jsonl")
    per_row = one.cost_usd
    budget = per_row * 5.5
    summary = await afuse_dataset(fusion, rows, out, concurrency=2, max_cost_usd=budget)
    assert summary.cost_usd <= budget
    assert 4 <= summary.ok <= 5
    assert summary.not_started == 20 - summary.ok
    assert summary.stopped is not None and "max_cost_usd" in summary.stopped
    assert "rows not started" in summary.text()
    assert len(lines(out)) == summary.ok


def test_concurrency_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        fuse_dataset(make_fusion(), [], tmp_path / "o.jsonl", concurrency=0)
