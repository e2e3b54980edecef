"""A vision pool: a fusion describes the image shipped next to this file (`sun.png`).

The pool: a vision model served through an OpenAI-compatible endpoint (e.g. Mistral Small 3.1
on vLLM or on La Plateforme), a second vision model, and a text-only model. The text-only
member sits the call out (reported `skipped`, with the reason); the vision members and the
judge receive the image.

Where the models run, printed on the first line:
- the vision member: `VISION_BASE_URL`, `VISION_MODEL` and `VISION_API_KEY` when set, e.g.
  `VISION_BASE_URL=https://api.mistral.ai/v1 VISION_MODEL=mistral-small-2503` (La Plateforme)
  or `VISION_BASE_URL=http://localhost:8000/v1
  VISION_MODEL=mistralai/Mistral-Small-3.1-24B-Instruct-2503` (vLLM);
- the other two members and the judge: OpenRouter when `OPENROUTER_API_KEY` is set;
- anything not configured: the local simulator (127.0.0.1, scenario
  `examples/scenarios/showcase.yaml`), so that the example runs offline.

Run: `python examples/vision_pool.py [--mode best_of|merge|debate] [image.png]`
Needs: `pip install "llm-fusion[sim]" langchain-openai`
"""

from __future__ import annotations

import argparse
import base64
import mimetypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

from langchain_fusion import FusionChatModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import provider

HERE = Path(__file__).parent
IMAGE = HERE / "sun.png"
SCENARIO = HERE / "scenarios" / "showcase.yaml"
PROMPT = "Describe this image in one or two sentences."

# The member on the VISION_* endpoint: (name, simulated stand-in).
VISION_MEMBER = ("vision", "sim/mistral-small-3.1")
# The other two: (name, OpenRouter slug, simulated stand-in); the last one is text-only.
OTHERS = [
    ("vision-2", "openai/gpt-4o-mini", "sim/atlas"),
    ("text-only", "meta-llama/llama-3.3-70b-instruct", "sim/scribe"),
]
TEXT_ONLY = "text-only"
JUDGE = ("openai/gpt-4o-mini", "sim/judge")


@dataclass
class Setup:
    pool: dict[str, Any] = field(default_factory=dict)
    judge: Any = None
    where: dict[str, str] = field(default_factory=dict)
    simulated: dict[str, str] = field(default_factory=dict)
    sim: Any = None
    provider: str = ""


def openai_chat(model: str, base_url: str, api_key: str, **kwargs: Any) -> Any:
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("max_retries", 1)
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=api_key,
        stream_usage=True,
        **kwargs,
    )


@contextmanager
def models() -> Iterator[Setup]:
    """The pool and judge, each from its configured provider, else from the simulator."""
    setup = Setup()
    vision_url, vision_model = os.environ.get("VISION_BASE_URL"), os.environ.get("VISION_MODEL")
    with provider(SCENARIO, simulator_too=not (vision_url and vision_model)) as place:
        openrouter = place.openrouter
        setup.sim, setup.provider = place.sim, place.description.removeprefix("provider: ")

        def simulated(name: str, model: str, **kwargs: Any) -> Any:
            setup.simulated[name] = model
            setup.where[name] = f"simulator ({model})"
            return place.chat_openai(model, **kwargs)

        # The vision member's profile says it takes images (the others: `capabilities`).
        seeing = {"profile": {"image_inputs": True}}
        name, sim_model = VISION_MEMBER
        if vision_url and vision_model:
            key = os.environ.get("VISION_API_KEY", "EMPTY")  # vLLM takes any key
            setup.pool[name] = openai_chat(vision_model, vision_url, key, **seeing)
            setup.where[name] = f"{vision_url} ({vision_model})"
        else:
            setup.pool[name] = simulated(name, sim_model, **seeing)
        for name, slug, sim_model in OTHERS:
            if openrouter:
                setup.pool[name] = slug
                setup.where[name] = f"OpenRouter ({slug})"
            else:
                setup.pool[name] = simulated(name, sim_model)
        if openrouter:
            setup.judge = JUDGE[0]
            setup.where["judge"] = f"OpenRouter ({JUDGE[0]})"
        else:
            setup.judge = simulated("judge", JUDGE[1])
        yield setup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="merge", choices=["best_of", "merge", "debate", "vote"])
    parser.add_argument("image", nargs="?", type=Path, default=IMAGE)
    args = parser.parse_args(argv)
    data = args.image.read_bytes()
    mime_type = mimetypes.guess_type(args.image.name)[0] or "image/png"
    message = HumanMessage(
        content=[
            {"type": "text", "text": PROMPT},
            {"type": "image", "base64": base64.b64encode(data).decode(), "mime_type": mime_type},
        ]
    )
    with models() as setup:
        where = ", ".join(f"{name}: {place}" for name, place in setup.where.items())
        print(f"provider: {where}; {setup.provider}")
        fusion = FusionChatModel(
            pool=setup.pool,
            judge=setup.judge,
            mode=args.mode,
            # What each model accepts, where its profile does not say.
            capabilities={"vision-2": {"image_inputs": True}, TEXT_ONLY: {"image_inputs": False}},
        )
        print(f"image: {args.image.name} ({len(data)} bytes)")
        assert fusion.profile is not None
        print(f"fusion profile: image_inputs={fusion.profile['image_inputs']}")
        answer = fusion.invoke([message])
        print(f"A ({args.mode}): {answer.text}")
        report = answer.response_metadata["fusion"]
        for c in report["candidates"]:
            why = f" ({c['error']})" if c["error"] else ""
            print(f"  {c['name']:<10} {c['status']}{why}")
        print(f"  {'judge':<10} {report['judge']['status']}, calls: {report['judge']['calls']}")
        if setup.sim is not None:
            stats = setup.sim.stats().models
            print("simulator /stats, what each simulated model received:")
            for name, model in setup.simulated.items():
                row = stats[model]
                print(f"  {name:<10} requests: {row.requests}, images: {row.images}")


if __name__ == "__main__":
    main()
