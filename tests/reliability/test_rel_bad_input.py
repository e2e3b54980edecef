"""Every invalid configuration and input: one clear error, raised before any network call.

Members and judge are real clients of the simulator; after each error the simulator has
received no request at all.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, ValidationError
from rel_helpers import PROMPT, call, openai_chat

from langchain_fusion import FusionChatModel, FusionInputError
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(30)]


def pool_and_judge(sim: Simulator) -> dict[str, Any]:
    return {
        "pool": {name: openai_chat(sim, f"rel/{name}") for name in ("ada", "bob", "cy")},
        "judge": openai_chat(sim, "rel/judge"),
    }


def assert_no_request(sim: Simulator) -> None:
    stats = sim.stats()
    assert stats.totals.requests == 0
    assert stats.rejected == 0


# (case id, constructor arguments over the valid ones, the field the error must name,
#  a text of the fix or reason the message must hold)
BAD_CONFIGS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown mode", {"mode": "fastest"}, "mode", "set mode to one of"),
    ("min_successful 0", {"min_successful": 0}, "min_successful", "greater than or equal to 1"),
    ("min_successful > pool", {"min_successful": 4}, "min_successful", "lower min_successful"),
    ("quorum > pool", {"quorum": 5}, "quorum", "set quorum between"),
    (
        "quorum < min_successful",
        {"quorum": 1, "min_successful": 2},
        "quorum",
        "set quorum between",
    ),
    ("negative grace", {"grace": -1}, "grace", "greater than or equal to 0"),
    ("zero member_timeout", {"member_timeout": 0}, "member_timeout", "greater than 0"),
    ("negative judge_timeout", {"judge_timeout": -1}, "judge_timeout", "greater than 0"),
    ("zero deadline", {"deadline": 0}, "deadline", "greater than 0"),
    ("negative debate_rounds", {"debate_rounds": -1}, "debate_rounds", "greater than or equal"),
    ("unknown topology", {"topology": "star"}, "topology", "'all' or 'ring'"),
    ("unknown on_judge_failure", {"on_judge_failure": "ignore"}, "on_judge_failure", "fallback"),
    ("zero max_concurrency", {"max_concurrency": 0}, "max_concurrency", "greater than or equal"),
    ("zero max_tokens", {"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ("zero max_cost_usd", {"max_cost_usd": 0}, "max_cost_usd", "greater than 0"),
    (
        "negative price",
        {"prices": {"rel/ada": {"prompt": -1, "completion": 0}}},
        "prices",
        "greater than or equal to 0",
    ),
    ("zero hedge_after", {"hedge_after": 0}, "hedge_after", "greater than 0"),
    ("seed not a number", {"seed": "abc"}, "seed", "valid integer"),
    ("agreement not callable", {"agreement": 42}, "agreement", "callable"),
    ("empty pool", {"pool": []}, "pool", "give at least one chat model"),
    ("pool of a number", {"pool": [42]}, "pool", "pass a LangChain chat model"),
    ("pool of a non-slug string", {"pool": ["gpt4o"]}, "pool", "write 'vendor/model'"),
    ("pool of None", {"pool": None}, "pool", "give a list of chat models"),
    ("judge a number", {"judge": 42}, "judge", "pass a LangChain chat model"),
    ("judge missing", {"judge": ...}, "judge", "Field required"),
    ("pool missing", {"pool": ...}, "pool", "Field required"),
    (
        "slug without a key",
        {"judge": "openai/gpt-4o", "api_key": None},
        "api_key",
        "OPENROUTER_API_KEY",
    ),
    ("slug base_url not a URL", {"judge": "a/b", "base_url": "nowhere"}, "base_url", "http"),
    (
        "capabilities of a non-member",
        {"capabilities": {"nobody": {"image_inputs": False}}},
        "capabilities",
        "use one of",
    ),
    (
        "unknown capability",
        {"capabilities": {"ada": {"telepathy": True}}},
        "capabilities",
        "use image_inputs, tool_calling",
    ),
    ("hedge of a non-member", {"hedge": {"nobody": True}}, "hedge", "not a pool member"),
    ("hedge not a model", {"hedge": {"ada": 42}}, "hedge", "pass a LangChain chat model"),
]


@pytest.mark.parametrize(
    ("given", "field", "fix"),
    [pytest.param(g, f, x, id=i) for i, g, f, x in BAD_CONFIGS],
)
def test_invalid_configuration_fails_at_construction(
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    given: dict[str, Any],
    field: str,
    fix: str,
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    kwargs = {**pool_and_judge(sim), "api_key": "sk-or-key", **given}
    kwargs = {k: v for k, v in kwargs.items() if v is not ...}

    with pytest.raises(ValidationError) as caught:
        FusionChatModel(**kwargs)

    error = caught.value
    assert error.error_count() == 1  # one clear error
    text = str(error)
    assert field in text, text  # names the field...
    assert fix in text, text  # ...and the fix
    assert_no_request(sim)


def test_a_misspelt_setting_fails_at_construction(sim: Simulator) -> None:
    with pytest.raises(ValidationError) as caught:
        FusionChatModel(**pool_and_judge(sim), mdoe="debate")

    assert "mdoe" in str(caught.value)
    assert_no_request(sim)


class GetWeather(BaseModel):
    """Get the weather of a city."""

    city: str


class GetTime(BaseModel):
    """Get the time in a city."""

    city: str


IMAGE = HumanMessage(
    [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image", "url": "https://example.com/cat.png"},
    ]
)

ENTRIES = ("invoke", "ainvoke", "stream", "astream")


def bad_inputs(sim: Simulator) -> dict[str, tuple[Any, Any, type[Exception], str]]:
    """Per-call misuse: (runnable, input, the error raised, a text the message holds)."""
    fusion = FusionChatModel(**pool_and_judge(sim), mode="merge")
    blind = FusionChatModel(
        **pool_and_judge(sim),
        capabilities={name: {"image_inputs": False} for name in ("ada", "bob", "cy")},
    )
    no_tools_judge = FusionChatModel(
        **pool_and_judge(sim), mode="merge", capabilities={"judge": {"tool_calling": False}}
    )
    return {
        "no messages": (fusion, [], FusionInputError, "no messages to fuse"),
        "unknown per-call argument": (
            fusion.bind(temperature=0.2),
            PROMPT,
            FusionInputError,
            "unknown per-call argument(s) temperature",
        ),
        "invalid per-call mode": (
            fusion.bind(mode="fastest"),
            PROMPT,
            ValidationError,
            "set mode to one of",
        ),
        "per-call min_successful > pool": (
            fusion.bind(min_successful=7),
            PROMPT,
            ValidationError,
            "lower min_successful",
        ),
        "per-call negative timeout": (
            fusion.bind(member_timeout=-1),
            PROMPT,
            ValidationError,
            "member_timeout",
        ),
        "an image no member can see": (blind, [IMAGE], FusionInputError, "no pool member"),
        "a required tool call the judge cannot make": (
            no_tools_judge.bind_tools([GetWeather], tool_choice="any"),
            PROMPT,
            FusionInputError,
            "the judge cannot call tools",
        ),
        "input of a wrong type": (fusion, 42, ValueError, "Invalid input type"),
    }


BAD_INPUTS = [
    "no messages",
    "unknown per-call argument",
    "invalid per-call mode",
    "per-call min_successful > pool",
    "per-call negative timeout",
    "an image no member can see",
    "a required tool call the judge cannot make",
    "input of a wrong type",
]


@pytest.mark.usefixtures("warm_async")
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("case", BAD_INPUTS)
async def test_invalid_input_fails_before_any_call(sim: Simulator, case: str, entry: str) -> None:
    runnable, given, error_type, text = bad_inputs(sim)[case]

    with pytest.raises(error_type) as caught:
        await call(entry, runnable, given)

    assert text in str(caught.value), str(caught.value)
    assert_no_request(sim)


def test_tool_choice_true_needs_one_tool(sim: Simulator) -> None:
    fusion = FusionChatModel(**pool_and_judge(sim))
    with pytest.raises(ValueError, match="tool_choice=True needs exactly one tool"):
        fusion.bind_tools([GetWeather, GetTime], tool_choice=True)
    assert_no_request(sim)
