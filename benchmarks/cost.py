"""Benchmark 4, cost: tokens, money and accuracy of each way to aggregate, on a known bank.

A SIMULATION OF THE AGGREGATION, not of real models: three simulated members answer
"What is A times B?" questions right with set probabilities (0.8, 0.7, 0.6, independently
per question), a miss being one of three near misses (`benchmarks/scenarios/cost.yaml`, the
bank generated here with a seed). The judge of the main rows is an ORACLE: it looks the
right answer up and picks a right candidate with probability 0.95 when one exists, an upper
bound of what a judge adds. The "blind judge" rows use a judge of the same price that does
not know the answers (it picks the answer most candidates give, ties to the first shown).
The figures say how the aggregation rules combine such members and what
each rule spends; they say nothing about how real LLMs answer.

Rows, each over the same `--questions` questions, with `ChatOpenAI` members against the
simulator in its own process:
- single best:      the most accurate member alone
- best_of, merge, debate (2 rounds, stops early on agreement), vote
- best_of + gate, merge + gate:   `skip_judge_on_agreement=True`
- best_of, merge (blind judge):   the same with the blind judge

Tokens and cost per question are the simulator's billed counters (reset before each row);
judge calls and accuracy are read from each answer and its fusion report. "Agreeing" is the
subset of questions on which the three members' first answers are all equal.

Run: `python benchmarks/cost.py [--quick] [--questions 120] [--seed 5]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SCENARIOS, SimProcess, chat_openai, machine, table

from langchain_fusion import FusionChatModel

MEMBERS = ("cost/strong", "cost/mid", "cost/weak")
JUDGE = "cost/judge"
BLIND_JUDGE = "cost/blind-judge"
JUDGES = (JUDGE, BLIND_JUDGE)
CONFIGS: dict[str, dict[str, Any] | None] = {
    "single best": None,
    "best_of": {"mode": "best_of"},
    "merge": {"mode": "merge"},
    "debate": {"mode": "debate", "debate_rounds": 2},
    "vote": {"mode": "vote"},
    "best_of + gate": {"mode": "best_of", "skip_judge_on_agreement": True},
    "merge + gate": {"mode": "merge", "skip_judge_on_agreement": True},
    "best_of (blind judge)": {"mode": "best_of", "judge": BLIND_JUDGE},
    "merge (blind judge)": {"mode": "merge", "judge": BLIND_JUDGE},
}


def make_bank(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` multiplication questions with their answer and three near misses."""
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < count:
        pairs.add((rng.randint(11, 99), rng.randint(11, 99)))
    bank = []
    for a, b in sorted(pairs):
        product = a * b
        bank.append(
            {
                "question": f"What is {a} times {b}?",
                "answer": str(product),
                "wrong": [str(product + 10), str(product - 10), str(product + a)],
            }
        )
    return bank


def scenario_text(bank: list[dict[str, Any]]) -> str:
    """The committed scenario with the generated bank added."""
    data = yaml.safe_load((SCENARIOS / "cost.yaml").read_text(encoding="utf-8"))
    data["bank"] = bank
    return yaml.safe_dump(data, sort_keys=False)


def stated(question: dict[str, Any], text: str) -> str | None:
    """Which of the question's values (right or wrong) `text` gives first."""
    best: tuple[int, str] | None = None
    for value in (question["answer"], *question["wrong"]):
        match = re.search(rf"(?<!\d){re.escape(value)}(?!\d)", text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), value)
    return best[1] if best else None


def prompt_for(question: dict[str, Any]) -> str:
    return f"{question['question']} Answer with the number only."


async def run_config(
    sim: SimProcess,
    name: str,
    settings: dict[str, Any] | None,
    bank: list[dict[str, Any]],
    concurrency: int,
) -> dict[str, Any]:
    """Per question: correct or not, judge calls; plus errors."""
    members = {m.split("/")[1]: chat_openai(sim, m) for m in MEMBERS}
    fusion = None
    if settings is not None:
        settings = dict(settings)
        judge = chat_openai(sim, settings.pop("judge", JUDGE))
        fusion = FusionChatModel(pool=members, judge=judge, seed=0, **settings)
    limit = asyncio.Semaphore(concurrency)
    correct: list[bool] = [False] * len(bank)
    judge_calls: list[int] = [0] * len(bank)
    errors: list[str] = []

    async def one(i: int, question: dict[str, Any]) -> None:
        async with limit:
            try:
                if fusion is None:
                    message = await members["strong"].ainvoke(prompt_for(question))
                else:
                    message = await fusion.ainvoke(prompt_for(question))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
        correct[i] = stated(question, str(message.content)) == question["answer"]
        if fusion is not None:
            report = message.response_metadata["fusion"]
            judge_calls[i] = report["judge"]["calls"]
            if report.get("judge_fallback"):
                errors.append(f"judge fallback: {report.get('judge_failure')}")

    await asyncio.gather(*(one(i, q) for i, q in enumerate(bank)))
    return {"correct": correct, "judge_calls": judge_calls, "errors": errors}


