"""FusionMapper on a local Ray (2 CPUs, loopback only) over the simulator in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from langchain_fusion import FusionChatModel  # noqa: E402
from langchain_fusion.sim import Scenario, SimModel, Stats  # noqa: E402

MODELS = ("t/alpha", "t/beta", "t/gamma")
RPM = 10  # per actor, per window
WINDOW = 2
ROWS = 40


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scenario = Scenario(
        name="ray",
        models=[
            SimModel(name=m, ttft=0.01, prompt_price=1e-6, completion_price=2e-6) for m in MODELS
        ],
    )
    path = tmp_path_factory.mktemp("sim") / "scenario.json"
    path.write_text(scenario.model_dump_json())
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "langchain_fusion.sim",
            "--scenario",
            str(path),
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}},
    )
    try:
        yield
    finally:
        ray.shutdown()


def make_fusion_factory(base_url: str) -> Any:
    def make_fusion() -> FusionChatModel:
        return FusionChatModel(
            pool=list(MODELS[:2]),
            judge=MODELS[2],
            mode="best_of",
            api_key="sk-test",
            base_url=f"{base_url}/api/v1",
            rate_limits={m: {"rpm": RPM, "window_s": WINDOW} for m in MODELS},
        )

    return make_fusion


def test_fusion_mapper_on_two_actors(local_ray: None, sim_url: str) -> None:
    from langchain_fusion.integrations.ray import FusionMapper

    httpx.post(f"{sim_url}/stats/reset")
    rows: list[dict[str, Any]] = [
        {"id": f"q{i}", "messages": [{"role": "user", "content": f"Question {i}?"}]}
        for i in range(ROWS)
    ]
    rows.append({"id": "empty", "messages": []})  # fails: written as an error, not raised
    started = time.monotonic()
    out = (
        ray.data.from_items(rows)
        .map_batches(
            FusionMapper,
            fn_constructor_kwargs={"make_fusion": make_fusion_factory(sim_url), "concurrency": 8},
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=8,
            num_cpus=1,
        )
        .take_all()
    )
    elapsed = time.monotonic() - started
    by_id = {r["id"]: r for r in out}
    assert len(out) == ROWS + 1 == len(by_id)
    assert by_id["empty"]["status"] == "error" and "empty" in by_id["empty"]["error"]
    ok = [r for r in out if r["status"] == "ok"]
    assert len(ok) == ROWS
    first = by_id["q0"]
    assert first["answer"] and first["cost_usd"] > 0
    assert json.loads(first["report"])["mode"] == "best_of"
    assert json.loads(first["usage"])["total_tokens"] > 0

    stats = Stats.model_validate(httpx.get(f"{sim_url}/stats").json()).models
    for model in MODELS:
        assert stats[model].requests == ROWS
        # Each actor holds its own limiter (limits are per process): two actors, twice the
        # per-actor rate at most. The limiter's default margin_s (1 s) covers the lag of a
        # request's arrival behind its admission (a fresh actor opens its connections).
        assert stats[model].most_requests_within(WINDOW) <= 2 * RPM, model
    # 40 calls a model at 2 x 10 a window (plus margin) need two more after the first burst.
    assert elapsed > (ROWS / (2 * RPM) - 1) * (WINDOW + 1)
