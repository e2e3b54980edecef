"""`fusion batch --config`: the fusion comes from a `fusion serve` config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_helpers import MODELS

from langchain_fusion.cli import main
from langchain_fusion.sim import Simulator


def config_file(tmp_path: Path, sim: Simulator) -> Path:
    fusions = {
        name: {
            "pool": [MODELS[0], MODELS[1]],
            "judge": MODELS[2],
            "mode": mode,
            "base_url": sim.openrouter_base_url,
            "api_key_env": "BATCH_TEST_KEY",
        }
        for name, mode in [("fusion/vote", "vote"), ("fusion/best-of", "best_of")]
    }
    path = tmp_path / "fusions.json"
    path.write_text(json.dumps({"fusions": fusions}))
    return path


def test_batch_runs_the_named_fusion_of_a_config_file(
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BATCH_TEST_KEY", "sk-batch-test")
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "prompt": f"Question {i}?"}) + "\n" for i in range(3))
    )
    out = tmp_path / "out.jsonl"
    argv = ["batch", str(source), "-o", str(out), "--config", str(config_file(tmp_path, sim))]

    assert main([*argv, "--fusion", "fusion/best-of", "--quiet"]) == 0

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [0, 1, 2]
    assert {r["report"]["mode"] for r in rows} == {"best_of"}
    assert "fusion 'fusion/best-of'" in capsys.readouterr().err
    served = sim.stats().models
    assert sum(served[m].requests for m in MODELS[:2]) == 6  # two members, three rows


def test_batch_config_errors_name_the_fix(
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BATCH_TEST_KEY", "sk-batch-test")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 1, "prompt": "Hi"}) + "\n")
    config = str(config_file(tmp_path, sim))
    argv = ["batch", str(source), "-o", str(tmp_path / "out.jsonl"), "--config", config]

    assert main(argv) == 2  # two fusions in the file: which one?
    assert (
        "--fusion is required: choose one of fusion/best-of, fusion/vote" in capsys.readouterr().err
    )
    assert main([*argv, "--fusion", "fusion/nope"]) == 2
    assert "no fusion 'fusion/nope'" in capsys.readouterr().err
    assert main([*argv, "--fusion", "fusion/vote", "--mode", "merge"]) == 2
    assert "--mode cannot be combined with --config" in capsys.readouterr().err
    assert sum(s.requests for s in sim.stats().models.values()) == 0  # no model was called
