"""A LangChain RAG chain (retriever | prompt | fusion | parser) over a small local corpus.

The retriever is an `InMemoryVectorStore` over a hashing bag-of-words embedding (no model,
no download). The simulated members answer from the context only when the retrieved passage
is in their prompt, so the fused answer shows that retrieval reached every member.
"""

from __future__ import annotations

import hashlib
import math
import re

import pytest
from agents_helpers import MEMBERS, fusion
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(30)

CORPUS = [
    "The sky is blue because of Rayleigh scattering: air molecules scatter short blue "
    "wavelengths of sunlight far more than long red ones.",
    "At sunset sunlight crosses more air; the blue is scattered away and the sky turns red.",
    "Grass is green because chlorophyll absorbs red and blue light and reflects green.",
    "Snow looks white because ice crystals scatter all visible wavelengths equally.",
]
QUESTION = "Why is the sky blue?"
STOP_WORDS = frozenset({"a", "and", "are", "does", "how", "in", "is", "of", "the", "what", "why"})

# The members' scripted answers when the Rayleigh passage is in the prompt.
ADA = (
    "Air molecules scatter short blue wavelengths of sunlight far more than red ones. "
    "That is Rayleigh scattering."
)
BOB = (
    "Air molecules scatter short blue wavelengths of sunlight far more than red ones. "
    "At sunset the light crosses more air and the sky turns red."
)
CY = (
    "Violet scatters even more than blue, but our eyes are less sensitive to it. "
    "Air molecules scatter short blue wavelengths of sunlight far more than red ones."
)
# The simulated judge's synthesis: the preferred (longest) answer's sentences, then the
# other answers' new sentences, ordered by text.
SYNTHESIS = (
    "Violet scatters even more than blue, but our eyes are less sensitive to it. "
    "Air molecules scatter short blue wavelengths of sunlight far more than red ones. "
    "At sunset the light crosses more air and the sky turns red. "
    "That is Rayleigh scattering."
)
EXPECTED = {"best_of": CY, "merge": SYNTHESIS, "debate": SYNTHESIS}


class HashingEmbeddings(Embeddings):
    """A deterministic bag-of-words embedding: each word (stop words aside) hashed into one of
    `dims` buckets, then normalised."""

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for word in re.findall(r"[a-z]+", text.lower()):
            if word in STOP_WORDS:
                continue
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            vector[int.from_bytes(digest, "big") % self.dims] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def retriever() -> Runnable:
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents([Document(page_content=text) for text in CORPUS])
    return store.as_retriever(search_kwargs={"k": 2})


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question from the context only."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


def rag_chain(model: Runnable) -> Runnable:
    return (
        {"context": retriever() | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | model
        | StrOutputParser()
    )


def test_the_retriever_finds_the_passage_locally():
    docs = retriever().invoke(QUESTION)
    assert "Rayleigh" in docs[0].page_content


@pytest.mark.parametrize("mode", ["best_of", "merge", "debate"])
async def test_rag_chain_answers_through_the_fusion(sim: Simulator, mode: str):
    answer = await rag_chain(fusion(sim, mode, debate_rounds=1)).ainvoke(QUESTION)
    assert answer == EXPECTED[mode]
    stats = sim.stats().models
    assert all(stats[name].requests >= 1 for name in MEMBERS)
    assert stats["agents/judge"].requests >= 1


def test_rag_chain_streams_the_fused_answer(sim: Simulator):
    chunks = list(rag_chain(fusion(sim, "merge")).stream(QUESTION))
    assert len(chunks) > 1  # the judge's synthesis streams through the chain
    assert "".join(chunks) == SYNTHESIS


def test_without_the_passage_the_members_say_so(sim: Simulator):
    """A question the corpus does not cover: no passage, and the members' scripted refusal."""
    chain = (
        {"context": lambda _: "Nothing relevant.", "question": RunnablePassthrough()}
        | PROMPT
        | fusion(sim, "merge")
        | StrOutputParser()
    )
    assert chain.invoke(QUESTION) == "The context does not say."
