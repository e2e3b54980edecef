"""LangChain's standard chat-model tests for `FusionChatModel`, one pair per mode (all four).

The pool is in-process fakes (`FakeChatModel`) judged by a `FakeJudge`, so the suite runs
without network. Tool calling, tool choice, structured output and image inputs are on; the
image tests' download is served from `examples/sun.png` (the `offline_image` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_fusion import FusionChatModel
from langchain_fusion.testing import FakeChatModel, FakeJudge


def fusion_params(mode: str) -> dict[str, Any]:
    """A pool of three fakes that answer in distinct sentences, and a fake judge."""
    return {
        "pool": [
            FakeChatModel(model="fake-alpha", responses=["Alpha answers first. Shared point."]),
            FakeChatModel(model="fake-beta", responses=["Beta answers second. Shared point."]),
            FakeChatModel(model="fake-gamma", responses=["Gamma answers third."]),
        ],
        "judge": FakeJudge(),
        "mode": mode,
        "debate_rounds": 1,
        "seed": 7,
    }


class _FusionStandardParams:
    """What the standard suites need to know about a fusion, set honestly."""

    mode: str = "merge"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return FusionChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return fusion_params(self.mode)

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # A fusion has no temperature, max_tokens, timeout, max_retries or api_key of its
        # own: those belong to the members.
        return {}

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # There is no single `model` to override: the pool is the model.
        return False


class _FusionUnitTests(_FusionStandardParams, ChatModelUnitTests):
    @pytest.mark.xfail(
        reason="FusionChatModel has no single `model`: a per-call `model` is rejected with "
        "FusionInputError, so ls_model_name names the fusion's mode, never a `model` kwarg",
        strict=True,
    )
    def test_standard_params_model_override(self, model: BaseChatModel) -> None:
        super().test_standard_params_model_override(model)


class _FusionIntegrationTests(_FusionStandardParams, ChatModelIntegrationTests):
    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @pytest.fixture(autouse=True)
    def _image_download_served_locally(self, offline_image: bytes) -> None:
        """The image tests' download of a PNG is served from `examples/sun.png`."""


class TestBestOfUnit(_FusionUnitTests):
    mode = "best_of"


class TestBestOfIntegration(_FusionIntegrationTests):
    mode = "best_of"


class TestMergeUnit(_FusionUnitTests):
    mode = "merge"


class TestMergeIntegration(_FusionIntegrationTests):
    mode = "merge"


class TestDebateUnit(_FusionUnitTests):
    mode = "debate"


class TestDebateIntegration(_FusionIntegrationTests):
    mode = "debate"


class TestVoteUnit(_FusionUnitTests):
    mode = "vote"


class TestVoteIntegration(_FusionIntegrationTests):
    mode = "vote"
