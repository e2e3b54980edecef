"""API keys never leak: not in a repr, str, model_dump, JSON, report, log record, exception
or trace payload.

Four keys, each given once: to a `ChatOpenAI` member, to a `ChatOpenRouter` member (and its
SDK client), to the `ChatOpenAI` judge, and to the fusion itself for its OpenRouter slug
members (resolved to `ChatOpenAICompatible`). Fusions answer, fail (every member erroring,
the judge failing with `on_judge_failure="raise"`) and are misconfigured, through every
entry point, with logging captured at DEBUG and a tracer collecting every run (also
LangSmith's own tracer, and the slugs' key read from the environment); then every text
produced is searched for every key.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from pydantic import ValidationError
from rel_helpers import PROMPT, call, openai_chat, openrouter_chat, openrouter_sdk
from shown_texts import Texts

from langchain_fusion import FusionChatModel, FusionError
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("warm_async")]

KEYS = {
    "openai member": "sk-member-openai-SECRET-1111",
    "openrouter member": "sk-or-member-SECRET-2222",
    "judge": "sk-judge-SECRET-3333",
    "slugs": "sk-or-slugs-SECRET-4444",
}


class Collector(BaseTracer):
    """Serialises every run it sees (members' and judge's included) when it ends."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[str] = []

    def _persist_run(self, run: Run) -> None:
        self.payloads.append(json.dumps(run.model_dump(), default=str))

    def _end_trace(self, run: Run) -> None:
        self.payloads.append(json.dumps(run.model_dump(), default=str))
        super()._end_trace(run)

    def _on_run_create(self, run: Run) -> None:
        self.payloads.append(json.dumps(run.model_dump(), default=str))


def members(sim: Simulator, failing: bool = False) -> dict[str, Any]:
    """The pool: a ChatOpenAI, a ChatOpenRouter and a slug (with the fusion's key)."""
    suffix = "f-500" if failing else ""
    return {
        "oa": openai_chat(
            sim, f"rel/{suffix or 'ada'}", api_key=KEYS["openai member"], streaming=True
        ),
        "or": openrouter_chat(
            sim,
            f"rel/{suffix or 'bob'}",
            api_key=KEYS["openrouter member"],
            client=openrouter_sdk(sim, KEYS["openrouter member"]),
        ),
        "slug": f"rel/{suffix or 'cy'}",
    }


def fusion_of(
    sim: Simulator, failing: bool = False, judge: str = "rel/judge", **settings: Any
) -> FusionChatModel:
    return FusionChatModel(
        pool=members(sim, failing),
        judge=openai_chat(sim, judge, api_key=KEYS["judge"]),
        api_key=KEYS["slugs"],
        base_url=sim.openrouter_base_url,
        seed=2,
        **settings,
    )


def describe(texts: Texts, where: str, fusion: FusionChatModel) -> None:
    texts.add(f"{where} repr", fusion)
    texts.add(f"{where} str", str(fusion))
    texts.add(f"{where} model_dump", fusion.model_dump())
    texts.add_json(f"{where} model_dump json", fusion.model_dump())
    try:
        texts.add(f"{where} model_dump_json", fusion.model_dump_json())
    except Exception as exc:  # some members hold objects pydantic cannot serialise
        texts.add_error(f"{where} model_dump_json", exc)
    texts.add_json(f"{where} to_json", fusion.to_json())
    texts.add_json(f"{where} identifying params", fusion._identifying_params)
    texts.add(f"{where} cache key", fusion._get_llm_string())
    texts.add_json(f"{where} invocation params", fusion._get_invocation_params())
    for member in fusion.members:
        texts.add(f"{where} member {member.name}", member)


