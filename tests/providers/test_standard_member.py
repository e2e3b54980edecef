"""langchain-tests' standard suites for `ChatOpenAICompatible`, on the simulator."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_fusion.providers import ChatOpenAICompatible
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(60)


class TestChatOpenAICompatibleUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatOpenAICompatible]:
        return ChatOpenAICompatible

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "p/std", "base_url": "http://127.0.0.1:9/api/v1", "api_key": "sk-x"}


class TestChatOpenAICompatibleIntegration(ChatModelIntegrationTests):
    base_url = ""

    @pytest.fixture(autouse=True)
    def _on_the_simulator(self, shared_sim: Simulator) -> None:
        type(self).base_url = shared_sim.openrouter_base_url

    @property
    def chat_model_class(self) -> type[ChatOpenAICompatible]:
        return ChatOpenAICompatible

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "p/std", "base_url": self.base_url, "api_key": "sk-x", "timeout": 10}

    @property
    def supports_image_inputs(self) -> bool:
        return False  # accepted, but the standard test downloads its image from the web
