"""The fusions config file: `load_fusions` for any command, errors naming fusion and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_fusion import ChatOpenAICompatible, FusionChatModel
from langchain_fusion.serve import ConfigError, load_fusions, parse_config

GOOD = """
server:
  reports_kept: 5
fusions:
  fusion/merge:
    mode: merge
    pool:
      - vendor/a
      - {model: llama3.1, base_url: "http://127.0.0.1:11434/v1"}
      - {model: qwen, base_url: "http://127.0.0.1:8001/v1", api_key_env: VLLM_KEY}
    judge: vendor/c
    quorum: 2
    grace: 0.5
    max_cost_usd: 0.05
    overridable: [mode, debate_rounds]
  fusion/panel:
    pool: {fast: vendor/a, slow: vendor/b}
    judge: [vendor/c, vendor/d]
    mode: best_of
"""
ENV = {"OPENROUTER_API_KEY": "sk-or-secret", "VLLM_KEY": "sk-vllm-secret"}


def test_load_fusions_builds_every_fusion(tmp_path: Path):
    path = tmp_path / "fusions.yaml"
    path.write_text(GOOD)
    fusions = load_fusions(path, env=ENV)
    assert set(fusions) == {"fusion/merge", "fusion/panel"}
    merge = fusions["fusion/merge"]
    assert isinstance(merge, FusionChatModel)
    assert (merge.mode, merge.quorum, merge.grace, merge.max_cost_usd) == ("merge", 2, 0.5, 0.05)
    endpoints = [m for m in merge.pool if isinstance(m, ChatOpenAICompatible)]
    assert [e.base_url for e in endpoints] == [
        "http://127.0.0.1:11434/v1",
        "http://127.0.0.1:8001/v1",
    ]
    assert endpoints[0].api_key is None
    assert endpoints[1].api_key.get_secret_value() == "sk-vllm-secret"
    assert "sk-or-secret" not in repr(merge) and "sk-vllm-secret" not in repr(merge)
    assert fusions["fusion/panel"].mode == "best_of"


def test_json_config(tmp_path: Path):
    path = tmp_path / "fusions.json"
    path.write_text(json.dumps({"fusions": {"f/x": {"pool": ["a/b"], "judge": "a/b"}}}))
    assert set(load_fusions(path, env=ENV)) == {"f/x"}


def message_of(data: dict, env: dict | None = None, tmp_path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        config = parse_config(data)
        from langchain_fusion.serve import build_fusions

        build_fusions(config, ENV if env is None else env)
    return str(caught.value)


def entry(**fields) -> dict:
    return {"fusions": {"fusion/x": {"pool": ["a/b", "c/d"], "judge": "a/b", **fields}}}


@pytest.mark.parametrize(
    ("data", "field", "fix"),
    [
        (entry(quorum=0), "quorum", "greater than or equal to 1"),
        (entry(quorum=5), "quorum", "quorum"),
        (entry(mdoe="debate"), "mdoe", "mode"),
        (entry(agreement="x"), "agreement", "Python"),
        (entry(api_key="sk-in-file"), "api_key", "api_key_env"),
        (entry(overridable=["max_cost_usd"]), "overridable", "limit"),
        (entry(overridable=["modes"]), "overridable", "mode"),
        ({"fusions": {"fusion/x": {"pool": ["a/b"]}}}, "judge", "Field required"),
        ({"fusions": {"fusion/x": {"pool": [{"model": "m"}], "judge": "a/b"}}}, "base_url", ""),
        ({"fusions": {}}, "fusions", "empty"),
        ({"server": {"max_body_bytes": 10}, "fusions": entry()["fusions"]}, "max_body_bytes", ""),
    ],
)
def test_bad_config_names_the_fusion_and_the_field(data, field, fix):
    message = message_of(data)
    assert field in message
    assert fix in message
    if "fusion/x" in json.dumps(data) and field not in ("max_body_bytes",):
        assert "fusion/x" in message
    assert "sk-in-file" not in message


def test_a_slug_without_its_key_is_named():
    message = message_of(entry(), env={})
    assert "fusion/x" in message and "OPENROUTER_API_KEY" in message


def test_an_endpoint_key_variable_that_is_not_set_is_named():
    data = entry(pool=[{"model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "NOPE"}])
    message = message_of(data)
    assert "fusion/x" in message and "NOPE" in message


def test_no_config_path_is_an_error():
    with pytest.raises(ConfigError, match="no fusions config"):
        load_fusions(None)


def test_unreadable_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_fusions(tmp_path / "missing.yaml")