@pytest.mark.parametrize(
    ("entry", "mode"),
    [("invoke", "best_of"), ("ainvoke", "merge"), ("stream", "debate"), ("astream", "vote")],
)
async def test_no_key_shows_anywhere(
    sim: Simulator, caplog: pytest.LogCaptureFixture, entry: str, mode: str
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = Texts(KEYS)
    tracer = Collector()

    # A fusion that answers.
    fusion = fusion_of(sim, mode=mode, debate_rounds=1)
    describe(texts, f"{mode} fusion", fusion)
    msg = await call(entry, fusion.with_config(callbacks=[tracer]))
    texts.add(f"{mode} message", msg)
    texts.add_json(f"{mode} report", msg.response_metadata["fusion"])
    assert msg.response_metadata["fusion"]["judge"]["status"] == "ok"

    # Every member failing (HTTP 500 through each client).
    with pytest.raises(FusionError) as caught:
        await call(entry, fusion_of(sim, failing=True).with_config(callbacks=[tracer]))
    assert len(caught.value.errors) == 3
    texts.add_error("not enough answers", caught.value)

    # The judge failing, raised.
    fusion = fusion_of(sim, judge="rel/judge-503", on_judge_failure="raise")
    with pytest.raises(FusionError) as caught:
        await call(entry, fusion.with_config(callbacks=[tracer]))
    texts.add_error("judge error", caught.value)

    # Misconfigured fusions: the keys are in the arguments that fail validation.
    for bad in ({"min_successful": 9}, {"mode": "fastest"}, {"capabilities": {"x": {}}}):
        with pytest.raises(ValidationError) as invalid:
            fusion_of(sim, **bad)
        texts.add_error(f"invalid {bad}", invalid.value)

    assert tracer.payloads, "the tracer saw no run"
    assert any('"fusion:member:' in p for p in tracer.payloads), "no member run traced"
    texts.items += [("trace payload", p) for p in tracer.payloads]
    assert caplog.records, "nothing was logged at DEBUG"
    for record in caplog.records:
        texts.add(f"log record {record.name}", caplog.handler.format(record))
        texts.add(f"log record {record.name} args", record.args)
    assert texts.leaks() == []


async def test_no_key_shows_through_llamaindex(sim: Simulator) -> None:
    """The LlamaIndex face over the same LangChain members."""
    fusion_llm = pytest.importorskip("llamaindex_fusion").FusionLLM
    pool = {
        "oa": openai_chat(sim, "rel/ada", api_key=KEYS["openai member"]),
        "or": openrouter_chat(sim, "rel/bob", api_key=KEYS["openrouter member"]),
    }
    llm = fusion_llm(pool=pool, judge=openai_chat(sim, "rel/judge", api_key=KEYS["judge"]))
    texts = Texts(KEYS)
    texts.add("repr", llm)
    texts.add("str", str(llm))
    texts.add("model_dump", llm.model_dump())
    texts.add_json("model_dump json", llm.model_dump())
    texts.add_json("to_dict", llm.to_dict())
    texts.add("metadata", llm.metadata)
    response = await llm.acomplete(PROMPT)
    texts.add("response", response)
    texts.add_json("raw", response.raw)
    texts.add_json("additional_kwargs", response.additional_kwargs)
    assert texts.leaks() == []


@pytest.mark.parametrize("adapter", ["FusionChatModel", "FusionLLM"])
def test_no_member_key_shows_in_a_configuration_error(adapter: str) -> None:
    """A LlamaIndex OpenAI client keeps its key in plain text (its own repr shows it); a
    check of the whole fusion's configuration reports every argument as its input."""
    from li_clients import openai_like_client

    member = openai_like_client("http://127.0.0.1:9/v1", "rel/ada", api_key=KEYS["judge"])
    assert KEYS["judge"] in repr(member)  # the member itself shows it...
    if adapter == "FusionLLM":
        fusion_class: Any = pytest.importorskip("llamaindex_fusion").FusionLLM
        pool: Any = [member]
    else:
        from langchain_fusion.testing import FakeChatModel

        fusion_class, pool = FusionChatModel, [FakeChatModel(model="a")]
    texts = Texts(KEYS)
    for bad in ({"min_successful": 3}, {"quorum": 5}, {"pool": [member, 42]}):
        with pytest.raises(ValidationError) as invalid:
            fusion_class(**{"pool": pool, "judge": member, **bad})
        texts.add_error(f"invalid {sorted(bad)}", invalid.value)
    assert texts.leaks() == []  # ...the fusion's errors do not


def test_the_check_finds_a_key() -> None:
    """The search itself works: a key shown anywhere is found."""
    texts = Texts(KEYS)
    texts.add("somewhere", {"authorization": f"Bearer {KEYS['judge']}"})
    texts.add_error("error", RuntimeError(f"bad key {KEYS['slugs'][-11:]}"))
    assert texts.leaks() == ["judge key in somewhere"] + [
        f"slugs key in error: {part}" for part in ("str", "repr", "traceback")
    ]


def recording_langsmith_client() -> Any:
    """A LangSmith client that records what it would send instead of sending it."""
    from langsmith import Client

    class RecordingClient(Client):
        def __init__(self) -> None:
            super().__init__(
                api_url="http://127.0.0.1:9", api_key="lsv2-test", auto_batch_tracing=False
            )
            self.sent: list[str] = []

        def create_run(self, *args: Any, **kwargs: Any) -> None:
            self.sent.append(json.dumps({"args": args, **kwargs}, default=str))

        def update_run(self, *args: Any, **kwargs: Any) -> None:
            self.sent.append(json.dumps({"args": args, **kwargs}, default=str))

    return RecordingClient()


@pytest.mark.parametrize("entry", ["invoke", "astream"])
async def test_no_key_shows_in_langsmith_traces_nor_from_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    """LangSmith's own tracer (its client recording instead of posting), with the slugs'
    key taken from `OPENROUTER_API_KEY` rather than given."""
    from langchain_core.tracers.langchain import LangChainTracer, wait_for_all_tracers

    monkeypatch.setenv("OPENROUTER_API_KEY", KEYS["slugs"])
    client = recording_langsmith_client()
    tracer = LangChainTracer(client=client, project_name="llm-fusion-secrets")
    fusion = FusionChatModel(
        pool=members(sim),
        judge=openai_chat(sim, "rel/judge", api_key=KEYS["judge"]),
        base_url=sim.openrouter_base_url,
        mode="merge",
        seed=2,
    )
    assert fusion.api_key is not None
    assert fusion.api_key.get_secret_value() == KEYS["slugs"]  # from the environment
    texts = Texts(KEYS)
    describe(texts, "env-key fusion", fusion)

    msg = await call(entry, fusion.with_config(callbacks=[tracer]))
    wait_for_all_tracers()
    texts.add("message", msg)

    with pytest.raises(FusionError) as caught:
        await call(entry, fusion_of(sim, failing=True).with_config(callbacks=[tracer]))
    texts.add_error("not enough answers", caught.value)
    with pytest.raises(ValidationError) as invalid:  # a misspelt key argument
        FusionChatModel(pool=members(sim), judge="rel/judge", api_kye=KEYS["slugs"])
    texts.add_error("misspelt api_key", invalid.value)
    wait_for_all_tracers()

    assert any('"fusion:member:' in sent for sent in client.sent), "no member run sent"
    assert any(PROMPT in sent for sent in client.sent), "no inputs sent"
    texts.items += [("LangSmith payload", sent) for sent in client.sent]
    assert texts.leaks() == []
