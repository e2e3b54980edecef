"""OpenRouter slugs in `FusionLLM`'s pool and judge, as `FusionChatModel` takes them.

Slugs resolve to `ChatOpenAICompatible` members pointed at the simulator's OpenRouter API
(`base_url=sim.openrouter_base_url`), 127.0.0.1 only. The simulator here bills a stream only
when the request asks for usage (as OpenAI does), so usage that matches its `/stats` proves
that every call, streamed or not, was counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from li_clients import openai_like_client
from li_helpers import SCENARIO, Answer, Instrumentation, call
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from pydantic import SecretStr, ValidationError
from shown_texts import Texts

from langchain_fusion import ChatOpenAICompatible, FusionChatModel
from langchain_fusion.providers import OPENROUTER_BASE_URL
from langchain_fusion.sim import Scenario, Simulator, run_simulator
from langchain_fusion.testing import FakeChatModel
from llamaindex_fusion import FusionLLM, NotEnoughAnswersError

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

#: A key that must never show up anywhere but on the wire.
SECRET = "sk-or-v1-LI-SLUGS-SECRET-0123456789"
RIGHT = {"The answer is 391.", "391, clearly.", "It is 391."}  # t/wrong fixes itself in debate


def is_right(text: str) -> bool:
    """Each sentence is a right answer (merge and debate combine the agreeing answers)."""
    said = [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]
    return bool(said) and all(s in RIGHT for s in said)


POOL = ["t/plain", "t/wrong", "t/other"]


@pytest.fixture(scope="module")
def module_sim() -> Iterator[Simulator]:
    scenario = {**SCENARIO, "name": "li-slugs", "stream_usage": "requested"}
    with run_simulator(Scenario.model_validate(scenario)) as sim:
        yield sim


@pytest.fixture
def sim(module_sim: Simulator) -> Simulator:
    """The module's simulator with zeroed stats."""
    module_sim.reset()
    return module_sim


@pytest.fixture
def no_openrouter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("OPENROUTER_API_BASE", raising=False)


_CLIENTS: dict[tuple[str, str, str], Any] = {}


def openai_like(sim: Simulator, model: str) -> Any:
    """A LlamaIndex `OpenAILike` client of the simulator (kept for the module: ~0.1 s each)."""
    key = ("li", sim.base_url, model)
    if key not in _CLIENTS:
        _CLIENTS[key] = openai_like_client(sim.openai_base_url, model, "sk-test-li")
    return _CLIENTS[key]


def chat_openai(sim: Simulator, model: str) -> Any:
    """A LangChain `ChatOpenAI` client of the simulator, asking for streamed usage."""
    from langchain_openai import ChatOpenAI

    key = ("lc", sim.base_url, model)
    if key not in _CLIENTS:
        _CLIENTS[key] = ChatOpenAI(
            model=model,
            base_url=sim.openai_base_url,
            api_key="sk-test-lc",
            max_retries=0,
            timeout=10,
            stream_usage=True,
        )
    return _CLIENTS[key]


def fusion(sim: Simulator, pool: Any = None, judge: Any = "t/judge", **settings: Any) -> FusionLLM:
    return FusionLLM(
        pool=POOL if pool is None else pool,
        judge=judge,
        api_key=SECRET,
        base_url=sim.openrouter_base_url,
        seed=7,
        **settings,
    )


def check_billing(answer: Answer, sim: Simulator) -> None:
    """`raw["usage"]` is every token and cost the simulator billed, once; per model too."""
    stats = sim.stats()
    assert stats.totals.prompt_tokens > 0 and stats.totals.completion_tokens > 0
    assert answer.usage["prompt_tokens"] == stats.totals.prompt_tokens
    assert answer.usage["completion_tokens"] == stats.totals.completion_tokens
    assert answer.usage["total_tokens"] == stats.totals.total_tokens
    assert answer.usage["cost"] == pytest.approx(stats.totals.cost, abs=1e-12)
    assert answer.report["cost_complete"] is True
    served = {name: row for name, row in stats.models.items() if row.requests}
    assert set(answer.report["usage_by_model"]) == set(served)
    for model, row in answer.report["usage_by_model"].items():
        assert row["calls"] == served[model].requests
        assert row["input_tokens"] == served[model].prompt_tokens > 0
        assert row["output_tokens"] == served[model].completion_tokens > 0
        assert row["cost_usd"] == pytest.approx(served[model].cost, abs=1e-12)


