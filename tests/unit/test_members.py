"""What the pool and the judge accept, how members are named, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableLambda
from pydantic import PrivateAttr, ValidationError

from langchain_fusion import FusionChatModel
from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing import FakeChatModel, FakeJudge

QUESTION = "What is the tallest mountain in the Alps?"


def fusion_report(message: BaseMessage) -> dict[str, Any]:
    return message.response_metadata["fusion"]


def candidates(message: BaseMessage) -> list[tuple[str, str, str]]:
    return [(c["name"], c["model"], c["status"]) for c in fusion_report(message)["candidates"]]


def judged(judge: FakeJudge) -> list[str]:
    return sorted(extract_candidates("\n".join(m.text for m in judge.inputs[-1])).values())


class NamedByModelName(FakeChatModel):
    """A chat model that names itself through `model_name`, as ChatOpenAI does."""

    model_name: str = "named"


# -- wrapped members ------------------------------------------------------------------------

HEIGHT_TOOL = {
    "type": "function",
    "function": {
        "name": "height",
        "description": "Height of a mountain.",
        "parameters": {"type": "object", "properties": {"mountain": {"type": "string"}}},
    },
}


def flaky(answer: str):
    """A `respond` callable that fails on its first call only."""
    attempts: list[int] = []

    def respond(messages: list[BaseMessage]) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return answer

    return respond


def wrapped(kind: str) -> tuple[Any, list[FakeChatModel]]:
    """A member wrapped the way `kind` says, and the fakes inside it."""
    if kind == "bind_tools":
        inner = FakeChatModel(model="wrapped", responses=['{"mountain": "Mont Blanc"}'])
        return inner.bind_tools([HEIGHT_TOOL], tool_choice="height"), [inner]
    if kind == "bind":
        inner = FakeChatModel(model="wrapped", responses=["Mont Blanc, bound."])
        return inner.bind(stop=["never"]), [inner]
    if kind == "with_retry":
        inner = FakeChatModel(model="wrapped", respond=flaky("Mont Blanc, after a retry."))
        return inner.with_retry(stop_after_attempt=2, wait_exponential_jitter=False), [inner]
    if kind == "with_fallbacks":
        inner = FakeChatModel(model="wrapped", error="primary is down")
        backup = FakeChatModel(model="backup", responses=["Mont Blanc, from the backup."])
        return inner.with_fallbacks([backup]), [inner, backup]
    if kind == "with_config":
        inner = FakeChatModel(model="wrapped", responses=["Mont Blanc, configured."])
        return inner.with_config(tags=["mine"], run_name="my-member"), [inner]
    if kind == "nested":
        inner = FakeChatModel(model="wrapped", responses=["Mont Blanc, nested."])
        backup = FakeChatModel(model="backup", responses=["unused"])
        return inner.bind(stop=["never"]).with_config(tags=["x"]).with_fallbacks([backup]), [
            inner,
            backup,
        ]
    raise AssertionError(kind)


EXPECTED = {
    "bind": "Mont Blanc, bound.",
    "with_retry": "Mont Blanc, after a retry.",
    "with_fallbacks": "Mont Blanc, from the backup.",
    "with_config": "Mont Blanc, configured.",
    "nested": "Mont Blanc, nested.",
}


@pytest.mark.parametrize(
    "kind",
    [
        "bind",
        pytest.param("with_retry"),
        "with_fallbacks",
        "with_config",
        "nested",
    ],
)
async def test_pool_accepts_wrapped_chat_models(answer, kind):
    member, fakes = wrapped(kind)
    plain = FakeChatModel(model="plain", responses=["Mont Blanc, 4806 m."])
    judge = FakeJudge(prefer=", ")
    fusion = FusionChatModel(pool=[plain, member], judge=judge, mode="best_of", seed=0)

    message = await answer(fusion, QUESTION)

    assert candidates(message) == [("plain", "plain", "ok"), ("wrapped", "wrapped", "ok")]
    assert judged(judge) == sorted(["Mont Blanc, 4806 m.", EXPECTED[kind]])
    if kind == "with_retry":
        assert fakes[0].calls == 2
    if kind == "with_fallbacks":
        assert [f.calls for f in fakes] == [1, 1]
    if kind == "nested":
        assert [f.calls for f in fakes] == [1, 0]


async def test_a_bound_tool_call_is_returned_by_best_of(answer):
    member, _ = wrapped("bind_tools")
    plain = FakeChatModel(model="plain", responses=["Mont Blanc, 4806 m."])
    fusion = FusionChatModel(
        pool=[plain, member], judge=FakeJudge(prefer="height("), mode="best_of"
    )

    message = await answer(fusion, QUESTION)

    # The bound tool was forced: the member answered with a tool call, returned as written.
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("height", {"mountain": "Mont Blanc"})
    ]
    assert fusion_report(message)["winner"] == "wrapped"


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda j: j.with_config(tags=["judge"]), id="with_config"),
        pytest.param(lambda j: j.bind(stop=["never"]), id="bind"),
        pytest.param(
            lambda j: j.with_fallbacks([FakeJudge(model="spare")]),
            id="with_fallbacks",
        ),
        pytest.param(lambda j: j.with_retry(stop_after_attempt=2), id="with_retry"),
    ],
)
async def test_a_wrapped_judge_is_accepted(answer_invoke, wrap):
    judge = FakeJudge(prefer="4806")
    fusion = FusionChatModel(
        pool=[
            FakeChatModel(model="a", responses=["Mont Blanc."]),
            FakeChatModel(model="b", responses=["Mont Blanc, 4806 m."]),
        ],
        judge=wrap(judge),
        mode="best_of",
    )
    message = await answer_invoke(fusion, QUESTION)
    assert message.content == "Mont Blanc, 4806 m."
    assert judge.calls == 1
    assert fusion_report(message)["judge"]["model"] == "fake-judge"


class StopRecordingJudge(FakeJudge):
    """A judge that records the `stop` words of each call."""

    _stops: list[Any] = PrivateAttr(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self._stops.append(stop)
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_a_bound_judge_keeps_its_binding_on_every_call():
    judge = StopRecordingJudge()
    fusion = FusionChatModel(
        pool=[
            FakeChatModel(model="a", responses=["Mont Blanc."]),
            FakeChatModel(model="b", responses=["Mont Blanc, 4806 m."]),
        ],
        judge=judge.bind(stop=["STOP"]),
        mode="merge",
    )
    fusion.invoke(QUESTION)  # sync: the recording judge overrides `_generate` only
    assert judge._stops == [["STOP"], ["STOP"]]


# -- names ----------------------------------------------------------------------------------


async def test_a_dict_pool_gives_explicit_names(answer_invoke):
    judge = FakeJudge()
    fusion = FusionChatModel(
        pool={
            "alpine": FakeChatModel(model="same-model", responses=["Mont Blanc."]),
            "swiss": FakeChatModel(model="same-model", responses=["Dufourspitze in Switzerland."]),
        },
        judge=judge,
        mode="merge",
    )
    message = await answer_invoke(fusion, QUESTION)
    assert candidates(message) == [
        ("alpine", "same-model", "ok"),
        ("swiss", "same-model", "ok"),
    ]
    assert sorted(fusion_report(message)["labels"].values()) == ["alpine", "swiss"]
    assert fusion_report(message)["usage_by_model"]["same-model"]["calls"] == 2


async def test_names_come_from_the_models_and_are_made_unique(answer_invoke):
    pool = [
        FakeChatModel(model="a", responses=["One."]),
        NamedByModelName(model_name="a", responses=["Two."]),
        FakeChatModel(model="a-2", responses=["Three."]),
        FakeChatModel(model="b", responses=["Four."]),
        FakeChatModel(model="a", responses=["Five."]),
    ]
    fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="best_of")
    assert [m.name for m in fusion.members] == ["a", "a-3", "a-2", "b", "a-4"]
    message = await answer_invoke(fusion, QUESTION)
    assert [(name, model) for name, model, _ in candidates(message)] == [
        ("a", "a"),
        ("a-3", "a"),
        ("a-2", "a-2"),
        ("b", "b"),
        ("a-4", "a"),
    ]


def test_two_copies_of_one_model_get_a_dash_two():
    model = FakeChatModel(model="a")
    fusion = FusionChatModel(pool=[model, model, NamedByModelName()], judge=FakeJudge())
    assert [m.name for m in fusion.members] == ["a", "a-2", "named"]


async def test_one_model_can_be_member_and_judge(answer_invoke):
    judge = FakeJudge(responses=["Mont Blanc."])
    fusion = FusionChatModel(
        pool=[judge, FakeChatModel(model="b", responses=["Mont Blanc, 4806 m."])],
        judge=judge,
        mode="best_of",
    )
    report = fusion_report(await answer_invoke(fusion, QUESTION))
    assert [c["name"] for c in report["candidates"]] == ["fake-judge", "b"]
    assert report["usage_by_model"]["fake-judge"]["calls"] == 2


# -- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("gpt-4o", "string"),  # not a "vendor/model" slug
        (RunnableLambda(lambda x: x), "RunnableLambda"),
        (42, "int"),
        (None, "NoneType"),
        (FakeChatModel, "type"),
    ],
)
def test_pool_entries_that_are_not_chat_models_are_refused(bad, what, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")  # a key must not make "gpt-4o" valid
    good = FakeChatModel(model="good")
    with pytest.raises(ValidationError) as caught:
        FusionChatModel(pool=[good, good, bad], judge=FakeJudge())
    message = str(caught.value)
    assert "pool[2]" in message
    assert what in message
    assert "BaseChatModel" in message  # says what is accepted


def test_a_dict_pool_entry_that_is_not_a_chat_model_is_named_by_key():
    with pytest.raises(ValidationError, match=r"pool\['second'\]"):
        FusionChatModel(
            pool={"first": FakeChatModel(), "second": RunnableLambda(lambda x: x)},
            judge=FakeJudge(),
        )


@pytest.mark.parametrize("pool", [[], {}, (), "a model", 3])
def test_an_empty_or_malformed_pool_is_refused(pool):
    with pytest.raises(ValidationError, match="pool"):
        FusionChatModel(pool=pool, judge=FakeJudge())


@pytest.mark.parametrize("name", ["", "judge"])
def test_reserved_or_empty_member_names_are_refused(name):
    with pytest.raises(ValidationError, match="name"):
        FusionChatModel(pool={name: FakeChatModel()}, judge=FakeJudge())


@pytest.mark.parametrize("judge", ["gpt-4o", RunnableLambda(lambda x: x), 7, None])
def test_a_judge_that_is_not_a_chat_model_is_refused(judge, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    with pytest.raises(ValidationError) as caught:
        FusionChatModel(pool=[FakeChatModel()], judge=judge)
    assert "judge" in str(caught.value)


def test_pool_and_judge_are_required():
    with pytest.raises(ValidationError, match="pool"):
        FusionChatModel(judge=FakeJudge())
    with pytest.raises(ValidationError, match="judge"):
        FusionChatModel(pool=[FakeChatModel()])


def test_identity_names_pool_judge_and_mode():
    one = FusionChatModel(pool=[FakeChatModel(model="a")], judge=FakeJudge(), mode="merge")
    two = FusionChatModel(pool=[FakeChatModel(model="b")], judge=FakeJudge(), mode="merge")
    three = FusionChatModel(pool=[FakeChatModel(model="a")], judge=FakeJudge(), mode="debate")
    params = one._identifying_params
    assert params["pool"] == ["a=a"]
    assert params["judge"] == "fake-judge"
    assert params["mode"] == "merge"
    assert len({str(f._identifying_params) for f in (one, two, three)}) == 3
