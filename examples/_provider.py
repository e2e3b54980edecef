"""Where the examples' models answer: OpenRouter with a key, else the bundled simulator.

Every example opens `provider(scenario)` and prints `where.description` as its first line.
With `OPENROUTER_API_KEY` set, `where.openrouter` is true and the example uses OpenRouter
slugs (keyed from the environment). Otherwise the local provider simulator serves the
scenario (127.0.0.1, simulated models, no network) for the block, and
`where.chat_openai(model)` / `where.openai_like(model)` are LangChain / LlamaIndex clients of
it; `simulator_too=True` starts it even with a key, for members that have no other endpoint.

(`langchain_fusion.cli._provider.provider_for` makes the same choice for the `fusion`
command, but it serves a given scenario even when a key is set, and speaks of `--scenario`.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_fusion.providers import OPENROUTER_API_KEY_ENV, openrouter_base_url
from langchain_fusion.sim import Simulator, load_scenario, run_simulator

#: The key the examples send to the simulator (which checks none).
SIMULATOR_KEY = "sk-local-simulator"


@dataclass
class Provider:
    """Where an example's models answer.

    Attributes:
        description: The example's first line of output.
        openrouter: Whether slugs go to OpenRouter (`OPENROUTER_API_KEY` is set).
        sim: The simulator serving the scenario, when there is one.
    """

    description: str
    openrouter: bool
    sim: Simulator | None = None

    def _served(self) -> Simulator:
        if self.sim is None:
            raise RuntimeError("no simulator is running: use OpenRouter slugs")
        return self.sim

    def slug_settings(self) -> dict[str, Any]:
        """`api_key` and `base_url` for a fusion whose members are slugs, on this provider."""
        if self.openrouter:
            return {}  # the fusion reads OPENROUTER_API_KEY and OPENROUTER_API_BASE itself
        return {"api_key": SIMULATOR_KEY, "base_url": self.sim.openrouter_base_url}

    def chat_openai(self, model: str, **kwargs: Any) -> Any:
        """A LangChain `ChatOpenAI` client of a simulated model (no retries, usage streamed)."""
        from langchain_openai import ChatOpenAI

        kwargs.setdefault("max_retries", 0)
        return ChatOpenAI(
            model=model,
            base_url=self._served().openai_base_url,
            api_key=SIMULATOR_KEY,
            stream_usage=True,
            **kwargs,
        )

    def openai_like(self, model: str) -> Any:
        """A LlamaIndex `OpenAILike` client of a simulated model that can call functions."""
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(
            model=model,
            api_base=self._served().openai_base_url,
            api_key=SIMULATOR_KEY,
            is_chat_model=True,
            is_function_calling_model=True,
            context_window=32768,
            max_retries=0,
        )


@contextmanager
def provider(scenario: Path | None = None, *, simulator_too: bool = False) -> Iterator[Provider]:
    """OpenRouter when `OPENROUTER_API_KEY` is set, else the simulator serving `scenario`.

    Args:
        scenario: A scenario file for the simulator; None serves the bundled demo scenario.
        simulator_too: Start the simulator with a key as well.
    """
    openrouter = bool(os.environ.get(OPENROUTER_API_KEY_ENV))
    on_openrouter = f"OpenRouter ({openrouter_base_url()}), key from {OPENROUTER_API_KEY_ENV}"
    if openrouter and not simulator_too:
        yield Provider(f"provider: {on_openrouter}", openrouter)
        return
    served = load_scenario(str(scenario) if scenario else None)
    with run_simulator(served) as sim:
        simulated = f"local simulator at {sim.base_url} (scenario {served.name!r}, simulated models"
        if openrouter:
            description = f"provider: {on_openrouter}; {simulated} for the rest)"
        else:
            description = f"provider: {simulated}, no network; no {OPENROUTER_API_KEY_ENV} set)"
        yield Provider(description, openrouter, sim)
