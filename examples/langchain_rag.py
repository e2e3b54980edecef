"""A LangChain RAG chain with a fusion as its chat model: retriever | prompt | fusion | parser.

The corpus is a handful of passages in an in-memory vector store, embedded by a tiny hashing
bag-of-words embedding (no model, no download). The fusion is a drop-in chat model: the
chain does not change when one model becomes a panel.

Offline by default: members and judge are `ChatOpenAI` clients of the local simulator
(127.0.0.1, scenario `examples/scenarios/showcase.yaml`). With `OPENROUTER_API_KEY` set,
they are OpenRouter models instead. The first line printed says which.

Run: `python examples/langchain_rag.py [--mode best_of|merge|debate] [question]`
Needs: `pip install "llm-fusion[sim]" langchain-openai`
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_fusion import FusionChatModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import provider

SCENARIO = Path(__file__).with_name("scenarios") / "showcase.yaml"
QUESTIONS = ["Why is the sky blue?", "What does quorum do in a fusion?"]
OPENROUTER_POOL = ["openai/gpt-4o-mini", "google/gemini-2.0-flash-001", "mistralai/mistral-small"]
OPENROUTER_JUDGE = "openai/gpt-4o-mini"
SIM_POOL = ["sim/atlas", "sim/borealis", "sim/cirrus"]
SIM_JUDGE = "sim/judge"

CORPUS = [
    "The sky is blue because of Rayleigh scattering: air molecules scatter short blue "
    "wavelengths of sunlight far more than long red ones.",
    "At sunset sunlight crosses more air; the blue is scattered away and the sky turns red.",
    "Grass is green because chlorophyll absorbs red and blue light and reflects green.",
    "In llm-fusion, quorum lets the judge start once enough members have answered; after a "
    "short grace period the slower members are cancelled.",
    "In llm-fusion, debate mode lets members critique and revise each other's answers for a "
    "few rounds before the judge writes the final answer.",
]
STOP_WORDS = frozenset({"a", "and", "are", "does", "how", "in", "is", "of", "the", "what", "why"})

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question from the context only. Be brief."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


class HashingEmbeddings(Embeddings):
    """A deterministic bag-of-words embedding: each word (stop words aside) hashed into one of
    `dims` buckets, then normalised. Good enough for a handful of passages."""

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for word in re.findall(r"[a-z]+", text.lower()):
            if word not in STOP_WORDS:
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                vector[int.from_bytes(digest, "big") % self.dims] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


class FusionReports(BaseCallbackHandler):
    """Keeps the fusion report of each fused answer (children report to tracers only)."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                report = message.response_metadata.get("fusion") if message else None
                if report is not None:
                    self.reports.append(report)


@contextmanager
def fusion(mode: str) -> Iterator[tuple[FusionChatModel, str]]:
    """The fusion and where its models run: OpenRouter with a key, else the simulator."""
    with provider(SCENARIO) as where:
        if where.openrouter:  # slugs, keyed by OPENROUTER_API_KEY
            model = FusionChatModel(pool=OPENROUTER_POOL, judge=OPENROUTER_JUDGE, mode=mode)
        else:
            pool = [where.chat_openai(m) for m in SIM_POOL]
            model = FusionChatModel(pool=pool, judge=where.chat_openai(SIM_JUDGE), mode=mode)
        yield model, where.description


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


def rag_chain(retriever: Runnable, model: Runnable) -> Runnable:
    return (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | model
        | StrOutputParser()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="merge", choices=["best_of", "merge", "debate", "vote"])
    parser.add_argument("question", nargs="*", help="questions (default: two samples)")
    args = parser.parse_args(argv)
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents([Document(page_content=text) for text in CORPUS])
    retriever = store.as_retriever(search_kwargs={"k": 2})
    with fusion(args.mode) as (model, where):
        print(where)
        chain = rag_chain(retriever, model)
        for question in args.question or QUESTIONS:
            reports = FusionReports()
            print(f"\nQ: {question}")
            for doc in retriever.invoke(question):
                print(f"  [retrieved] {doc.page_content[:70]}...")
            print("A: ", end="", flush=True)
            for chunk in chain.stream(question, config={"callbacks": [reports]}):
                print(chunk, end="", flush=True)
            print()
            for report in reports.reports:
                members = " ".join(f"{c['name']}={c['status']}" for c in report["candidates"])
                cost = report["cost_usd"]
                print(
                    f"  fusion ({report['mode']}): {members} | judge={report['judge']['status']}"
                    f" | {report['usage'].get('total_tokens', 0)} tokens"
                    f" | {'cost unknown' if cost is None else f'${cost:.6f}'}"
                )


if __name__ == "__main__":
    main()
