"""The LlamaIndex examples run offline on the simulator and print the answer and report.

They run in this process (the imports are already paid for), on their own event loop and
their own simulator; `OPENROUTER_API_KEY` is removed so that they stay offline.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)


def test_rag_example(capsys: pytest.CaptureFixture[str]) -> None:
    load("llamaindex_rag").main([])
    out = capsys.readouterr().out
    assert out.startswith("provider: local simulator at http://127.0.0.1:")
    assert "A: " in out and "Rayleigh" in out
    assert "fusion report" in out and "mode: merge" in out


def test_agent_example(capsys: pytest.CaptureFixture[str]) -> None:
    load("llamaindex_agent").main([])
    out = capsys.readouterr().out
    assert out.startswith("provider: local simulator at http://127.0.0.1:")
    assert "[tool] multiply(17, 23)" in out
    assert "A: The tool returned: 391" in out
    assert out.count("fusion report, agent turn") == 2


@pytest.mark.parametrize("name", ["llamaindex_rag", "llamaindex_agent"])
def test_with_a_key_the_examples_fuse_openrouter_slugs(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """With `OPENROUTER_API_KEY` the pool and judge are slugs, keyed from the environment
    (built only: no request is sent)."""
    from langchain_fusion.providers import OPENROUTER_BASE_URL, ChatOpenAICompatible
    from llamaindex_fusion import FusionLLM

    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-example-test")
    monkeypatch.delenv("OPENROUTER_API_BASE", raising=False)
    module = load(name)
    with module.models() as (pool, judge, where):
        llm = FusionLLM(pool=pool, judge=judge)
    assert where.startswith("provider: OpenRouter (https://openrouter.ai/api/v1)")
    assert pool == module.OPENROUTER_POOL and judge == module.OPENROUTER_JUDGE
    models = [m.chat_model for m in [*llm.members, llm.judge_member]]
    assert all(isinstance(m, ChatOpenAICompatible) for m in models)
    assert {m.base_url for m in models} == {OPENROUTER_BASE_URL}
    assert llm.metadata.is_function_calling_model  # the agent's FunctionAgent needs it
