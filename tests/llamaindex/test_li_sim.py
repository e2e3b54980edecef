"""FusionLLM over the simulator: OpenAILike members (and ChatOpenAI ones, mixed) on the
OpenAI wire protocol, 127.0.0.1 only. Usage and cost must match what the simulator billed."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest
from li_helpers import Answer, call
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from llama_index.core.tools import FunctionTool

from langchain_fusion.sim import Simulator
from llamaindex_fusion import FusionLLM

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

RIGHT = {"The answer is 391.", "391, clearly.", "It is 391."}  # t/wrong fixes itself in debate


def is_right(text: str) -> bool:
    """Each sentence is a right answer (merge and debate combine the agreeing answers)."""
    said = [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]
    return bool(said) and all(s in RIGHT for s in said)


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def pool_of(kind: str, openai_like: Callable[..., Any], chat_openai: Callable[..., Any]):
    if kind == "llamaindex":
        members = [openai_like("t/plain"), openai_like("t/wrong"), openai_like("t/other")]
    else:
        members = [openai_like("t/plain"), openai_like("t/wrong"), chat_openai("t/other")]
    return members, openai_like("t/judge")


def check_billing(answer: Answer, sim: Simulator) -> None:
    """Every token the simulator billed is in the fused usage, once, per model too."""
    stats = sim.stats()
    assert answer.usage["prompt_tokens"] == stats.totals.prompt_tokens
    assert answer.usage["completion_tokens"] == stats.totals.completion_tokens
    assert answer.usage["cost"] == pytest.approx(stats.totals.cost, abs=1e-12)
    for model, row in answer.report["usage_by_model"].items():
        served = stats.models[model]
        assert row["calls"] == served.requests
        assert (row["input_tokens"], row["output_tokens"]) == (
            served.prompt_tokens,
            served.completion_tokens,
        )


@pytest.mark.parametrize("kind", ["llamaindex", "mixed"])
@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
async def test_each_mode_through_every_method_on_the_simulator(
    sim: Simulator, openai_like: Any, chat_openai: Any, method: str, mode: str, kind: str
) -> None:
    pool, judge = pool_of(kind, openai_like, chat_openai)
    llm = FusionLLM(pool=pool, judge=judge, mode=mode, seed=7, debate_rounds=1)

    answer = await call(llm, method, "What is 17*23?")

    assert is_right(answer.text)  # the judge (oracle rule, accuracy 1) keeps a right answer
    assert answer.statuses() == {"t/plain": "ok", "t/wrong": "ok", "t/other": "ok"}
    assert answer.report["judge"]["status"] == "ok"
    if mode == "best_of":
        assert answer.report["winner"] in ("t/plain", "t/other")
    check_billing(answer, sim)


async def test_a_failing_provider_is_isolated(sim: Simulator, openai_like: Any) -> None:
    pool = [openai_like("t/plain"), openai_like("t/broken"), openai_like("t/other")]
    llm = FusionLLM(pool=pool, judge=openai_like("t/judge"), mode="merge")
    answer = await call(llm, "astream_chat", "What is 17*23?")
    assert answer.statuses() == {"t/plain": "ok", "t/broken": "error", "t/other": "ok"}
    assert is_right(answer.text)
    check_billing(answer, sim)


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
async def test_images_reach_every_member_on_the_wire(
    sim: Simulator, openai_like: Any, chat_openai: Any, method: str
) -> None:
    pool, judge = pool_of("mixed", openai_like, chat_openai)
    llm = FusionLLM(pool=pool, judge=judge, mode="best_of")
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="What is 17*23?"),
            ImageBlock(image=PNG, image_mimetype="image/png"),
        ],
    )
    answer = await call(llm, method, [message])
    stats = sim.stats()
    for model in ("t/plain", "t/wrong", "t/other"):
        assert stats.models[model].images == 1
    assert stats.models["t/judge"].images == 1  # the judge sees the images too
    check_billing(answer, sim)


@pytest.mark.parametrize("kind", ["llamaindex", "mixed"])
async def test_function_agent_on_the_simulator(
    sim: Simulator, openai_like: Any, chat_openai: Any, kind: str
) -> None:
    """best_of: the simulated judge calls every tool its prompt names, so it cannot write
    the final answer of an agent turn (merge, debate) on the simulator."""
    calls: list[tuple[int, int]] = []

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        calls.append((a, b))
        return a * b

    pool, judge = pool_of(kind, openai_like, chat_openai)
    llm = FusionLLM(pool=pool, judge=judge, mode="best_of")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)

    result = await agent.run(user_msg="Use multiply to compute 17 times 23.")

    assert calls == [(17, 23)]
    assert "391" in str(result.response.content)
    assert sim.stats().models["t/plain"].tool_calls == 1
