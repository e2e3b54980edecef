"""A simulated model called in process: the scenario's answers without HTTP.

`SimChatModel` answers exactly what the simulator's HTTP server would answer to the same
request (the same `build_answer`, the same token counts and prices), with none of the wire:
no latency, no faults, no streaming of its own. It makes large simulations (benchmarks of
thousands of fusions) cheap, and `tests/sim` checks it against the server.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr, model_validator

from langchain_fusion.sim import _wire
from langchain_fusion.sim._answer import Answer, build_answer
from langchain_fusion.sim._request import ChatRequest, Message
from langchain_fusion.sim._scenario import Scenario, SimModel

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def _wire_message(message: BaseMessage) -> Message:
    """A LangChain message as the simulator reads a wire message."""
    texts: list[str] = []
    images = 0
    content = message.content
    for part in [content] if isinstance(content, str) else content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
            images += 1
    calls: tuple[tuple[str, str], ...] = ()
    if isinstance(message, AIMessage):
        calls = tuple((c["name"], json.dumps(c["args"])) for c in message.tool_calls)
    role = _ROLES.get(message.type, message.type)
    return Message(role=role, text="\n".join(texts), images=images, tool_calls=calls)


class SimChatModel(BaseChatModel):
    """One model of a scenario, answering in process (no server, no latency, no faults).

    Its usage (`usage_metadata`) and cost (`response_metadata["token_usage"]["cost"]`, as
    OpenRouter reports it) are what the simulator would bill for the same request.

    ```python
    from langchain_fusion.sim import SimChatModel, default_scenario

    atlas = SimChatModel(scenario=default_scenario(), model="sim/atlas")
    atlas.invoke("What is 17*23?").content
    ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    scenario: Scenario
    """The scenario the model belongs to (its bank and seed)."""

    model: str
    """The model's name in the scenario."""

    _calls: int = PrivateAttr(default=0)
    _ids: Any = PrivateAttr(default_factory=itertools.count)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _known_model(self) -> SimChatModel:
        if self.scenario.model(self.model) is None:
            names = ", ".join(m.name for m in self.scenario.models)
            raise ValueError(f"model {self.model!r} is not in the scenario; use one of: {names}")
        return self

    @property
    def _llm_type(self) -> str:
        return "sim-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "scenario": self.scenario.name}

    @property
    def calls(self) -> int:
        """How many calls this model answered."""
        return self._calls

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI format) and an optional `tool_choice`, as a wire client would."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is True or tool_choice == "any":
            tool_choice = "required"
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model = self.scenario.model(self.model)
        assert model is not None  # checked at construction
        with self._lock:
            self._calls += 1
            number = next(self._ids)
        max_tokens = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
        request = ChatRequest(
            model=self.model,
            messages=[_wire_message(m) for m in messages],
            tools=list(kwargs.get("tools") or []),
            tool_choice=kwargs.get("tool_choice"),
            response_format=kwargs.get("response_format"),
            max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        )
        answer = build_answer(self.scenario, model, request, f"inproc_{number}")
        return ChatResult(generations=[ChatGeneration(message=_message(model, request, answer))])


def _message(model: SimModel, request: ChatRequest, answer: Answer) -> AIMessage:
    prompt_tokens = request.prompt_tokens(model.image_tokens)
    usage = _wire.usage(model, prompt_tokens, answer.completion_tokens)
    calls: list[ToolCall] = [
        {"name": c.name, "args": json.loads(c.arguments), "id": c.id, "type": "tool_call"}
        for c in answer.tool_calls
    ]
    return AIMessage(
        content=answer.text,
        tool_calls=calls,
        usage_metadata={
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
        },
        response_metadata={
            "model_name": model.name,
            "finish_reason": answer.finish_reason,
            "token_usage": usage,
        },
    )
