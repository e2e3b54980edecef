"""A LlamaIndex RAG query engine whose LLM is a fusion of three models and a judge.

Offline by default: the members and the judge are `OpenAILike` clients of the local
provider simulator (127.0.0.1, no network). With `OPENROUTER_API_KEY` set, they are
OpenRouter slugs instead (`"openai/gpt-4o-mini"`), which `FusionLLM` sends to OpenRouter
with that key. The embedding is a small local hashing embedding either way, so
nothing is downloaded.

Run: `python examples/llamaindex_rag.py [--mode merge|best_of|debate|vote]`
Needs: `pip install "llm-fusion[llamaindex,sim]" llama-index-llms-openai-like`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from pydantic import Field

from llamaindex_fusion import FusionLLM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import provider

QUESTION = "Why is the sky blue?"
DOCUMENTS = [
    "Why is the sky blue? Sunlight is made of every colour. Air molecules scatter short "
    "wavelengths far more than long ones (Rayleigh scattering), so blue light reaches the "
    "eye from every direction of the sky.",
    "At sunset, light crosses much more air before reaching the eye. The blue is scattered "
    "away on the way, and the sky near the horizon turns red and orange.",
    "A database migration plan should include a rehearsal on a copy of production data and "
    "a tested rollback path.",
]
OPENROUTER_POOL = ["openai/gpt-4o-mini", "google/gemini-2.0-flash-001", "mistralai/mistral-small"]
OPENROUTER_JUDGE = "openai/gpt-4o-mini"
SIM_POOL = ["sim/atlas", "sim/borealis", "sim/cirrus"]
SIM_JUDGE = "sim/judge"


class HashEmbedding(BaseEmbedding):
    """A deterministic bag-of-words embedding: hashed words, normalised. Local, no download."""

    dim: int = 256

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"[a-z]{3,}", text.lower()):
            vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


class FusionReports(BaseEventHandler):
    """Keeps the fusion report of every FusionLLM call (from LlamaIndex instrumentation)."""

    reports: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "FusionReports"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, LLMChatEndEvent) and event.response is not None:
            report = event.response.additional_kwargs.get("fusion")
            if report is not None:
                self.reports.append(report)


@contextmanager
def models() -> Iterator[tuple[list[Any], Any, str]]:
    """The pool and judge: OpenRouter slugs with a key, else the local simulator."""
    with provider() as where:
        if where.openrouter:  # slugs: FusionLLM reads OPENROUTER_API_KEY
            yield list(OPENROUTER_POOL), OPENROUTER_JUDGE, where.description
            return
        pool = [where.openai_like(m) for m in SIM_POOL]
        yield pool, where.openai_like(SIM_JUDGE), where.description


def summary(report: dict[str, Any]) -> str:
    lines = [f"mode: {report['mode']}  winner: {report['winner']}  rounds: {report['rounds']}"]
    for c in report["candidates"]:
        lines.append(
            f"  {c['name']:<28} {c['status']:<9} {c['latency_s']:.2f}s  "
            f"{c['usage'].get('total_tokens', 0)} tokens  cost {c['cost_usd']}"
        )
    lines.append(f"  judge: {report['judge']['status']}  {report['timings']}")
    lines.append(f"  usage: {json.dumps(report['usage'])}  cost_usd: {report['cost_usd']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="merge", choices=["best_of", "merge", "debate", "vote"])
    args = parser.parse_args(argv)

    reports = FusionReports()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(reports)
    try:
        with models() as (pool, judge, where):
            print(where)
            llm = FusionLLM(pool=pool, judge=judge, mode=args.mode)
            index = VectorStoreIndex.from_documents(
                [Document(text=d) for d in DOCUMENTS], embed_model=HashEmbedding()
            )
            engine = index.as_query_engine(llm=llm, similarity_top_k=2)
            response = engine.query(QUESTION)
    finally:
        dispatcher.event_handlers.remove(reports)

    print(f"\nQ: {QUESTION}\nA: {response}\n")
    print("retrieved:", [n.node.get_content()[:60] + "..." for n in response.source_nodes])
    for report in reports.reports:
        print("\nfusion report\n" + summary(report))


if __name__ == "__main__":
    main()
