"""Image routing over the simulator: text-only members sit out, vision members get the image.

The simulator counts the image parts each model received (`/stats`), so routing is checked
on what was sent over HTTP, not on what the fusion says it did.
"""

from __future__ import annotations

import base64

import pytest
from agents_helpers import EXAMPLES, chat, report, statuses
from langchain_core.messages import HumanMessage

from langchain_fusion import FusionChatModel, FusionInputError
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(30)

PNG = (EXAMPLES / "sun.png").read_bytes()
B64 = base64.b64encode(PNG).decode()
BLOCKS = {
    "v1-base64": {"type": "image", "base64": B64, "mime_type": "image/png"},
    "openai-image_url": {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
}
# verdict; comparison + synthesis
JUDGE_CALLS = {"best_of": 1, "merge": 2}


def prompt(block: dict) -> list[HumanMessage]:
    return [HumanMessage(content=[{"type": "text", "text": "Describe this image."}, block])]


def test_the_shipped_image_is_a_small_png():
    assert PNG.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(PNG) < 20_000


@pytest.mark.parametrize("block", list(BLOCKS.values()), ids=list(BLOCKS))
@pytest.mark.parametrize("mode", ["best_of", "merge"])
async def test_text_only_member_is_skipped_and_vision_members_see_the_image(
    sim: Simulator, mode: str, block: dict
):
    fusion = FusionChatModel(
        pool={
            "ada": chat(sim, "agents/ada"),
            "bob": chat(sim, "agents/bob"),
            # Known text-only from its profile.
            "blind": chat(sim, "agents/blind", profile={"image_inputs": False}),
        },
        judge=chat(sim, "agents/judge"),
        mode=mode,
        seed=3,
    )
    message = await fusion.ainvoke(prompt(block))

    assert statuses(message) == {"ada": "ok", "bob": "ok", "blind": "skipped"}
    blind = next(c for c in report(message)["candidates"] if c["name"] == "blind")
    assert blind["error"] == "does not accept image inputs"
    stats = sim.stats().models
    assert (stats["agents/ada"].requests, stats["agents/ada"].images) == (1, 1)
    assert (stats["agents/bob"].requests, stats["agents/bob"].images) == (1, 1)
    assert (stats["agents/blind"].requests, stats["agents/blind"].images) == (0, 0)
    # The judge accepts images (nothing says otherwise): every judge call carries the image.
    judge = stats["agents/judge"]
    assert (judge.requests, judge.images) == (JUDGE_CALLS[mode], JUDGE_CALLS[mode])
    if mode == "best_of":  # the longer description wins
        assert message.text == "A yellow sun above a green field."
    else:
        assert message.text == "A yellow sun above a green field. A yellow sun in a blue sky."


async def test_capabilities_override_declares_members_text_only(sim: Simulator):
    fusion = FusionChatModel(
        pool={
            "ada": chat(sim, "agents/ada"),
            "blind": chat(sim, "agents/blind"),
            "cy": chat(sim, "agents/cy"),
        },
        judge=chat(sim, "agents/judge"),
        mode="best_of",
        capabilities={"blind": {"image_inputs": False}, "judge": {"image_inputs": False}},
    )
    message = await fusion.ainvoke(prompt(BLOCKS["v1-base64"]))
    assert statuses(message) == {"ada": "ok", "blind": "skipped", "cy": "ok"}
    stats = sim.stats().models
    assert stats["agents/blind"].requests == 0
    assert stats["agents/ada"].images == stats["agents/cy"].images == 1
    # A judge declared text-only is told of the image but does not receive it.
    assert (stats["agents/judge"].requests, stats["agents/judge"].images) == (1, 0)


async def test_no_member_accepts_images_fails_before_any_call(sim: Simulator):
    fusion = FusionChatModel(
        pool=[chat(sim, "agents/blind"), chat(sim, "agents/ada")],
        judge=chat(sim, "agents/judge"),
        capabilities={
            "agents/blind": {"image_inputs": False},
            "agents/ada": {"image_inputs": False},
        },
    )
    with pytest.raises(FusionInputError, match="does not accept image inputs"):
        await fusion.ainvoke(prompt(BLOCKS["openai-image_url"]))
    assert sim.stats().totals.requests == 0


def test_profile_says_images_when_enough_members_accept_them(sim: Simulator):
    seeing = [
        chat(sim, name, profile={"image_inputs": True}) for name in ("agents/ada", "agents/bob")
    ]
    blind = chat(sim, "agents/blind", profile={"image_inputs": False})
    fusion = FusionChatModel(pool=[*seeing, blind], judge=chat(sim, "agents/judge"))
    assert fusion.profile is not None and fusion.profile["image_inputs"] is True
    assert fusion.profile["tool_calling"] is True
    strict = FusionChatModel(
        pool=[*seeing, blind], judge=chat(sim, "agents/judge"), min_successful=3
    )
    assert strict.profile is not None and strict.profile["image_inputs"] is False
