"""The runtime façade both faces share: participants cached between calls, judge runnables
built once, one capability rule, and the shared worker threads of sync fusions."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import PrivateAttr

from langchain_fusion import FusionChatModel
from langchain_fusion._core.config import ModelPrice
from langchain_fusion._runtime.workers import Workers
from langchain_fusion.testing import FakeChatModel, FakeJudge
from llamaindex_fusion import FusionLLM


class CountingJudge(FakeJudge):
    """Counts how often a structured-output runnable is built from it."""

    _built: int = PrivateAttr(default=0)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        self._built += 1
        return super().with_structured_output(schema, **kwargs)


def pool() -> list[FakeChatModel]:
    return [
        FakeChatModel(model="a", responses=["One."]),
        FakeChatModel(model="b", responses=["Two."]),
    ]


def test_participants_are_resolved_once_and_rebuilt_when_a_field_changes() -> None:
    fusion = FusionChatModel(pool=pool(), judge=FakeJudge(), hedge={"a": True})
    first = fusion._participants()
    assert fusion._participants() is first  # hedge wrappers and all, kept between calls
    hedged = first[0][0].runnable
    fusion.invoke("Which?")
    assert fusion._participants()[0][0].runnable is hedged
    fusion.capabilities["b"] = {"image_inputs": False}  # changed in place
    second = fusion._participants()
    assert second is not first and second[0][1].overrides == {"image_inputs": False}
    fusion.pool = [*fusion.pool, FakeChatModel(model="c")]
    assert [m.name for m in fusion.members] == ["a", "b", "c"]
    assert fusion._participants(hedge_after=0.5)[0][0].runnable.after == 0.5  # type: ignore[attr-defined]


def test_both_faces_derive_tools_images_and_limits_by_one_rule() -> None:
    members = [
        FakeChatModel(model="a", profile={"image_inputs": True, "max_input_tokens": 8000}),
        FakeChatModel(model="b", profile={"image_inputs": False, "max_output_tokens": 500}),
    ]
    for min_successful, mode in [(1, "merge"), (2, "merge"), (2, "best_of")]:
        for judge in (FakeJudge(), FakeJudge(profile={"tool_calling": False})):
            kwargs: dict[str, Any] = {"min_successful": min_successful, "mode": mode}
            lc = FusionChatModel(pool=members, judge=judge, **kwargs)
            li = FusionLLM(pool=members, judge=judge, **kwargs)
            profile = lc.profile
            assert profile is not None
            assert li.metadata.is_function_calling_model is profile["tool_calling"]
            assert (li.metadata.context_window, li.metadata.num_output) == (8000, 500)
            assert profile["image_inputs"] is (min_successful == 1)
            assert profile["tool_calling"] is (
                mode == "best_of" or judge.profile is None or judge.profile["tool_calling"]
            )


def test_workers_are_reused_and_a_straggler_holds_up_nothing() -> None:
    workers = Workers(idle_s=5.0)
    release = threading.Event()
    straggler = workers.submit(release.wait, 10)  # a thread the fusion gave up on
    names = [workers.submit(lambda: threading.current_thread().name).result(1) for _ in range(5)]
    assert len(names) == 5  # none waited for the straggler
    idents = {workers.submit(threading.get_ident).result(1) for _ in range(5)}
    assert len(idents) == 1  # one idle thread took the work one after another
    assert not straggler.done()
    release.set()
    assert straggler.result(1) is True


def test_workers_copy_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    assert Workers().submit(var.get).result(1) == "caller"


class Counting(FakeChatModel):
    """Counts the calls running at once."""

    _now: int = PrivateAttr(default=0)
    _peak: int = PrivateAttr(default=0)
    _guard: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        with self._guard:
            self._now += 1
            self._peak = max(self._peak, self._now)
        time.sleep(0.05)
        with self._guard:
            self._now -= 1
        return super()._generate(messages, *args, **kwargs)


def test_a_sync_fan_out_keeps_to_max_concurrency_on_the_shared_workers() -> None:
    shared = Counting(model="m", responses=["Same."])
    fusion = FusionChatModel(
        pool=[shared] * 4, judge=FakeJudge(), mode="best_of", max_concurrency=2
    )
    fusion.invoke("Which?")
    assert shared._peak == 2


def test_settings_are_validated_again_when_a_setting_changes_even_in_place() -> None:
    fusion = FusionChatModel(pool=pool(), judge=FakeJudge(), mode="best_of")
    first = fusion._call_settings({})
    assert fusion._call_settings({}) is first  # unchanged: validated once
    fusion.prices["a"] = ModelPrice(prompt=1.0, completion=2.0)  # a dict changed in place
    assert fusion._call_settings({}).prices == {"a": ModelPrice(prompt=1.0, completion=2.0)}
    fusion.mode = "merge"
    assert fusion._call_settings({}).mode == "merge"
    assert fusion._call_settings({"mode": "vote"}).mode == "vote"
    assert fusion._call_settings({}).mode == "merge"


def test_settings_holding_an_object_that_cannot_be_copied_are_cached_as_they_are() -> None:
    class Agreement:
        def __init__(self) -> None:
            self.lock = threading.Lock()  # cannot be deep-copied

        def __call__(self, texts: list[str]) -> bool:
            return False

    fusion = FusionChatModel(pool=pool(), judge=FakeJudge(), agreement=Agreement())
    first = fusion._call_settings({})
    assert fusion._call_settings({}) is first
    assert fusion.invoke("Which?").content
