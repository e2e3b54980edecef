"""Golden tests: every prompt the library sends, rendered exactly as sent.

The prompts are captured from real fusions (the fakes record their inputs), with only the
per-call nonce replaced, and compared to snapshots (`__snapshots__/test_prompts_golden.ambr`):
the verdict, the corrective retry, the comparison, the synthesis, a debate revision and a
debate's final task. Each is also checked for stray doubled braces and unformatted
`{placeholders}`, which a template sent without `.format` would show.
"""

from __future__ import annotations

import re

import pytest
from langchain_core.messages import BaseMessage
from syrupy.assertion import SnapshotAssertion

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge

QUESTION = "Which river runs through Paris?"
_NONCE_RE = re.compile(r"\b[0-9a-f]{16}\b")
_PLACEHOLDER_RE = re.compile(r"\{[a-z_]+\}")


def rendered(messages: list[BaseMessage]) -> str:
    """The messages as sent, one block per message, the nonce replaced."""
    text = "\n\n".join(f"[{m.type}]\n{m.text}" for m in messages)
    return _NONCE_RE.sub("<nonce>", text)


def assert_clean(prompt: str) -> None:
    assert "{{" not in prompt and "}}" not in prompt, prompt
    assert not _PLACEHOLDER_RE.search(prompt), _PLACEHOLDER_RE.search(prompt)


def pool() -> dict[str, FakeChatModel]:
    return {
        "ada": FakeChatModel(model="ada", responses=["The Seine."]),
        "bob": FakeChatModel(model="bob", responses=["The Seine runs through Paris."]),
    }


async def test_verdict_and_corrective_retry(snapshot: SnapshotAssertion) -> None:
    judge = FakeChatModel(model="judge-model", responses=["I like the second one."])
    fusion = FusionChatModel(
        pool=pool(), judge=judge, mode="best_of", seed=7, criteria="prefer complete answers"
    )

    await fusion.ainvoke(QUESTION)

    verdict, retry = (rendered(i) for i in judge.inputs)
    for prompt in (verdict, retry):
        assert_clean(prompt)
    assert retry.startswith(verdict)
    assert verdict == snapshot(name="verdict")
    assert retry[len(verdict) :] == snapshot(name="corrective")


async def test_comparison_and_synthesis(snapshot: SnapshotAssertion) -> None:
    judge = FakeJudge(model="judge-model")
    fusion = FusionChatModel(pool=pool(), judge=judge, mode="merge", seed=7)

    await fusion.ainvoke(QUESTION)

    comparison, synthesis = (rendered(i) for i in judge.inputs)
    for prompt in (comparison, synthesis):
        assert_clean(prompt)
    assert '{"consensus": [...]' in comparison
    assert comparison == snapshot(name="comparison")
    assert synthesis == snapshot(name="synthesis")


async def test_debate_revision_and_final(snapshot: SnapshotAssertion) -> None:
    members = pool()
    judge = FakeJudge(model="judge-model")
    fusion = FusionChatModel(pool=members, judge=judge, mode="debate", debate_rounds=1, seed=7)

    await fusion.ainvoke(QUESTION)

    revision = rendered(members["ada"].inputs[1])
    final = rendered(judge.inputs[0])
    for prompt in (revision, final):
        assert_clean(prompt)
    assert revision == snapshot(name="revision")
    assert final == snapshot(name="final")


@pytest.mark.parametrize("mode", ["best_of", "merge"])
async def test_every_pass_prompt_is_clean(mode: str) -> None:
    judge = FakeJudge(model="judge-model")
    fusion = FusionChatModel(pool=pool(), judge=judge, mode=mode, judge_passes=3)

    await fusion.ainvoke(QUESTION)

    for messages in judge.inputs:
        assert_clean(rendered(messages))