# -- calls over the simulator -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["best_of", "debate"])
@pytest.mark.parametrize("method", ["achat", "chat", "astream_chat", "complete"])
async def test_a_slug_pool_and_judge_answer_and_bill_exactly(
    sim: Simulator, method: str, mode: str
) -> None:
    llm = fusion(sim, mode=mode, debate_rounds=1)

    answer = await call(llm, method, "What is 17*23?")

    assert is_right(answer.text)  # the judge (oracle rule, accuracy 1) keeps a right answer
    assert answer.statuses() == {"t/plain": "ok", "t/wrong": "ok", "t/other": "ok"}
    assert answer.report["judge"]["status"] == "ok"
    assert answer.report["mode"] == mode
    if mode == "best_of":
        assert answer.report["winner"] in ("t/plain", "t/other")
    else:
        assert answer.report["rounds"] == 1
    check_billing(answer, sim)
    if method == "astream_chat":
        assert len(answer.parts) > 1  # streamed, and the last part carries the usage
        if mode == "debate":
            assert sim.stats().models["t/judge"].stream_requests == 1  # the judge's answer


@pytest.mark.parametrize(
    ("judge_kind", "method"),
    # An OpenAILike stream does not ask for usage, and ChatOpenAI's drops the cost: their
    # judges answer here without streaming, so that the cost is complete.
    [("slug", "astream_chat"), ("llamaindex", "achat"), ("langchain", "chat")],
)
async def test_a_mixed_pool_of_slugs_llamaindex_llms_and_chat_models(
    sim: Simulator, judge_kind: str, method: str
) -> None:
    judges = {
        "slug": "t/judge",
        "llamaindex": openai_like(sim, "t/judge"),
        "langchain": chat_openai(sim, "t/judge"),
    }
    pool = {
        "slug": "t/plain",
        "li": openai_like(sim, "t/other"),
        "lc": chat_openai(sim, "t/wrong"),
    }
    llm = fusion(sim, pool, judge=judges[judge_kind], mode="merge")

    members = llm.members
    assert [m.name for m in members] == ["slug", "li", "lc"]
    assert isinstance(members[0].chat_model, ChatOpenAICompatible)
    assert not isinstance(members[1].chat_model, ChatOpenAICompatible)  # wrapped LlamaIndex
    assert members[2].chat_model is pool["lc"]
    assert llm.pool == pool and llm.judge is judges[judge_kind]  # the user's values are kept

    answer = await call(llm, method, "What is 17*23?")
    assert answer.statuses() == {"slug": "ok", "li": "ok", "lc": "ok"}
    assert is_right(answer.text)
    check_billing(answer, sim)


async def test_a_failing_slug_member_is_isolated(sim: Simulator) -> None:
    llm = fusion(sim, ["t/plain", "t/broken", "t/other"], mode="best_of")
    answer = await call(llm, "achat", "What is 17*23?")
    assert answer.statuses() == {"t/plain": "ok", "t/broken": "error", "t/other": "ok"}
    assert "HTTP 500" in answer.report["candidates"][1]["error"]
    assert is_right(answer.text)


async def test_a_function_agent_over_slugs(sim: Simulator) -> None:
    """Slug members propose tool calls as `ChatOpenAICompatible` tool calls (best_of: see
    test_li_sim's agent test for why)."""
    calls: list[tuple[int, int]] = []

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        calls.append((a, b))
        return a * b

    llm = fusion(sim, mode="best_of")
    assert llm.metadata.is_function_calling_model  # slug members and judge call tools
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)

    result = await agent.run(user_msg="Use multiply to compute 17 times 23.")

    assert calls == [(17, 23)]
    assert "391" in str(result.response.content)
    assert sim.stats().models["t/plain"].tool_calls == 1


# -- resolution and configuration --------------------------------------------------------------


