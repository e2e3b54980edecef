"""The question bank and the simulated judge: who is right, and which candidate wins."""

from __future__ import annotations

import json
import re

from langchain_fusion.sim._scenario import BankQuestion, JudgeSpec, Scenario, SimModel
from langchain_fusion.sim._tokens import draw, normalise

_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")


def find_question(bank: list[BankQuestion], text: str) -> BankQuestion | None:
    """The first bank question whose text (or an alias) appears in `text` (normalised)."""
    haystack = normalise(text)
    for question in bank:
        for phrase in (question.question, *question.aliases):
            needle = normalise(phrase)
            if needle and needle in haystack:
                return question
    return None


def stated_value(question: BankQuestion, text: str) -> str | None:
    """Which of the question's answers (right or wrong) `text` gives: the earliest one."""
    best: tuple[int, str] | None = None
    for value in (question.answer, *question.wrong):
        match = re.search(rf"(?<!\w){re.escape(value.casefold())}(?!\w)", text.casefold())
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), value)
    return best[1] if best else None


def bank_value(scenario: Scenario, model: SimModel, question: BankQuestion) -> str:
    """The answer `model` gives to `question`: right with probability `model.accuracy`."""
    if draw(scenario.seed, "bank", model.name, question.question) < model.accuracy:
        return question.answer
    if not question.wrong:
        return "not sure"
    pick = draw(scenario.seed, "wrong", model.name, question.question)
    return question.wrong[int(pick * len(question.wrong))]


def sentences(text: str) -> list[str]:
    """The sentences of `text` (split after `.`, `!`, `?` and at line breaks)."""
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s.strip()]


def _plain_choice(rule: str, candidates: dict[str, str]) -> str:
    labels = sorted(candidates)
    if rule == "longest":
        return max(labels, key=lambda label: (len(candidates[label]), -labels.index(label)))
    if rule == "shortest":
        return min(labels, key=lambda label: (len(candidates[label]), labels.index(label)))
    return labels[0]


def choose(
    scenario: Scenario,
    model: SimModel,
    candidates: dict[str, str],
    question: BankQuestion | None,
) -> tuple[str, str]:
    """The winning label and a one-sentence rationale, by the model's judge rule."""
    spec: JudgeSpec = model.judge
    labels = sorted(candidates)
    if spec.prefer is not None:
        for label in labels:
            if spec.prefer in candidates[label]:
                return label, f"Candidate {label} says {spec.prefer}."
    if spec.rule == "bank" and question is not None:
        right = [lb for lb in labels if stated_value(question, candidates[lb]) == question.answer]
        wrong = [lb for lb in labels if lb not in right]
        texts = sorted(candidates.values())
        roll = draw(scenario.seed, "judge", model.name, question.question, *texts)
        pool = right if (right and (roll < spec.accuracy or not wrong)) else wrong
        # Choose within the pool by text, so the choice does not depend on the labels.
        ordered = sorted(pool, key=lambda lb: (candidates[lb], lb))
        pick = draw(scenario.seed, "judge-pick", model.name, *texts)
        label = ordered[int(pick * len(ordered))]
        value = stated_value(question, candidates[label])
        return label, f"Candidate {label} gives {value}, which is the best supported answer."
    rule = spec.rule if spec.rule != "bank" else spec.fallback
    label = _plain_choice(rule, candidates)
    return label, f"Candidate {label} is the most complete and clear answer."


def _comparison(
    candidates: dict[str, str], question: BankQuestion | None, winner: str
) -> dict[str, list[str]]:
    per = {label: sentences(text) for label, text in sorted(candidates.items())}
    shared = set.intersection(*(set(s) for s in per.values())) if per else set()
    contradictions: list[str] = []
    if question is not None:
        by_value: dict[str, list[str]] = {}
        for label, text in sorted(candidates.items()):
            value = stated_value(question, text)
            if value is not None:
                by_value.setdefault(value, []).append(label)
        if len(by_value) > 1:
            claims = "; ".join(
                f"{', '.join(group)} {'says' if len(group) == 1 else 'say'} {value}"
                for value, group in sorted(by_value.items())
            )
            best = stated_value(question, candidates[winner]) or "none"
            contradictions.append(f"{claims}; best supported: {best}.")
    return {
        "consensus": sorted(shared),
        "contradictions": contradictions,
        "unique_insights": [
            f"{label}: {s}" for label, ss in per.items() for s in ss if s not in shared
        ],
        "gaps": [],
    }


def _synthesis(candidates: dict[str, str], question: BankQuestion | None, winner: str) -> str:
    if question is not None:
        return candidates[winner]
    others = sorted((lb for lb in candidates if lb != winner), key=lambda lb: (candidates[lb], lb))
    order = [winner, *others]
    seen: list[str] = []
    for label in order:
        for sentence in sentences(candidates[label]):
            if sentence not in seen:
                seen.append(sentence)
    return " ".join(seen)


def judge_reply(
    scenario: Scenario, model: SimModel, prompt: str, candidates: dict[str, str]
) -> str:
    """The judge's reply to a judge prompt, in the format its `## Task` asks for.

    A verdict (`{"winner", "rationale"}`), a comparison (`{"consensus", "contradictions",
    "unique_insights", "gaps"}`) or, for any other task, a synthesis: the winner's text for a
    bank question, else every distinct sentence of the candidates, the winner's first.

    Args:
        scenario: The scenario (bank and seed).
        model: The judging model (its `judge` rule).
        prompt: The judge prompt (the last user message).
        candidates: `{label: text}` read from the prompt's fences.
    """
    task = prompt[prompt.rfind("## Task") :]
    conversation = prompt.split("## Candidates", 1)[0]
    question = find_question(scenario.bank, conversation)
    winner, rationale = choose(scenario, model, candidates, question)
    if '"winner"' in task:
        return json.dumps({"winner": winner, "rationale": rationale})
    if '"consensus"' in task:
        return json.dumps(_comparison(candidates, question, winner))
    return _synthesis(candidates, question, winner)
