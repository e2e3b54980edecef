"""A hedged member's copies run where the member runs: under the fusion's trace, in its context.

Both copies of a hedged member (the primary, and the backup started when the primary's first
token is late) are child runs of the member's run, itself a child of the fusion run; in sync
code they run on threads that copy the caller's context, so that the fusion's deadline (which
bounds retries) reaches them.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from pydantic import PrivateAttr
from test_tracing import HOW, RunCollector, run_fusion

from langchain_fusion import FusionChatModel
from langchain_fusion._http import FUSION_DEADLINE
from langchain_fusion.testing import FakeChatModel, FakeJudge


class DeadlineSpy(FakeChatModel):
    """Records the retry deadline its calls see (None: no deadline in their context)."""

    _seen: list[float | None] = PrivateAttr(default_factory=list)

    def _record(self) -> None:
        self._seen.append(FUSION_DEADLINE.get())

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self._record()
        return super()._generate(messages, *args, **kwargs)

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self._record()
        return await super()._agenerate(messages, *args, **kwargs)

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self._record()
        yield from super()._stream(messages, *args, **kwargs)

    async def _astream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self._record()
        async for chunk in super()._astream(messages, *args, **kwargs):
            yield chunk


def hedged_fusion(backup: FakeChatModel) -> FusionChatModel:
    slow = DeadlineSpy(model="slow", responses=["Slow Paris."], latency=0.5)
    return FusionChatModel(
        pool={"a": slow, "b": FakeChatModel(model="b", responses=["Lyon."])},
        judge=FakeJudge(prefer="Backup"),
        mode="best_of",
        hedge={"a": backup},
        hedge_after=0.05,
        deadline=5.0,
    )


@pytest.mark.parametrize("how", HOW)
async def test_a_hedged_members_copies_nest_under_the_fusion_run(how: str) -> None:
    collector = RunCollector()
    backup = DeadlineSpy(model="backup", responses=["Backup Paris."])
    fusion = hedged_fusion(backup)

    message = await run_fusion(fusion, how, {"callbacks": [collector]})

    assert message.response_metadata["fusion"]["candidates"][0]["hedge"] == "backup"
    (root,) = [r for r in collector.runs.values() if r.parent_run_id is None]
    (member,) = collector.named("fusion:member:a")
    assert member.parent_run_id == root.id
    copies = {r.name: r for r in collector.runs.values() if r.parent_run_id == member.id}
    assert set(copies) == {"primary", "backup"}, sorted(r.name for r in collector.runs.values())
    for copy in copies.values():
        assert f"fusion:hedge:{copy.name}" in copy.tags
        assert "nostream" in copy.tags
    assert {r.id for r in collector.descendants(root)} >= {c.id for c in copies.values()}


@pytest.mark.parametrize("how", HOW)
async def test_a_hedged_members_copies_see_the_fusions_deadline(how: str) -> None:
    backup = DeadlineSpy(model="backup", responses=["Backup Paris."])
    fusion = hedged_fusion(backup)

    await run_fusion(fusion, how, {})

    primary = fusion.members[0].runnable.primary  # type: ignore[attr-defined]
    seen = [*primary._seen, *backup._seen]
    assert len(seen) == 2  # both copies ran
    assert all(at is not None for at in seen), seen  # the deadline reached both copies
