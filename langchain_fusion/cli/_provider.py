"""Where the command's models answer: OpenRouter with a key, else the bundled simulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_fusion.chat_models import FusionChatModel
    from langchain_fusion.sim import Scenario

#: Mode names accepted by `--mode` (kept in step with `langchain_fusion._core.config.MODES`).
MODES = ("best_of", "merge", "debate", "vote")
#: The pool and judge used with `OPENROUTER_API_KEY` when `--pool`/`--judge` are not given.
OPENROUTER_POOL = ("anthropic/claude-3.7-sonnet", "google/gemini-2.0-flash-001", "openai/gpt-4o")
OPENROUTER_JUDGE = "openai/gpt-4o"
#: The key the fusion sends to the local simulator (which checks none).
SIMULATOR_KEY = "sk-local-simulator"


@dataclass
class Provider:
    """Where the command's slugs are sent.

    Attributes:
        description: The first line of output.
        base_url: The OpenAI-compatible API root for the slugs.
        api_key: The key (a placeholder for the simulator).
        pool: The default pool.
        judge: The default judge.
        served: The models the provider serves, when it is the simulator.
        simulator: The simulator's URL, when it is the simulator.
    """

    description: str
    base_url: str
    api_key: str
    pool: tuple[str, ...]
    judge: str
    served: tuple[str, ...] | None = None
    simulator: str | None = None


def scenario_roles(scenario: Scenario) -> tuple[tuple[str, ...], str]:
    """The default pool and judge of a scenario: its judge is the model named like one."""
    names = [m.name for m in scenario.models]
    judges = [n for n in names if "judge" in n.rsplit("/", 1)[-1].lower()]
    judge = judges[0] if judges else names[-1]
    pool = tuple(n for n in names if n != judge) or (judge,)
    return pool, judge


@contextlib.contextmanager
def provider_for(scenario_file: str | None, env: dict[str, str]) -> Iterator[Provider]:
    """OpenRouter when `OPENROUTER_API_KEY` is set, else the simulator started for the block."""
    from langchain_fusion.providers import (
        OPENROUTER_API_KEY_ENV,
        openrouter_base_url,
    )

    key = env.get(OPENROUTER_API_KEY_ENV)
    if key and scenario_file is None:
        base_url = env.get("OPENROUTER_API_BASE") or openrouter_base_url()
        yield Provider(
            description=f"provider: OpenRouter ({base_url}), key from {OPENROUTER_API_KEY_ENV}",
            base_url=base_url,
            api_key=key,
            pool=OPENROUTER_POOL,
            judge=OPENROUTER_JUDGE,
        )
        return
    from langchain_fusion.sim import load_scenario, run_simulator

    scenario = load_scenario(scenario_file)
    pool, judge = scenario_roles(scenario)
    why = "--scenario given" if scenario_file else f"no {OPENROUTER_API_KEY_ENV} set"
    judge_model = scenario.model(judge)
    judging = f"; simulated judge {judge}: {judge_model.judge.describe()}" if judge_model else ""
    with run_simulator(scenario) as sim:
        yield Provider(
            description=(
                f"provider: local simulator at {sim.base_url} ({why}; scenario "
                f"{scenario.name!r}, simulated models, no network{judging})"
            ),
            base_url=sim.openrouter_base_url,
            api_key=SIMULATOR_KEY,
            pool=pool,
            judge=judge,
            served=tuple(m.name for m in scenario.models),
            simulator=sim.base_url,
        )


def build_fusion(provider: Provider, mode: str, pool: list[str], judge: str) -> FusionChatModel:
    """The fusion the command runs: the slugs on the provider."""
    from langchain_fusion.chat_models import FusionChatModel

    return FusionChatModel(
        pool=pool,
        judge=judge,
        mode=mode,
        api_key=provider.api_key,
        base_url=provider.base_url,
    )