async def first_answers(sim: SimProcess, bank: list[dict[str, Any]]) -> list[list[str | None]]:
    """Each member's own answer to each question (the simulator's answers are seeded)."""
    members = [chat_openai(sim, m) for m in MEMBERS]
    limit = asyncio.Semaphore(20)

    async def ask(model: Any, question: dict[str, Any]) -> str | None:
        async with limit:
            return stated(question, str((await model.ainvoke(prompt_for(question))).content))

    return [
        list(await asyncio.gather(*(ask(m, q) for m in members)))  # type: ignore[arg-type]
        for q in bank
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 questions")
    parser.add_argument("--questions", type=int, default=None, help="default 120")
    parser.add_argument("--concurrency", type=int, default=20, help="questions in flight")
    parser.add_argument("--seed", type=int, default=5, help="seed of the generated bank")
    args = parser.parse_args()
    count = args.questions or (30 if args.quick else 120)
    bank = make_bank(count, args.seed)

    print(f"benchmark 4, cost ({machine()}, load {os.getloadavg()[0]:.2f})")
    print(
        "A SIMULATION OF THE AGGREGATION: members right with probability 0.8/0.7/0.6 "
        "(independent); the judge is an ORACLE (looks the right answer up, picks it with "
        "probability 0.95),\nexcept in the 'blind judge' rows (the answer most candidates "
        "give, ties to the first shown);\n"
        f"{count} generated questions (seed {args.seed}), ChatOpenAI members, simulator in "
        "its own process"
    )
    results: dict[str, dict[str, Any]] = {}
    with SimProcess(scenario_text(bank)) as sim, asyncio.Runner() as runner:
        answers = runner.run(first_answers(sim, bank))
        for name, settings in CONFIGS.items():
            sim.reset()
            result = runner.run(run_config(sim, name, settings, bank, args.concurrency))
            result["stats"] = sim.stats()
            results[name] = result

    agreeing = [i for i, row in enumerate(answers) if len(set(row)) == 1 and row[0] is not None]
    agree_right = sum(1 for i in agreeing if answers[i][0] == bank[i]["answer"])
    per_member = [
        sum(1 for i, q in enumerate(bank) if answers[i][k] == q["answer"]) / count
        for k in range(len(MEMBERS))
    ]
    print(
        "members' own accuracy on this bank: "
        + ", ".join(f"{m} {a:.0%}" for m, a in zip(MEMBERS, per_member, strict=True))
        + f"; all three agree on {len(agreeing)} of {count} questions "
        f"({agree_right} of them right)"
    )

    base_cost = results["single best"]["stats"]["totals"]["cost"]
    rows = []
    for name, r in results.items():
        totals = r["stats"]["totals"]
        judge_requests = sum(r["stats"]["models"][j]["requests"] for j in JUDGES)
        member_requests = totals["requests"] - judge_requests
        calls_agree = sum(r["judge_calls"][i] for i in agreeing)
        acc_agree = sum(r["correct"][i] for i in agreeing) / len(agreeing) if agreeing else 0
        fused = CONFIGS[name] is not None
        rows.append(
            [
                name,
                f"{sum(r['correct']) / count:.1%}",
                f"{totals['total_tokens'] / count:.0f}",
                f"{totals['cost'] / count * 1e6:.1f}",
                f"{totals['cost'] / base_cost:.1f}x",
                f"{member_requests / count:.2f}",
                f"{judge_requests / count:.2f}" if fused else "",
                f"{calls_agree / len(agreeing):.2f}" if fused and agreeing else "",
                f"{acc_agree:.1%}" if agreeing else "",
                len(r["errors"]),
            ]
        )
    headers = [
        "aggregation",
        "accuracy",
        "tokens/q",
        "cost µ$/q",
        "x single",
        "member calls/q",
        "judge calls/q",
        "judge calls/q agreeing",
        "accuracy agreeing",
        "errors",
    ]
    print()
    print(table(headers, rows))
    print(
        "\n/q = per question; tokens and cost are billed by the simulator (prompt + "
        "completion, every call);\n'agreeing' = the questions on which all three members "
        "gave the same answer"
    )
    for name, r in results.items():
        for error in r["errors"][:3]:
            print(f"  {name} error: {error}")


if __name__ == "__main__":
    main()
