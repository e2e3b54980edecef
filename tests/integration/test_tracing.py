"""Callbacks and traces: one fusion run, its member and judge runs nested under it.

Member and judge runs get only the caller's tracers, parented on the fusion run, tagged
`nostream` and `fusion:<role>:<name>`, without the fusion's `ls_*` metadata. Every other
handler sees the fusion as one chat model call, and LangGraph's message streaming shows
only the fused answer.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from unittest.mock import MagicMock
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.langchain import LangChainTracer
from langchain_core.tracers.schemas import Run
from langgraph.graph import END, START, MessagesState, StateGraph
from langsmith.run_helpers import tracing_context

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

MODES = ["best_of", "merge", "debate"]
HOW = ["invoke", "ainvoke", "stream", "astream"]

# Direct children of the fusion run, by run name, for a pool of two that disagree.
EXPECTED_CHILDREN = {
    "best_of": {"fusion:member:aardvark": 1, "fusion:member:bison": 1, "fusion:judge:judge": 1},
    "merge": {"fusion:member:aardvark": 1, "fusion:member:bison": 1, "fusion:judge:judge": 2},
    # debate_rounds=1: an answer and a revision each, then the judge's final answer.
    "debate": {"fusion:member:aardvark": 2, "fusion:member:bison": 2, "fusion:judge:judge": 1},
}


class RunCollector(BaseTracer):
    """Keeps every run it sees, in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[UUID, Run] = {}
        self._lock = threading.Lock()

    def _start_trace(self, run: Run) -> None:
        super()._start_trace(run)
        with self._lock:
            self.runs[run.id] = run

    def _persist_run(self, run: Run) -> None:
        pass

    def named(self, name: str) -> list[Run]:
        return [r for r in self.runs.values() if r.name == name]

    def descendants(self, root: Run) -> list[Run]:
        out = []
        for run in self.runs.values():
            parent = run.parent_run_id
            while parent is not None and parent != root.id:
                parent = self.runs[parent].parent_run_id if parent in self.runs else None
            if parent == root.id:
                out.append(run)
        return out


class CallCounter(BaseCallbackHandler):
    """A plain (non-tracer) handler: counts chat model starts, ends and new tokens."""

    def __init__(self) -> None:
        self.starts: list[list[list[BaseMessage]]] = []
        self.ends = 0
        self.tokens: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.starts.append(messages)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ends += 1

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens.append(token)


def make_fusion(mode: str, **kwargs: Any) -> FusionChatModel:
    return FusionChatModel(
        pool=[
            FakeChatModel(model="aardvark", responses=["Aardvark grazes quietly."]),
            FakeChatModel(model="bison", responses=["Bison roams widely."]),
        ],
        judge=FakeJudge(prefer="Bison"),
        mode=mode,
        debate_rounds=1,
        seed=3,
        **kwargs,
    )


async def run_fusion(
    fusion: Any, how: str, config: dict[str, Any], prompt: str = "Which animal?"
) -> AIMessage | AIMessageChunk:
    if how == "invoke":
        return fusion.invoke(prompt, config)  # type: ignore[no-any-return]
    if how == "ainvoke":
        return await fusion.ainvoke(prompt, config)  # type: ignore[no-any-return]
    full: AIMessageChunk | None = None
    if how == "stream":
        for chunk in fusion.stream(prompt, config):
            full = chunk if full is None else full + chunk
    else:
        async for chunk in fusion.astream(prompt, config):
            full = chunk if full is None else full + chunk
    assert full is not None
    return full


