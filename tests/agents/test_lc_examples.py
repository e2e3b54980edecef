"""The LangChain examples run offline on the simulator and print what they claim.

They run in this process (the imports are already paid for), each on its own simulator;
the provider keys are removed so that they stay offline.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from agents_helpers import EXAMPLES

from langchain_fusion import ChatOpenAICompatible
from langchain_fusion.providers import OPENROUTER_BASE_URL

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENROUTER_API_KEY", "VISION_BASE_URL", "VISION_MODEL", "VISION_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate", "vote"])
def test_agent_example(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    load("langchain_agent").main(["--mode", mode])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("provider: local simulator at http://127.0.0.1:")
    assert sorted(line for line in lines if "[tool]" in line) == [
        "  [tool] get_local_time(city='Tokyo')",
        "  [tool] get_weather(city='Paris', unit='celsius')",
    ]
    answer = "A: The tool returned: sunny and 18 degrees celsius in Paris; 21:00 in Tokyo"
    assert answer in lines
    turns = [line for line in lines if line.startswith("  turn ")]
    assert len(turns) == 2
    assert turns[0].startswith(f"  turn 1 ({mode}): get_weather, get_local_time |")
    assert turns[1].startswith(f"  turn 2 ({mode}): final answer |")


def test_rag_example(capsys: pytest.CaptureFixture[str]) -> None:
    load("langchain_rag").main([])
    out = capsys.readouterr().out
    assert out.startswith("provider: local simulator at http://127.0.0.1:")
    assert "  [retrieved] The sky is blue because of Rayleigh scattering" in out
    assert "A: Sunlight is scattered by air molecules" in out
    assert "(Rayleigh scattering)." in out  # another member's sentence, merged in
    assert "  [retrieved] In llm-fusion, quorum lets the judge start" in out
    assert out.count("  fusion (merge): sim/atlas=ok sim/borealis=ok sim/cirrus=ok") == 2


def test_extraction_example_members_and_best_of(capsys: pytest.CaptureFixture[str]) -> None:
    load("structured_extraction").main(["--modes", "best_of"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("provider: local simulator at http://127.0.0.1:")
    assert "each member alone:" in lines
    assert any(line.startswith("  borealis") and "due_date='2024-07-31'" in line for line in lines)
    best = next(line for line in lines if line.startswith("  best_of"))
    assert "invoice_number='INV-2024-117'" in best and "due_date=None" in best
    assert best.endswith("(winner: atlas)")


def test_extraction_example_merge_combines_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    load("structured_extraction").main(["--modes", "merge,debate"])
    lines = capsys.readouterr().out.splitlines()
    fused = (
        "vendor='Acme Tools GmbH' invoice_number='INV-2024-117' total=1240.5 currency='EUR' "
        "due_date='2024-07-31'"
    )
    assert f"  merge          {fused}" in lines
    assert f"  debate         {fused}" in lines


@pytest.mark.parametrize("mode", ["best_of", "merge"])
def test_vision_example(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    load("vision_pool").main(["--mode", mode])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("provider: vision: simulator (sim/mistral-small-3.1)")
    assert "fusion profile: image_inputs=True" in lines
    assert any(
        line.startswith(f"A ({mode}): A simple drawing: a round yellow sun") for line in lines
    )
    assert "  text-only  skipped (does not accept image inputs)" in lines
    judge_calls = 1 if mode == "best_of" else 2
    assert lines[-4:] == [
        "  vision     requests: 1, images: 1",
        "  vision-2   requests: 1, images: 1",
        "  text-only  requests: 0, images: 0",
        f"  judge      requests: {judge_calls}, images: {judge_calls}",
    ]


def test_quickstart_runs_the_four_modes(capsys: pytest.CaptureFixture[str]) -> None:
    load("quickstart").main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("provider: local simulator at http://127.0.0.1:")
    headers = [line for line in lines if line.startswith("== ")]
    assert headers == ["== best_of", "== merge", "== debate", "== vote", "== merge, streamed"]
    statuses = [line for line in lines if line.startswith("   statuses:")]
    assert len(statuses) == 4 and all("error" not in line for line in statuses)


@pytest.mark.parametrize("name", ["quickstart", "langchain_agent", "langchain_rag"])
def test_with_a_key_the_examples_fuse_openrouter_slugs(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """With `OPENROUTER_API_KEY` no simulator starts: the pool and judge are OpenRouter slugs
    keyed from the environment (built only: no request is sent)."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-example-test")
    monkeypatch.delenv("OPENROUTER_API_BASE", raising=False)
    module = load(name)
    if name == "quickstart":
        with module.provider() as where:
            fusion, description = module.fusion_on(where, "vote"), where.description
            assert where.sim is None
    else:
        with module.fusion("vote") as (fusion, description):
            pass
    assert description.startswith("provider: OpenRouter (https://openrouter.ai/api/v1)")
    models = [m.chat_model for m in fusion.members]
    assert [m.model for m in models] == module.OPENROUTER_POOL
    assert {type(m) for m in models} == {ChatOpenAICompatible}
    assert {m.base_url for m in models} == {OPENROUTER_BASE_URL}
    assert "sk-or-example-test" not in description
