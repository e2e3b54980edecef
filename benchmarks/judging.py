"""Judging: what a judge's position bias costs best_of, and what passes and panels recover.

MEASURED ON THE SIMULATOR, not on real models. The real library (`FusionChatModel`: its
shuffling, fencing, prompts, verdict parsing, passes, panels, tie-breaks and fallbacks) runs
over simulated models called in process (`langchain_fusion.sim.SimChatModel`: the
simulator's own answers, token counts and prices, without HTTP, so that the ~27,000 fusions take
minutes on 2 cores). The models:

- a bank of generated questions "What is A times B? Answer with the number only." with the
  product as the answer and three near misses as wrong answers;
- members that answer right with a set probability (seeded per model and question, so every
  row sees the same answers), a miss being one of the near misses; in the "correlated" pool
  the members share their wrong answers (`error_group`): when two miss, they agree;
- judges that know the right answer (`rule: oracle`, accuracy 0.9: they pick a right
  candidate 90% of the time when there is one; the decision depends on the candidates'
  texts, not their order) with a set `position_bias` (probability of picking the first
  candidate shown, whatever it says: 0, 0.3, 0.6), and, in the self-preference table, a
  judge of the same model as a member with `self_preference` 0.5.

Rows: the best member alone; majority vote (`mode="vote"`, the judge breaks ties); best_of
with one judge, with `judge_passes=2` and 3, with a panel of three judges; merge; debate.
Columns: accuracy with its 95% Wilson interval, judge calls, tokens and cost per question,
and cost per correct answer.

Run: `python benchmarks/judging.py [--questions 400] [--quick] [--seed 11]`
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table

from langchain_fusion import FusionChatModel
from langchain_fusion.sim import Scenario, SimChatModel

BIASES = (0.0, 0.3, 0.6)
JUDGE_ACCURACY = 0.9
SELF_PREFERENCE = 0.5
POOLS: dict[str, dict[str, Any]] = {
    "3 independent": {"accuracies": (0.65, 0.55, 0.45), "error_group": None},
    "5 independent": {"accuracies": (0.65, 0.6, 0.55, 0.5, 0.45), "error_group": None},
    "3 correlated": {"accuracies": (0.65, 0.55, 0.45), "error_group": "shared"},
}
ROWS: dict[str, dict[str, Any]] = {
    "majority vote": {"mode": "vote"},
    "best_of": {"mode": "best_of"},
    "best_of, judge_passes=2": {"mode": "best_of", "judge_passes": 2},
    "best_of, judge_passes=3": {"mode": "best_of", "judge_passes": 3},
    "best_of, panel of 3": {"mode": "best_of", "panel": True},
    "merge": {"mode": "merge"},
    "debate": {"mode": "debate", "debate_rounds": 1},
}
PROMPT_PRICE = 0.000001
COMPLETION_PRICE = 0.000004


def make_bank(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` multiplication questions, each with its product and three near misses."""
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < count:
        pairs.add((rng.randint(12, 98), rng.randint(12, 98)))
    return [
        {
            "question": f"What is {a} times {b}?",
            "answer": str(a * b),
            "wrong": [str(a * b + 10), str(a * b - 10), str(a * b + a)],
        }
        for a, b in sorted(pairs)
    ]


def _judge(name: str, bias: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "accuracy": 0.0,
        "prompt_price": PROMPT_PRICE * 2,
        "completion_price": COMPLETION_PRICE * 2,
        "judge": {
            "rule": "oracle",
            "accuracy": JUDGE_ACCURACY,
            "position_bias": bias,
            "fallback": "first",
            **extra,
        },
    }


def make_scenario(bank: list[dict[str, Any]], seed: int) -> Scenario:
    """Every pool's members and every judge (three per bias, for panels) in one scenario."""
    models: list[dict[str, Any]] = []
    for pool, spec in POOLS.items():
        for i, accuracy in enumerate(spec["accuracies"]):
            member: dict[str, Any] = {
                "name": f"{pool.replace(' ', '-')}/m{i + 1}",
                "accuracy": accuracy,
                "template": "{answer}",
                "error_group": spec["error_group"],
                "adopt_majority": 0.7,
                "prompt_price": PROMPT_PRICE,
                "completion_price": COMPLETION_PRICE,
            }
            if pool == "3 independent" and i == len(spec["accuracies"]) - 1:
                # The weakest member's model also judges, preferring its own answer.
                member["judge"] = _judge("", 0.0, self_preference=SELF_PREFERENCE)["judge"]
            models.append(member)
    for bias in BIASES:
        models += [_judge(f"judge-{bias:g}/j{k}", bias) for k in (1, 2, 3)]
    return Scenario.model_validate({"seed": seed, "bank": bank, "models": models})


