"""`fusion batch` killed with SIGKILL midway, then rerun: every row once, none fused twice.

The simulator runs in this process and outlives the command, which runs in its own
process and reaches it as an OpenAI-compatible provider (`OPENROUTER_API_BASE`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_helpers import MODELS, quick_scenario

from langchain_fusion.sim import Simulator, run_simulator

ROWS = 40


@pytest.fixture
def slow_sim() -> Iterator[Simulator]:
    with run_simulator(quick_scenario(ttft=0.1)) as running:
        yield running


def command(sim: Simulator, source: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "langchain_fusion",
        "batch",
        str(source),
        "-o",
        str(out),
        "--pool",
        f"{MODELS[0]},{MODELS[1]}",
        "--judge",
        MODELS[2],
        "--mode",
        "best_of",
        "--concurrency",
        "4",
        "--quiet",
        *extra,
    ]


def environment(sim: Simulator) -> dict[str, str]:
    env = dict(os.environ)
    env["OPENROUTER_API_KEY"] = "sk-test"
    env["OPENROUTER_API_BASE"] = sim.openrouter_base_url
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def ids_in(out: Path) -> list[object]:
    return [json.loads(line)["id"] for line in out.read_text().splitlines()]


def settle(sim: Simulator) -> None:
    deadline = time.monotonic() + 10
    while sim.stats().totals.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sigkill_then_rerun_leaves_every_row_once(slow_sim: Simulator, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?"}) + "\n" for i in range(ROWS))
    )
    out = tmp_path / "out.jsonl"
    env = environment(slow_sim)
    # SIGTERM first: the command stops, says how to resume, and leaves whole lines only.
    stopped = interrupt(slow_sim, source, out, env, signal.SIGTERM, lines=4)
    assert stopped.returncode == 130
    assert "rerun to resume" in stopped.stderr.read().decode()  # type: ignore[union-attr]
    assert out.read_bytes().endswith(b"\n")
    process = interrupt(slow_sim, source, out, env, signal.SIGKILL, lines=10)
    assert process.returncode == -signal.SIGKILL
    # A kill can also land mid-write on another system: a torn tail must be survivable too.
    with open(out, "ab") as handle:
        handle.write(b'{"id": "q39", "status": "ok", "ans')
    settle(slow_sim)
    first = ids_in_whole_lines(out)
    assert 10 <= len(first) < ROWS and len(set(first)) == len(first)
    before = slow_sim.stats()

    rerun = subprocess.run(
        command(slow_sim, source, out), env=env, capture_output=True, timeout=120, check=False
    )
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert "torn last line" in rerun.stderr.decode()
    after = slow_sim.stats()
    final = ids_in(out)
    assert sorted(final, key=str) == sorted((f"q{i}" for i in range(ROWS)), key=str)
    assert len(final) == ROWS  # every input id exactly once
    left = ROWS - len(first)
    # The rerun fused exactly the rows the killed run had not written: one judge call and
    # one call per member each, so no row already in OUT was fused again.
    for model in MODELS:
        assert after.models[model].requests - before.models[model].requests == left, model
        assert after.models[model].completed - before.models[model].completed == left, model


def interrupt(
    sim: Simulator, source: Path, out: Path, env: dict[str, str], sig: int, lines: int
) -> subprocess.Popen[bytes]:
    """Run the command until OUT has `lines` lines, then send `sig`; returns the ended process."""
    process = subprocess.Popen(
        command(sim, source, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= lines:
                break
            assert process.poll() is None, process.communicate()[1].decode()
            time.sleep(0.02)
        process.send_signal(sig)
    finally:
        process.wait(20)
    return process


def ids_in_whole_lines(out: Path) -> list[object]:
    data = out.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    return [json.loads(line)["id"] for line in whole.splitlines()]
