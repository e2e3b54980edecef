"""Configuration: defaults, mode aliases, field validation and checks against the pool."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from langchain_fusion._core.config import (
    MODES,
    SETTING_NAMES,
    FusionSettings,
    check_against_pool,
    resolve_settings,
)


def test_defaults() -> None:
    s = FusionSettings()
    assert s.mode == "merge"
    assert s.criteria is None
    assert s.min_successful == 1
    assert s.quorum is None
    assert s.grace == 0.0
    assert s.member_timeout is None
    assert s.judge_timeout is None
    assert s.deadline is None
    assert s.debate_rounds == 2
    assert s.topology == "all"
    assert s.on_judge_failure == "fallback"
    assert s.max_concurrency is None
    assert s.seed is None


def test_settings_dict_has_every_setting_name() -> None:
    s = FusionSettings(mode="debate", seed=7)
    d = s.settings()
    assert list(d) == list(SETTING_NAMES)
    assert d["mode"] == "debate"
    assert d["seed"] == 7


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("best-of", "best_of"),
        ("BEST_OF", "best_of"),
        ("Best-Of", "best_of"),
        ("bestof", "best_of"),
        ("best_of", "best_of"),
        ("  Merge ", "merge"),
        ("DEBATE", "debate"),
    ],
)
def test_mode_aliases_are_normalised(given: str, expected: str) -> None:
    assert FusionSettings(mode=given).mode == expected


@pytest.mark.parametrize("bad", ["fast", "best of", "voting", ""])
def test_unknown_mode_names_field_and_valid_values(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        FusionSettings(mode=bad)
    errors = info.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == ("mode",)
    message = str(info.value)
    assert "mode" in message
    for mode in MODES:
        assert repr(mode) in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("member_timeout", 0),
        ("member_timeout", -1.0),
        ("judge_timeout", 0),
        ("judge_timeout", -0.5),
        ("deadline", 0),
        ("deadline", -10),
        ("grace", -0.1),
        ("debate_rounds", -1),
        ("min_successful", 0),
        ("min_successful", -2),
        ("quorum", 0),
        ("max_concurrency", 0),
    ],
)
def test_out_of_range_values_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        FusionSettings(**{field: value})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert field in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grace": 0},
        {"debate_rounds": 0},
        {"member_timeout": 0.001, "judge_timeout": 1, "deadline": 2},
        {"min_successful": 1, "quorum": 1},
    ],
)
def test_boundary_values_are_accepted(kwargs: dict[str, float]) -> None:
    s = FusionSettings(**kwargs)
    for key, value in kwargs.items():
        assert getattr(s, key) == value


def test_resolve_applies_overrides() -> None:
    base = FusionSettings(mode="merge", criteria="be brief")
    s = resolve_settings(base, {"mode": "best-of", "quorum": 2, "grace": 0.5}, pool_size=3)
    assert s.mode == "best_of"
    assert s.quorum == 2
    assert s.grace == 0.5
    assert s.criteria == "be brief"
    # The base is left unchanged.
    assert base.mode == "merge"
    assert base.quorum is None


def test_resolve_ignores_unknown_keys() -> None:
    base = FusionSettings(mode="debate")
    s = resolve_settings(
        base, {"temperature": 0.3, "stop": ["x"], "pool": ["a"], "judge": "j"}, pool_size=2
    )
    assert s == base
    assert not hasattr(s, "temperature")


def test_resolve_validates_overrides() -> None:
    with pytest.raises(ValidationError) as info:
        resolve_settings(FusionSettings(), {"deadline": -1}, pool_size=3)
    assert [e["loc"] for e in info.value.errors()] == [("deadline",)]


def test_min_successful_greater_than_pool() -> None:
    with pytest.raises(ValidationError) as info:
        resolve_settings(FusionSettings(), {"min_successful": 4}, pool_size=3)
    message = str(info.value)
    assert "min_successful (4) is greater than the pool size (3)" in message
    assert "lower min_successful or add members to the pool" in message


def test_quorum_greater_than_pool() -> None:
    with pytest.raises(ValidationError) as info:
        resolve_settings(FusionSettings(min_successful=2), {"quorum": 5}, pool_size=3)
    message = str(info.value)
    assert "quorum (5) is greater than the pool size (3)" in message
    assert "set quorum between 2 and 3, or None" in message


def test_quorum_smaller_than_min_successful() -> None:
    with pytest.raises(ValidationError) as info:
        resolve_settings(FusionSettings(), {"min_successful": 3, "quorum": 2}, pool_size=4)
    message = str(info.value)
    assert "quorum (2) is smaller than min_successful (3)" in message
    assert "set quorum between 3 and 4, or None" in message


def test_pool_limits_accepted_at_the_edges() -> None:
    s = resolve_settings(FusionSettings(), {"min_successful": 3, "quorum": 3}, pool_size=3)
    assert (s.min_successful, s.quorum) == (3, 3)
    s = resolve_settings(FusionSettings(), {"min_successful": 1, "quorum": None}, pool_size=1)
    assert s.quorum is None


def test_model_validate_with_pool_size_context() -> None:
    with pytest.raises(ValidationError, match="min_successful"):
        FusionSettings.model_validate({"min_successful": 2}, context={"pool_size": 1})
    # Without the pool size the same settings are valid: the pool check needs the pool.
    assert FusionSettings.model_validate({"min_successful": 2}).min_successful == 2


def test_check_against_pool_raises_value_error() -> None:
    check_against_pool(FusionSettings(min_successful=2, quorum=2), 2)
    with pytest.raises(ValueError, match="min_successful"):
        check_against_pool(FusionSettings(min_successful=3), 2)
    with pytest.raises(ValueError, match="quorum"):
        check_against_pool(FusionSettings(quorum=3), 2)


# -- constructor arguments ------------------------------------------------------------------


def _fusion_classes() -> list[type]:
    from langchain_fusion import FusionChatModel

    classes: list[type] = [FusionChatModel]
    try:
        from llamaindex_fusion import FusionLLM
    except ImportError:  # pragma: no cover - the llamaindex extra is installed in CI
        return classes
    return [*classes, FusionLLM]


@pytest.mark.parametrize("cls", _fusion_classes(), ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("mdoe", "mode"), ("debate_round", "debate_rounds"), ("judge_timout", "judge_timeout")],
)
def test_a_misspelt_setting_is_refused_with_the_closest_name(cls, typo, suggestion) -> None:
    from langchain_fusion.testing import FakeChatModel, FakeJudge

    with pytest.raises(ValidationError) as caught:
        cls(pool=[FakeChatModel(model="a")], judge=FakeJudge(), **{typo: 2})
    assert caught.value.error_count() == 1
    error = caught.value.errors()[0]
    assert error["loc"] == (typo,)
    assert f"did you mean {suggestion!r}?" in error["msg"]


def test_an_unknown_argument_is_named_but_its_value_never_shown() -> None:
    from langchain_fusion import FusionChatModel
    from langchain_fusion.testing import FakeChatModel, FakeJudge

    secret = "sk-or-v1-0123456789abcdef0123456789abcdef"
    with pytest.raises(ValidationError) as caught:
        FusionChatModel(
            pool=[FakeChatModel(model="a")], judge=FakeJudge(), api_kye=secret, colour="red"
        )
    assert [e["loc"] for e in caught.value.errors()] == [("api_kye",), ("colour",)]
    assert "did you mean 'api_key'?" in str(caught.value)
    assert "remove it" in str(caught.value)  # no close name for "colour"
    for text in (str(caught.value), repr(caught.value), caught.value.json()):
        assert secret[-11:] not in text


def test_stop_given_at_construction_reaches_best_of_members_and_a_call_replaces_it() -> None:
    from langchain_fusion import FusionChatModel
    from langchain_fusion.testing import FakeChatModel, FakeJudge

    pool = [
        FakeChatModel(model="a", responses=["Paris. Then more."]),
        FakeChatModel(model="b", responses=["Lyon. Then more."]),
    ]
    fusion = FusionChatModel(
        pool=pool, judge=FakeJudge(prefer="Paris"), mode="best_of", stop=[" Then"]
    )
    assert fusion.invoke("Capital?").text == "Paris."
    assert fusion.invoke("Capital?", stop=["."]).text == "Paris"
    assert fusion._get_ls_params()["ls_stop"] == [" Then"]


def test_streaming_true_makes_invoke_stream_its_tokens_to_callbacks() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    from langchain_fusion import FusionChatModel
    from langchain_fusion.testing import FakeChatModel, FakeJudge

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: object) -> None:
            self.tokens.append(token)

    pool = [FakeChatModel(model=n, responses=[f"Answer {n} in words."]) for n in "ab"]
    for streaming in (False, True):
        handler = Tokens()
        fusion = FusionChatModel(pool=pool, judge=FakeJudge(), mode="best_of", streaming=streaming)
        message = fusion.invoke("Question?", config={"callbacks": [handler]})
        assert ("".join(handler.tokens) == message.text) is streaming