@pytest.mark.usefixtures("no_openrouter_env")
def test_slugs_resolve_as_in_fusion_chat_model() -> None:
    llm = FusionLLM(
        pool=["openai/gpt-4o", "anthropic/claude-3.7-sonnet"], judge="openai/gpt-4o", api_key=SECRET
    )
    lc = FusionChatModel(
        pool=["openai/gpt-4o", "anthropic/claude-3.7-sonnet"], judge="openai/gpt-4o", api_key=SECRET
    )
    assert llm.pool == ["openai/gpt-4o", "anthropic/claude-3.7-sonnet"]
    assert llm.judge == "openai/gpt-4o"
    assert isinstance(llm.api_key, SecretStr) and llm.base_url == OPENROUTER_BASE_URL
    models = [m.chat_model for m in llm.members]
    assert all(isinstance(m, ChatOpenAICompatible) for m in models)
    assert [(m.model, m.base_url) for m in models] == [
        (m.chat_model.model, m.chat_model.base_url) for m in lc.members
    ]
    assert all(m.api_key is not None and m.api_key.get_secret_value() == SECRET for m in models)
    assert [m.name for m in llm.members] == [m.name for m in lc.members]
    assert llm.judge_member.model == "openai/gpt-4o"
    assert "openai/gpt-4o=openai/gpt-4o" in repr(llm)
    # Resolved once: the same member objects (and connection pool) from call to call...
    assert [m.chat_model for m in llm.members] == models
    assert llm.members[0].chat_model is models[0]
    # ...and again when a field changes.
    moved = llm.model_copy(update={"base_url": "http://127.0.0.1:2/api/v1"})
    assert {m.chat_model.base_url for m in moved.members} == {"http://127.0.0.1:2/api/v1"}
    assert llm.members[0].chat_model is models[0]


def test_key_and_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    monkeypatch.setenv("OPENROUTER_API_BASE", sim.openrouter_base_url)
    llm = FusionLLM(pool=["t/plain", "t/other"], judge="t/judge", mode="merge")
    assert isinstance(llm.api_key, SecretStr) and llm.api_key.get_secret_value() == SECRET
    assert llm.base_url == sim.openrouter_base_url
    response = llm.complete("What is 17*23?")
    assert is_right(response.text)
    assert response.raw["usage"]["prompt_tokens"] == sim.stats().totals.prompt_tokens


@pytest.mark.usefixtures("no_openrouter_env")
def test_a_slug_without_a_key_fails_at_construction_before_any_request(sim: Simulator) -> None:
    local = openai_like(sim, "t/other")
    with pytest.raises(ValidationError) as caught:
        FusionLLM(pool=[local, "t/plain"], judge=local, base_url=sim.openrouter_base_url)
    assert caught.value.error_count() == 1
    message = caught.value.errors()[0]["msg"]
    assert "pool[1] is the string 't/plain', an OpenRouter slug, which needs an API key" in message
    assert "set the api_key field or the OPENROUTER_API_KEY environment variable" in message
    assert "or pass a LlamaIndex LLM or a LangChain chat model instead" in message

    with pytest.raises(ValidationError, match="judge is the string 't/judge', an OpenRouter slug"):
        FusionLLM(pool={"a": local}, judge="t/judge", base_url=sim.openrouter_base_url)
    with pytest.raises(ValidationError, match=r"pool\['s'\] is the string 't/plain', an OpenR"):
        FusionLLM(pool={"a": local, "s": "t/plain"}, judge=local)
    # The same error as FusionChatModel's, but for what else may be passed.
    with pytest.raises(ValidationError) as lc_caught:
        FusionChatModel(pool=[FakeChatModel(), "t/plain"], judge=FakeChatModel())
    lc_message = lc_caught.value.errors()[0]["msg"]
    lc_alternative = "a LangChain chat model (BaseChatModel)"
    assert lc_message.replace(lc_alternative, FusionLLM._slug_alternative) == message
    # The simulator received nothing.
    stats = sim.stats()
    assert stats.totals.requests == 0 and stats.rejected == 0
    # No slug, no key needed.
    assert FusionLLM(pool=[local], judge=local).api_key is None


@pytest.mark.parametrize("bad", ["gpt-4o", "openai/", "/gpt-4o", "open ai/gpt", ""])
def test_a_string_that_is_not_a_slug_is_refused(sim: Simulator, bad: str) -> None:
    local = openai_like(sim, "t/other")
    with pytest.raises(ValidationError) as caught:
        FusionLLM(pool=[local, bad], judge=local, api_key=SECRET)
    message = str(caught.value)
    assert f"pool[1] is the string {bad!r}, which is not an OpenRouter slug" in message
    assert "write 'vendor/model'" in message and "a LlamaIndex LLM" in message
    with pytest.raises(ValidationError, match="judge is the string"):
        FusionLLM(pool=[local], judge=bad, api_key=SECRET)