def check_children(collector: RunCollector, fusion_run: Run, mode: str) -> None:
    """The member and judge runs: nested under the fusion, tagged, no fusion metadata."""
    direct = [r for r in collector.runs.values() if r.parent_run_id == fusion_run.id]
    assert Counter(r.name for r in direct) == EXPECTED_CHILDREN[mode]
    for run in direct:
        role, name = run.name.split(":")[1:]
        assert run.extra["metadata"]["fusion_role"] == role
        assert run.extra["metadata"]["fusion_member"] == name
    below = collector.descendants(fusion_run)
    assert len(below) >= len(direct)
    for run in below:
        tags = run.tags or []
        assert "nostream" in tags, run.name
        fusion_tags = [t for t in tags if t.startswith(("fusion:member:", "fusion:judge:"))]
        assert len(fusion_tags) == 1, (run.name, tags)
        if run.parent_run_id == fusion_run.id:
            assert fusion_tags == [run.name]
        metadata = run.extra.get("metadata", {})
        assert metadata.get("ls_provider") != "llm-fusion", run.name
        assert not str(metadata.get("ls_model_name", "")).startswith("fusion:"), run.name
    # Chat model runs carry their own model's ls_* metadata, not the fusion's.
    model_runs = [r for r in below if r.run_type == "llm"]
    providers = {r.extra["metadata"]["ls_provider"] for r in model_runs}
    assert providers == {"fakechatmodel", "fakejudge"}
    # The fusion's own tags stay on the fusion run.
    assert "nostream" not in (fusion_run.tags or [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", HOW)
async def test_run_tree(mode: str, how: str) -> None:
    collector = RunCollector()
    await run_fusion(make_fusion(mode), how, {"callbacks": [collector]})
    (fusion_run,) = collector.named("FusionChatModel")
    assert fusion_run.parent_run_id is None
    assert fusion_run.run_type == "llm"
    assert fusion_run.extra["metadata"]["ls_provider"] == "llm-fusion"
    check_children(collector, fusion_run, mode)
    # Nothing else: every other run is below the fusion.
    assert len(collector.descendants(fusion_run)) == len(collector.runs) - 1


@pytest.mark.parametrize("how", HOW)
async def test_run_tree_inside_a_chain_keeps_caller_tags_and_metadata(how: str) -> None:
    collector = RunCollector()
    chain = RunnableLambda(lambda text: text).with_config(run_name="outer") | make_fusion("merge")
    config = {"callbacks": [collector], "tags": ["caller-tag"], "metadata": {"caller": "kept"}}
    await run_fusion(chain, how, config)
    (fusion_run,) = collector.named("FusionChatModel")
    assert fusion_run.parent_run_id is not None
    assert collector.runs[fusion_run.parent_run_id].name == "RunnableSequence"
    check_children(collector, fusion_run, "merge")
    for run in collector.descendants(fusion_run):
        assert "caller-tag" in (run.tags or []), run.name
        assert run.extra["metadata"]["caller"] == "kept", run.name


@pytest.mark.parametrize("how", HOW)
async def test_langsmith_tracer_does_not_stamp_fusion_params_on_children(how: str) -> None:
    """LangChain gives the fusion's LangSmith tracer the fusion's invocation params as
    metadata defaults; the children must not inherit them (e.g. `_type: llm-fusion`)."""
    client = MagicMock()
    tracer = LangChainTracer(client=client, project_name="test", metadata={"caller": "kept"})
    await run_fusion(make_fusion("merge"), how, {"callbacks": [tracer]})
    tracer.wait_for_futures()
    posted = [c.kwargs for c in client.create_run.call_args_list]
    metadata = {p["name"]: p["extra"]["metadata"] for p in posted}
    assert metadata["FusionChatModel"]["_type"] == "llm-fusion"
    assert metadata["FusionChatModel"]["mode"] == "merge"
    children = [p for p in posted if p["name"] != "FusionChatModel"]
    assert {p["name"] for p in children} >= {
        "fusion:member:aardvark",
        "fusion:member:bison",
        "fusion:judge:judge",
    }
    for post in children:
        md = post["extra"]["metadata"]
        assert md["caller"] == "kept", post["name"]
        assert "pool" not in md and "mode" not in md, post["name"]
        assert md.get("_type") != "llm-fusion", post["name"]
        assert md.get("ls_provider") != "llm-fusion", post["name"]
    assert metadata["fusion:member:aardvark"]["_type"] == "fake-chat-model"


@pytest.mark.parametrize("how", HOW)
async def test_ambient_langsmith_tracing_nests_children(how: str) -> None:
    """Tracing enabled by the environment (here its context twin), no tracer in config:
    LangChain makes a new tracer at each configuration; the children must still land in
    the fusion's trace, under the fusion run."""
    client = MagicMock()
    with tracing_context(enabled=True, client=client, project_name="test"):
        await run_fusion(make_fusion("best_of"), how, {})
    posted = [c.kwargs for c in client.create_run.call_args_list]
    names = {p["id"]: p["name"] for p in posted}
    (fusion_post,) = [p for p in posted if p["name"] == "FusionChatModel"]
    children = [p for p in posted if p["name"].startswith("fusion:")]
    assert Counter(p["name"] for p in children) == EXPECTED_CHILDREN["best_of"]
    for post in children:
        assert names.get(post["parent_run_id"]) == "FusionChatModel", post["name"]
        assert post["trace_id"] == fusion_post["trace_id"], post["name"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", HOW)
async def test_plain_handler_sees_the_fusion_once(mode: str, how: str) -> None:
    counter = CallCounter()
    message = await run_fusion(make_fusion(mode), how, {"callbacks": [counter]})
    assert len(counter.starts) == 1
    assert counter.starts[0][0][-1].content == "Which animal?"
    assert counter.ends == 1
    if how in ("stream", "astream"):
        # Only the fused answer's tokens: no member or judge tokens.
        assert "".join(counter.tokens) == message.text
    else:
        assert counter.tokens == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", HOW)
async def test_usage_callback_counts_every_token_once(mode: str, how: str) -> None:
    """`get_usage_metadata_callback` (a context handler) sees the fusion's total only."""
    with get_usage_metadata_callback() as usage:
        message = await run_fusion(make_fusion(mode), how, {})
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] > 0
    model_name = message.response_metadata["model_name"]
    assert usage.usage_metadata == {model_name: message.usage_metadata}


@pytest.mark.parametrize("mode", MODES)
async def test_astream_events_streams_only_the_fused_answer(mode: str) -> None:
    fusion = make_fusion(mode)
    tokens: list[tuple[str, str]] = []
    ended: list[Any] = []
    async for event in fusion.astream_events("Which animal?", version="v2"):
        if event["event"] == "on_chat_model_stream":
            tokens.append((event["name"], event["data"]["chunk"].text))
        if event["event"] == "on_chat_model_end" and event["name"] == "FusionChatModel":
            ended.append(event["data"]["output"])
    assert {name for name, _ in tokens} == {"FusionChatModel"}
    (answer,) = ended
    assert "".join(text for _, text in tokens) == answer.text


def fusion_graph(fusion: FusionChatModel, use_async: bool) -> Any:
    def node(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [fusion.invoke(state["messages"])]}

    async def anode(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await fusion.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("fuse", anode if use_async else node)
    graph.add_edge(START, "fuse")
    graph.add_edge("fuse", END)
    return graph.compile()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_langgraph_streams_only_the_fused_answer(mode: str, use_async: bool) -> None:
    app = fusion_graph(make_fusion(mode), use_async)
    collector = RunCollector()
    state_in = {"messages": [("user", "Which animal?")]}
    config: Any = {"callbacks": [collector]}
    streamed: list[tuple[BaseMessage, dict[str, Any]]] = []
    final: list[BaseMessage] = []

    def take(kind: str, data: Any) -> None:
        if kind == "messages":
            streamed.append(data)
        else:
            final[:] = data["messages"]

    modes = ["messages", "values"]
    if use_async:
        async for kind, data in app.astream(state_in, config, stream_mode=modes):
            take(kind, data)
    else:
        for kind, data in app.stream(state_in, config, stream_mode=modes):
            take(kind, data)

    answer = final[-1]
    assert isinstance(answer, AIMessage)
    assert streamed
    text = "".join(m.text for m, _ in streamed)
    assert text == answer.text
    assert "winner" not in text and "consensus" not in text  # no judge verdict or comparison
    if mode == "best_of":
        assert text == "Bison roams widely."  # the losing member's words never streamed
    for _, meta in streamed:
        assert meta["langgraph_node"] == "fuse"
        assert meta["ls_provider"] == "llm-fusion"
        assert "nostream" not in (meta.get("tags") or [])
    # Tracing still sees the whole tree under the graph.
    (fusion_run,) = collector.named("FusionChatModel")
    check_children(collector, fusion_run, mode)
