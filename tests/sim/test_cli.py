"""`python -m langchain_fusion.sim`: the command line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from langchain_fusion.sim import default_scenario, main

pytestmark = pytest.mark.timeout(30)


def test_print_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--print-default"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert [m["name"] for m in printed["models"]] == [m.name for m in default_scenario().models]


def test_bad_scenario_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: []\n")
    assert main(["--scenario", str(bad)]) == 2
    assert "cannot load scenario" in capsys.readouterr().err
    assert main(["--scenario", str(tmp_path / "missing.yaml")]) == 2


def test_serves_from_its_own_process(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text('{"name": "cli", "models": [{"name": "m", "default_answer": "pong"}]}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_fusion.sim", "--scenario", str(scenario), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        base = match.group(0)
        for _ in range(100):  # the URL is printed just before uvicorn starts accepting
            try:
                models = httpx.get(base + "/v1/models", timeout=1).json()
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert [m["id"] for m in models["data"]] == ["m"]
        reply = httpx.post(
            base + "/api/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "ping"}]},
        ).json()
        assert reply["choices"][0]["message"]["content"] == "pong"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
