"""LangChain's standard integration suite for `FusionChatModel` over real HTTP clients.

Pool and judge are `ChatOpenAI` and `ChatOpenRouter` clients of the simulator (the same
session simulator as the rest of this directory), one suite for each of the four modes, each
with its own mix of clients. The scenario's models answer what the suite asks: tool calls
are made when a tool is forced or named in the prompt (`magic_function(3)` gives
`{"input": 3}` from the number in the prompt), structured output is filled from the
requested schema, and a judge bound with the caller's tools writes the fused tool call from
the candidates' proposals.

Feature flags are what the fusion and the simulator really do: tool calling, tool choice
and structured output (through tools) yes; JSON mode no (the fusion has no
`with_structured_output` of its own, so only tool-based structured output exists); images
yes (the suite's image tests download their image from the internet: the `offline_image`
fixture serves `examples/sun.png` instead, and the members receive it over HTTP); no single
`model` to override.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import chat
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Simulator

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("warm_async")]

_SIM: list[Simulator] = []


@pytest.fixture(autouse=True)
def _running_sim(sim: Simulator) -> None:
    """Makes the session simulator reachable from the suite's `chat_model_params`."""
    _SIM[:] = [sim]


#: Clients of the members (ada, bob, cy) and of the judge, per suite.
#: ChatOpenRouter costs several times the client CPU of ChatOpenAI per call
#: (benchmarks/client_cpu.py), so each suite has one ChatOpenRouter member; the
#: ChatOpenRouter judge is covered by test_e2e_modes.py.
MIXES = {
    "best_of": (["openai", "openai", "openai"], "openai"),
    "merge": (["openai", "openrouter", "openai"], "openai"),
    "debate": (["openai", "openai", "openrouter"], "openai"),
    "vote": (["openrouter", "openai", "openai"], "openai"),
}


class _FusionOnSimulator(ChatModelIntegrationTests):
    mode: str = "merge"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return FusionChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        sim = _SIM[0]
        members, judge = MIXES[self.mode]
        names = ["e2e/ada", "e2e/bob", "e2e/cy"]
        return {
            "pool": [chat(sim, c, n) for c, n in zip(members, names, strict=True)],
            "judge": chat(sim, judge, "e2e/judge"),
            "mode": self.mode,
            "debate_rounds": 1,
            "seed": 11,
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # Temperature, max_tokens, timeout, max_retries and api_key belong to the members.
        return {}

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False  # the pool is the model: there is no single `model` to override

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False

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


class TestBestOfOnSimulator(_FusionOnSimulator):
    mode = "best_of"


class TestMergeOnSimulator(_FusionOnSimulator):
    mode = "merge"


class TestDebateOnSimulator(_FusionOnSimulator):
    mode = "debate"


class TestVoteOnSimulator(_FusionOnSimulator):
    mode = "vote"
