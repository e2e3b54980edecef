"""The work of benchmark 1's fusions, and the same work written by hand.

The pool (three members of 0.2/0.4/0.8 s, a 0.1 s judge: `scenarios/overhead.yaml`), the
fusions' checks, the hand-written LangChain chains on the same `ChatOpenAI` clients, and the
bare httpx2 fan-out that replays the requests of a fusion of slug members.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from _common import API_KEY
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_openai import ChatOpenAI

from langchain_fusion import ChatOpenAICompatible, FusionChatModel
from langchain_fusion._core.verdict import Comparison, Verdict

LATENCY = {"bench/fast": 0.2, "bench/medium": 0.4, "bench/slow": 0.8}
JUDGE = "bench/judge"
JUDGE_LATENCY = 0.1
PROMPT = "Review this migration plan for operational risks: move the orders database tonight."
JUDGE_CALLS = {"best_of": 1, "merge": 2, "debate": 1}
MEMBER_ROUNDS = {"best_of": 1, "merge": 1, "debate": 2}


def api_root(base: str) -> str:
    """The simulator's OpenRouter-shaped API root."""
    return base + "/api/v1"


def _chat_openai(base: str, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url=api_root(base), api_key=API_KEY, max_retries=0, stream_usage=True
    )


def _labelled(answers: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The candidates as labelled text, and which label is which member."""
    names = sorted(answers)
    labels = {chr(65 + i): name for i, name in enumerate(names)}
    text = "\n\n".join(f"Candidate {label}:\n{answers[n].content}" for label, n in labels.items())
    return text, labels


def _pick_prompt(answers: dict[str, Any]) -> str:
    text, _ = _labelled(answers)
    return f"{PROMPT}\n\nWhich candidate is strongest? Reply with its label.\n\n{text}"


def _chosen(state: dict[str, Any]) -> Any:
    """The chosen member's message, as best_of returns it (the first when the label is odd)."""
    answers = {k: v for k, v in state.items() if k != "verdict"}
    verdict = state["verdict"]
    if verdict.get("parsing_error") is not None:
        raise RuntimeError(f"the judge's verdict did not parse: {verdict['parsing_error']}")
    _, labels = _labelled(answers)
    name = labels.get(verdict["parsed"].winner, sorted(answers)[0])
    return answers[name]


def best_of_chain(members: dict[str, Any], judge: Any) -> Any:
    """best_of hand-written: members in parallel, the judge's verdict, the chosen answer."""
    verdict = judge.with_structured_output(Verdict, include_raw=True)
    return (
        RunnableParallel(members)
        | RunnablePassthrough.assign(verdict=RunnableLambda(_pick_prompt) | verdict)
        | RunnableLambda(_chosen)
    )


def build(base: str, mode: str) -> dict[str, Any]:
    """The fusion, its members and judge, and the hand-written chain of the same work."""
    members = {name.split("/")[1]: _chat_openai(base, name) for name in LATENCY}
    judge = _chat_openai(base, JUDGE)
    fusion = FusionChatModel(
        pool=members, judge=judge, mode=mode, debate_rounds=1, seed=0, min_successful=3
    )
    parallel = RunnableParallel(members)

    if mode == "best_of":
        chain: Any = best_of_chain(members, judge)
    elif mode == "merge":
        compare = judge.with_structured_output(Comparison, include_raw=True)

        def compare_prompt(answers: dict[str, Any]) -> str:
            return f"{PROMPT}\n\nCompare these answers.\n{_labelled(answers)[0]}"

        def synthesis_prompt(state: dict[str, Any]) -> str:
            answers = {k: v for k, v in state.items() if k != "comparison"}
            comparison = state["comparison"]["parsed"]
            return (
                f"{PROMPT}\n\nMerge the answers using this comparison: "
                f"{comparison.model_dump_json() if comparison else ''}\n{_labelled(answers)[0]}"
            )

        chain = (
            parallel
            | RunnablePassthrough.assign(comparison=RunnableLambda(compare_prompt) | compare)
            | RunnableLambda(synthesis_prompt)
            | judge
        )
    else:  # debate, one round: every member revises after seeing the others
        revise = RunnableParallel(
            {
                name: RunnableLambda(
                    lambda answers, n=name: (
                        f"{PROMPT}\nYour answer: {answers[n].content}\nOthers:\n"
                        f"{_labelled({k: v for k, v in answers.items() if k != n})[0]}\n"
                        "Revise your answer."
                    )
                )
                | model
                for name, model in members.items()
            }
        )
        chain = parallel | revise | RunnableLambda(_pick_prompt) | judge

    slowest = members["slow"]
    critical = [slowest] * MEMBER_ROUNDS[mode] + [judge] * JUDGE_CALLS[mode]
    sequential = list(members.values()) * MEMBER_ROUNDS[mode] + [judge] * JUDGE_CALLS[mode]
    nominal = max(LATENCY.values()) * MEMBER_ROUNDS[mode] + JUDGE_LATENCY * JUDGE_CALLS[mode]
    return {
        "fusion": fusion,
        "chain": chain,
        "critical": critical,
        "sequential": sequential,
        "nominal": nominal,
    }


async def one_by_one(models: list[Any]) -> None:
    for model in models:
        await model.ainvoke(PROMPT)


def problems_of(mode: str, message: Any) -> list[str]:
    """What was wrong with a fusion's result (members not ok, judge calls, fallback)."""
    report = message.response_metadata["fusion"]
    problems = [
        f"{c['name']}: {c['status']} {c['error']}"
        for c in report["candidates"]
        if c["status"] != "ok"
    ]
    if report["judge"]["calls"] != JUDGE_CALLS[mode]:
        problems.append(f"judge calls {report['judge']['calls']}")
    if report.get("judge_fallback"):
        problems.append(f"judge fallback: {report.get('judge_error')}")
    return problems


def check(mode: str, message: Any) -> None:
    problems = problems_of(mode, message)
    if problems:
        raise RuntimeError(f"{mode}: unexpected fusion ({problems}): the timings would not compare")


async def recorded_slug_requests(base: str) -> list[tuple[str, dict[str, str], Any]]:
    """The requests one best_of fusion of slug members sends: (url, headers, JSON body).

    The members and judge are the `ChatOpenAICompatible` models the slugs stand for, given an
    httpx2 client that records what it sends.
    """
    sent: list[tuple[str, dict[str, str], Any]] = []

    async def record(request: httpx2.Request) -> None:
        auth = {"Authorization": request.headers["Authorization"]}
        sent.append((str(request.url), auth, json.loads(request.content)))

    async with httpx2.AsyncClient(event_hooks={"request": [record]}) as client:

        def model(name: str) -> ChatOpenAICompatible:
            return ChatOpenAICompatible(
                model=name, base_url=api_root(base), api_key=API_KEY, http_async_client=client
            )

        fusion = FusionChatModel(
            pool=[model(name) for name in LATENCY], judge=model(JUDGE), mode="best_of"
        )
        check("best_of", await fusion.ainvoke(PROMPT))
    return sent


def _verdict_of(reply: dict[str, Any]) -> Verdict:
    message = reply["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    text = calls[0]["function"]["arguments"] if calls else message["content"]
    return Verdict.model_validate_json(text)


async def bare_fan_out(base: str) -> Callable[[], Awaitable[list[str]]]:
    """A fusion's calls made with a bare httpx2 client: members at once, then the judge."""
    sent = await recorded_slug_requests(base)
    members = [r for r in sent if r[2]["model"] != JUDGE]
    judges = [r for r in sent if r[2]["model"] == JUDGE]
    assert len(members) == len(LATENCY) and len(judges) == 1, [r[2]["model"] for r in sent]
    client = httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100), timeout=120
    )

    async def post(url: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        response = await client.post(url, json=body, headers=headers)
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        return reply

    async def call() -> list[str]:
        replies = await asyncio.gather(*(post(*r) for r in members))
        if not all(r["choices"][0]["message"]["content"] for r in replies):
            return ["a member answered nothing"]
        _verdict_of(await post(*judges[0]))
        return []

    return call