def test_bad_slug_configuration_names_the_field(sim: Simulator) -> None:
    with pytest.raises(ValidationError) as caught:
        FusionLLM(pool=["t/plain"], judge="t/judge", api_key=SECRET, base_url="nowhere")
    assert "base_url" in str(caught.value) and "http" in str(caught.value)
    with pytest.raises(ValidationError, match="did you mean 'api_key'"):
        FusionLLM(pool=["t/plain"], judge="t/judge", api_kye=SECRET)
    with pytest.raises(ValidationError, match="hedge\\['t/plain'\\] is the string 't/other'"):
        # As in FusionChatModel, a hedge is a model (or True), not a slug.
        FusionLLM(pool=["t/plain"], judge="t/judge", api_key=SECRET, hedge={"t/plain": "t/other"})


def test_capabilities_and_hedges_name_slug_members(sim: Simulator) -> None:
    llm = fusion(sim)
    assert llm.metadata.is_function_calling_model
    assert llm.metadata.model_name == "llm-fusion/merge"
    no_tools = fusion(
        sim, capabilities={"t/plain": {"tool_calling": False}}, min_successful=len(POOL)
    )
    assert not no_tools.metadata.is_function_calling_model  # min_successful must call tools
    assert fusion(sim, hedge={"t/other": True}).members[2].name == "t/other"
    with pytest.raises(ValidationError, match="'nobody', which is not a pool"):
        fusion(sim, capabilities={"nobody": {"tool_calling": False}})


# -- the key is never shown ----------------------------------------------------------------


def test_the_check_finds_the_key() -> None:
    texts = Texts({"slugs": SECRET})
    texts.add("somewhere", {"authorization": f"Bearer {SECRET}"})
    texts.add_error("error", RuntimeError(f"bad key {SECRET[-11:]}"))
    assert texts.leaks() == [
        f"slugs key in {where}"
        for where in ("somewhere", "error: str", "error: repr", "error: traceback")
    ]


@pytest.mark.parametrize("method", ["achat", "stream_chat"])
async def test_the_key_is_never_shown(
    sim: Simulator, instrumentation: Instrumentation, method: str
) -> None:
    texts = Texts({"slugs": SECRET})
    llm = fusion(sim, ["t/plain", "t/broken", "t/other"], mode="best_of")
    assert llm.members[0].chat_model.api_key.get_secret_value() == SECRET  # it is used
    texts.add("repr", llm)
    texts.add("str", str(llm))
    texts.add("model_dump", llm.model_dump())
    texts.add("model_dump_json", llm.model_dump_json())
    texts.add("to_dict", llm.to_dict())
    texts.add("to_json", llm.to_json())  # JSON-serialisable: the key is left out
    texts.add("to_payload", llm.to_payload())
    texts.add("metadata", llm.metadata)
    assert "api_key" not in llm.to_dict() and "api_key" not in llm.model_dump()

    answer = await call(llm, method, "What is 17*23?")
    assert answer.statuses()["t/broken"] == "error"  # its error text is in the report
    for i, part in enumerate(answer.parts):
        texts.add(f"response {i}", part)
    texts.add_json("raw", answer.raw)
    texts.add_json("report", answer.report)

    # Every member failing.
    with pytest.raises(NotEnoughAnswersError) as failed:
        await call(fusion(sim, ["t/broken", "t/broken"]), method, "What is 17*23?")
    texts.add_error("not enough answers", failed.value)

    # Misconfigured fusions, the key among the arguments that fail validation.
    for bad in (
        {"min_successful": 4},
        {"mode": "fastest"},
        {"capabilities": {"nobody": {}}},
        {"pool": ["bad"]},
        {"judge": 42},
        {"hedge": {"nobody": True}},
    ):
        with pytest.raises(ValidationError) as invalid:
            fusion(sim, **bad)
        texts.add_error(f"invalid {bad}", invalid.value)

    # Instrumentation: every span and event the calls produced.
    texts.items += [("span", repr(s)) for s in instrumentation.finished()]
    texts.items += [("event", repr(e)) for e in instrumentation.events.events]
    assert instrumentation.events.events, "no event recorded"

    assert texts.leaks() == []
