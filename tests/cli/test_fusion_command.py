"""The `fusion` command: in-process through `main`, and once as `python -m langchain_fusion`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_fusion import cli
from langchain_fusion._core.config import MODES
from langchain_fusion.sim import Scenario, Simulator, default_scenario, run_simulator

pytestmark = pytest.mark.timeout(60)

SECRET = "sk-or-v1-CLI-SECRET-fedcba9876543210"
SCENARIO = {
    "name": "cli-tests",
    "seed": 5,
    "bank": [{"question": "What is 17*23?", "answer": "391", "wrong": ["381"]}],
    "models": [
        {"name": "c/one", "template": "The answer is {answer}.", "prompt_price": 0.000001},
        {"name": "c/two", "template": "{answer}, clearly.", "completion_price": 0.000002},
        {"name": "c/down", "faults": [{"kind": "server_error", "status": 400}]},
        {"name": "c/judge", "judge": {"rule": "oracle"}, "prompt_price": 0.000001},
    ],
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("OPENROUTER_API_BASE", raising=False)


@pytest.fixture(scope="module")
def served() -> Iterator[Simulator]:
    """A simulator standing in for OpenRouter (the command is given its URL)."""
    with run_simulator(Scenario.model_validate(SCENARIO)) as sim:
        yield sim


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")
    return path


def test_modes_match_the_core() -> None:
    assert cli.MODES == MODES


def test_ask_offline_uses_the_bundled_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ask", "What is 17*23?", "--mode", "debate"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("provider: local simulator at http://127.0.0.1:")
    assert "no OPENROUTER_API_KEY set" in lines[0] and "'default'" in lines[0]
    assert "simulated judge sim/judge: blind" in lines[0]  # says what the judge is
    assert "does not know the right answers" in lines[0]
    assert "391" in out
    pool, judge = cli.scenario_roles(default_scenario())
    for name in (*pool, f"judge {judge}"):
        row = next(line for line in lines if line.startswith(name + " "))
        assert " ok" in row and "$" in row  # status, latency, tokens and cost
    assert any(line.startswith("verdict: written by the judge after") for line in lines)
    assert lines[-1].startswith("total: ") and "tokens" in lines[-1] and "$" in lines[-1]


def test_ask_json_prints_the_whole_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ask", "What is 17*23?", "--mode", "best-of", "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # stdout is JSON only
    assert captured.err.startswith("provider: local simulator")
    assert document["provider"]["simulated"] is True
    report = document["fusion"]
    assert report["mode"] == "best_of" and report["winner"]
    assert [c["status"] for c in report["candidates"]] == ["ok", "ok", "ok"]
    assert document["usage"]["total_tokens"] == report["usage"]["total_tokens"] > 0
    assert report["cost_usd"] > 0


def test_ask_with_a_key_goes_to_openrouter(
    served: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    monkeypatch.setenv("OPENROUTER_API_BASE", served.openrouter_base_url)
    served.reset()
    argv = ["ask", "What is 17*23?", "--pool", "c/one,c/two", "--judge", "c/judge", "--json"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"provider: OpenRouter ({served.openrouter_base_url})")
    document = json.loads(captured.out)
    assert document["provider"]["simulated"] is False
    stats = served.stats()
    assert document["fusion"]["cost_usd"] == pytest.approx(stats.totals.cost, abs=1e-12)
    assert stats.models["c/judge"].requests == 2  # merge: comparison, then synthesis
    assert SECRET not in captured.out + captured.err


def test_a_failed_member_is_reported(
    scenario_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ask", "What is 17*23?", "--scenario", str(scenario_file), "--mode", "merge"]
    assert cli.main([*argv, "--pool", "c/one,c/down"]) == 0
    out = capsys.readouterr().out
    assert "scenario 'cli-tests'" in out.splitlines()[0]
    assert any(line.startswith("c/down") and " error" in line for line in out.splitlines())
    assert "errors:" in out and "HTTP 400" in out


def test_all_members_failing_exits_1_with_the_causes(
    scenario_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ask", "Hi", "--scenario", str(scenario_file), "--pool", "c/down", "--judge", "c/judge"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: only 0 of 1 members answered")
    assert "c/down" in err and "HTTP 400" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ask", "Hi", "--pool", "openai/gpt-4o"]) == 2
    err = capsys.readouterr().err
    assert "the simulator does not serve openai/gpt-4o" in err
    assert "OPENROUTER_API_KEY" in err
    assert cli.main(["ask", "Hi", "--pool", " , "]) == 2
    with pytest.raises(SystemExit) as caught:
        cli.main(["ask", "Hi", "--mode", "unknown"])
    assert caught.value.code == 2


def test_sim_delegates_to_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sim", "--print-default"]) == 0
    assert "sim/judge" in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        cli.main(["sim", "--help"])
    assert caught.value.code == 0
    assert "--scenario FILE" in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_progress_redraws_one_line(
    monkeypatch: pytest.MonkeyPatch, scenario_file: Path
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    argv = ["ask", "What is 17*23?", "--scenario", str(scenario_file), "--pool", "c/one,c/two"]
    assert cli.main([*argv, "--mode", "debate"]) == 0
    drawn = terminal.getvalue()
    assert drawn.startswith("\r\x1b[K[") and drawn.endswith("\r\x1b[K")  # cleared at the end
    for state in ("c/one ...", "c/one ok", "c/two ... x2", "judge ...", "judge ok"):
        assert state in drawn
    assert "\x1b" not in stdout.getvalue()  # the answer and report stay clean
    terminal.seek(0)
    terminal.truncate()
    assert cli.main([*argv, "--quiet"]) == 0
    assert terminal.getvalue() == ""


def test_format_report_of_a_fallback() -> None:
    report: dict[str, Any] = {
        "mode": "merge",
        "judge_fallback": True,
        "winner": None,
        "candidates": [
            {"name": "a", "status": "ok", "latency_s": 0.5, "usage": {"total_tokens": 3}},
            {"name": "b", "status": "timeout", "latency_s": 1.0, "error": "timed out"},
        ],
        "judge": {"model": "j", "status": "error", "error": "ProviderError: HTTP 503"},
        "timings": {"total_s": 1.2},
        "usage": {"total_tokens": 3, "input_tokens": 2, "output_tokens": 1},
        "cost_usd": None,
    }
    text = cli.format_report(report, None)
    assert "verdict: the judge failed" in text
    assert "  b: timed out" in text and "  judge: ProviderError: HTTP 503" in text
    assert text.splitlines()[-1] == "total: 1.20s, 3 tokens (2 in, 1 out), cost -"


def test_python_m_langchain_fusion_ask_json() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    done = subprocess.run(
        [sys.executable, "-m", "langchain_fusion", "ask", "What is 17*23?", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("provider: local simulator")
    document = json.loads(done.stdout)
    assert "391" in document["answer"]
    assert [c["status"] for c in document["fusion"]["candidates"]] == ["ok", "ok", "ok"]
    assert document["fusion"]["judge"]["status"] == "ok"
