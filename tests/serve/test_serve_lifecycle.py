"""A client that disconnects cancels its fusion; a graceful shutdown lets in-flight fusions
finish and refuses new ones; the command's start-up checks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import ENV, Served, ask, config_for

from langchain_fusion.cli import main
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(60)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_cancels_its_fusion(server: Served, sim: Simulator, stream):
    body = {**ask("fusion/hang-forever"), "stream": stream}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.v1 + "/chat/completions", json=body, timeout=1.5)
    assert sim.stats().models["serve/hang"].requests == 2
    # the member requests are closed, the slot is given back
    assert wait_for(lambda: sim.stats().totals.in_flight == 0)
    assert sim.stats().models["serve/hang"].abandoned == 2
    assert wait_for(lambda: server.state.slots.in_use == 0)


def start_server(
    args: list[str], env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[str], str, str]:
    """`fusion serve` in its own process: the process, its URL and its first stdout line."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "langchain_fusion", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **env},
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        process.kill()
        raise AssertionError(f"fusion serve did not start: {line!r} {log.read_text()}")
    base = match.group(0)
    assert wait_for(lambda: _healthy(base), timeout=15), "the server did not answer /health"
    return process, base, line


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_graceful_shutdown_finishes_in_flight_fusions(sim: Simulator, tmp_path: Path):
    config = tmp_path / "fusions.json"
    config.write_text(json.dumps(config_for(sim).model_dump(mode="json", exclude_unset=True)))
    process, base, _ = start_server(["--config", str(config)], ENV, tmp_path / "log")
    try:
        results: list[httpx.Response] = []
        worker = threading.Thread(
            target=lambda: results.append(
                httpx.post(base + "/v1/chat/completions", json=ask("fusion/slow"), timeout=20)
            )
        )
        worker.start()
        assert wait_for(lambda: sim.stats().models["serve/slow"].in_flight == 1)
        process.send_signal(signal.SIGTERM)
        refused = wait_for(lambda: not _healthy(base), timeout=2)
        worker.join(20)
        # uvicorn re-raises the signal it handled once the shutdown is done
        assert process.wait(20) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert refused, "new requests were still accepted during the shutdown"
    assert results and results[0].status_code == 200
    assert "rollback" in results[0].json()["choices"][0]["message"]["content"]


def test_demo_mode_without_config_says_so_and_serves(tmp_path: Path):
    process, base, first = start_server([], {}, tmp_path / "log")
    try:
        second = process.stdout.readline()
        models = httpx.get(base + "/v1/models", timeout=10).json()["data"]
        response = httpx.post(
            base + "/v1/chat/completions", json=ask("fusion/debate", "What is 17*23?"), timeout=30
        )
    finally:
        process.terminate()
        process.wait(20)
    err = (tmp_path / "log").read_text()
    assert {m["id"] for m in models} == {
        "fusion/best-of",
        "fusion/merge",
        "fusion/debate",
        "fusion/vote",
    }
    assert response.status_code == 200
    assert "no API key: loopback only" in first
    assert "bundled simulator" in second
    assert "over the bundled simulator at http://127.0.0.1:" in err  # the app's start-up log
    assert re.search(r'"POST /v1/chat/completions" 200 model=fusion/debate', err)  # access log


def test_refuses_to_bind_beyond_loopback_without_keys(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 0.0.0.0 without API keys" in err
    assert "--api-key" in err


def test_a_bad_config_fails_at_start_up_naming_the_fusion_and_field(tmp_path: Path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(
        "fusions:\n  fusion/x:\n    pool: [a/b, c/d]\n    judge: a/b\n    quorum: 0\n"
    )
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "fusion/x" in err and "quorum" in err