def stated(question: dict[str, Any], text: str) -> str | None:
    """Which of the question's values (right or wrong) `text` gives first."""
    found = [(text.find(v), v) for v in (question["answer"], *question["wrong"]) if v in text]
    return min(found)[1] if found else None


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    if total == 0:
        return 0.0, 0.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Result:
    """What one row spent and got over the bank."""

    correct: list[bool] = field(default_factory=list)
    judge_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    fallbacks: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


async def run_row(
    members: list[SimChatModel],
    judges: list[SimChatModel],
    settings: dict[str, Any] | None,
    bank: list[dict[str, Any]],
    concurrency: int,
) -> Result:
    """One row over the bank: the fusion (or the first member alone when `settings` is None)."""
    result = Result(correct=[False] * len(bank))
    fusion = None
    if settings is not None:
        settings = dict(settings)
        judge: Any = judges if settings.pop("panel", False) else judges[0]
        fusion = FusionChatModel(pool=members, judge=judge, **settings)
    before = sum(j.calls for j in judges)
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int, question: dict[str, Any]) -> None:
        prompt = f"{question['question']} Answer with the number only."
        async with limit:
            try:
                if fusion is None:
                    message = await members[0].ainvoke(prompt)
                else:  # a seed per question: each question is shown in its own order
                    message = await fusion.ainvoke(prompt, seed=index)
            except Exception as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
        result.correct[index] = stated(question, str(message.content)) == question["answer"]
        usage = message.usage_metadata or {}
        result.tokens += usage.get("total_tokens", 0)
        if fusion is None:
            result.cost += message.response_metadata["token_usage"]["cost"]
        else:
            report = message.response_metadata["fusion"]
            result.cost += report.get("cost_usd") or 0.0
            result.fallbacks += bool(report.get("judge_fallback"))

    await asyncio.gather(*(one(i, q) for i, q in enumerate(bank)))
    result.judge_calls = sum(j.calls for j in judges) - before
    return result


def row_cells(name: str, r: Result, count: int) -> list[str]:
    low, high = wilson(sum(r.correct), count)
    right = sum(r.correct)
    return [
        name,
        f"{r.accuracy:.1%}",
        f"{low:.1%}-{high:.1%}",
        f"{r.judge_calls / count:.2f}",
        f"{r.tokens / count:.0f}",
        f"{r.cost / count * 1e6:.1f}",
        f"{r.cost / right * 1e6:.1f}" if right else "-",
        str(r.fallbacks),
        str(len(r.errors)),
    ]


HEADERS = [
    "row",
    "accuracy",
    "95% CI",
    "judge calls/q",
    "tokens/q",
    "cost µ$/q",
    "µ$/correct",
    "fallbacks",
    "errors",
]


def recovery(results: dict[tuple[str, float], Result]) -> list[str]:
    """What a position bias of 0.3 costs single-pass best_of, and what is recovered."""
    base = results[("best_of", 0.0)].accuracy
    biased = results[("best_of", 0.3)].accuracy
    loss = base - biased
    lines = [f"best_of: {base:.1%} unbiased, {biased:.1%} at position bias 0.3 (loss {loss:+.1%})"]
    for row in ("best_of, judge_passes=2", "best_of, judge_passes=3", "best_of, panel of 3"):
        fixed = results[(row, 0.3)].accuracy
        share = (fixed - biased) / loss if loss > 0 else float("nan")
        lines.append(f"  {row}: {fixed:.1%} at bias 0.3, recovers {share:.0%} of the loss")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=None, help="default 400")
    parser.add_argument("--quick", action="store_true", help="60 questions")
    parser.add_argument("--seed", type=int, default=11, help="seed of the bank and scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="questions in flight")
    args = parser.parse_args()
    count = args.questions or (60 if args.quick else 400)
    bank = make_bank(count, args.seed)
    scenario = make_scenario(bank, args.seed)
    started = time.perf_counter()

    print(f"judging benchmark ({machine()}, load {os.getloadavg()[0]:.2f})")
    print(
        "MEASURED ON THE SIMULATOR: the real FusionChatModel over in-process simulated models "
        "(SimChatModel, no HTTP);\n"
        f"{count} generated questions (seed {args.seed}); judges: oracle rule, accuracy "
        f"{JUDGE_ACCURACY:g}, position_bias {', '.join(f'{b:g}' for b in BIASES)}"
    )
    headline: dict[str, list[str]] = {}
    with asyncio.Runner() as runner:
        for pool, spec in POOLS.items():
            prefix = pool.replace(" ", "-")
            names = [f"{prefix}/m{i + 1}" for i in range(len(spec["accuracies"]))]
            members = [SimChatModel(scenario=scenario, model=n) for n in names]
            results: dict[tuple[str, float], Result] = {}
            single = runner.run(run_row(members[:1], [], None, bank, args.concurrency))
            rows = [row_cells(f"best member alone ({spec['accuracies'][0]:g})", single, count)]
            for bias in BIASES:
                judges = [
                    SimChatModel(scenario=scenario, model=f"judge-{bias:g}/j{k}") for k in (1, 2, 3)
                ]
                for row, settings in ROWS.items():
                    result = runner.run(run_row(members, judges, settings, bank, args.concurrency))
                    results[(row, bias)] = result
                    rows.append(row_cells(f"{row} @ bias {bias:g}", result, count))
            accuracies = ", ".join(f"{a:g}" for a in spec["accuracies"])
            shared = " sharing their wrong answers" if spec["error_group"] else ""
            print(f"\npool: {pool} (members right with probability {accuracies}{shared})")
            print(table(HEADERS, rows))
            headline[pool] = recovery(results)
            for line in headline[pool]:
                print("  " + line)
            vote, best_of = results[("majority vote", 0.0)], results[("best_of", 0.0)]
            print(
                f"  majority vote {vote.accuracy:.1%} vs best member alone {single.accuracy:.1%} "
                f"vs best_of (unbiased judge) {best_of.accuracy:.1%}"
            )
            for row_result in results.values():
                for error in row_result.errors[:2]:
                    print(f"  error: {error}")

        self_preference(runner, scenario, bank, count, args.concurrency)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


def self_preference(
    runner: asyncio.Runner, scenario: Scenario, bank: list[dict[str, Any]], count: int, n: int
) -> None:
    """The weakest member's model as the judge, preferring its own answer half the time."""
    names = ["3-independent/m1", "3-independent/m2", "3-independent/m3"]
    members = [SimChatModel(scenario=scenario, model=m) for m in names]
    own = SimChatModel(scenario=scenario, model=names[-1])
    neutral = [SimChatModel(scenario=scenario, model=f"judge-0/j{k}") for k in (1, 2, 3)]
    rows = []
    cases: list[tuple[str, list[SimChatModel], dict[str, Any]]] = [
        ("best_of, neutral judge", neutral, {"mode": "best_of"}),
        ("best_of, self-judging (allow)", [own], {"mode": "best_of"}),
        (
            "best_of, self-judging, exclude",
            [own],
            {"mode": "best_of", "judge_self_vote": "exclude"},
        ),
        (
            "panel: self + 2 neutral (exclude)",
            [own, *neutral[:2]],
            {"mode": "best_of", "panel": True},
        ),
        (
            "panel: self + 2 neutral (allow)",
            [own, *neutral[:2]],
            {"mode": "best_of", "panel": True, "judge_self_vote": "allow"},
        ),
    ]
    for name, judges, settings in cases:
        rows.append(row_cells(name, runner.run(run_row(members, judges, settings, bank, n)), count))
    print(
        f"\nself-preference: pool '3 independent'; the judge is the weakest member's model "
        f"(right 45% of the time itself), oracle accuracy {JUDGE_ACCURACY:g}, "
        f"self_preference {SELF_PREFERENCE:g}"
    )
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
