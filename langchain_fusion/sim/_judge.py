"""The simulated judge: which candidate wins, by documented rules and biases.

The judge reads the candidates with the simulator's own reader (`_reading`), in the order
the prompt shows them. How it chooses is `JudgeSpec`: `prefer`, then each bias with its own
seeded draw (`position_bias`, `self_preference`, `verbosity_bias`), then its `rule`. Only the
`oracle` rule looks at the question bank's right answers.
"""

from __future__ import annotations

import json
from collections import Counter

from langchain_fusion.sim._knowledge import find_question, first_answer, stated_value
from langchain_fusion.sim._reading import answer_word, claim, prose_of, sentences
from langchain_fusion.sim._scenario import JudgeSpec, PlainRule, Scenario, SimModel
from langchain_fusion.sim._tokens import draw, normalise

Shown = list[tuple[str, str]]
"""`(label, text)` of each candidate, in the order shown."""


def _plain_choice(rule: PlainRule, shown: Shown) -> str:
    """By the order shown (`first`) or by length, earlier shown winning ties."""
    if rule == "longest":
        return max(enumerate(shown), key=lambda p: (len(p[1][1]), -p[0]))[1][0]
    if rule == "shortest":
        return min(enumerate(shown), key=lambda p: (len(p[1][1]), p[0]))[1][0]
    return shown[0][0]


def agreement_groups(shown: Shown) -> list[list[str]]:
    """Labels grouped by the claim their answers make, largest group first.

    Equal groups keep the order shown. Answers without a claim (longer text) are each a
    group of their own.
    """
    groups: dict[str, list[str]] = {}
    for label, text in shown:
        groups.setdefault(claim(text) or f"\x00{label}", []).append(label)
    return sorted(groups.values(), key=len, reverse=True)


def _agreement(spec: JudgeSpec, shown: Shown) -> tuple[str, str]:
    groups = agreement_groups(shown)
    top = len(groups[0])
    if top < 2:
        label = _plain_choice(spec.fallback, shown)
        return label, f"No two candidates agree; candidate {label} is the {spec.fallback}."
    tied = {label for group in groups if len(group) == top for label in group}
    label = _plain_choice(spec.fallback, [c for c in shown if c[0] in tied])
    return label, f"Candidate {label} gives the answer {top} of {len(shown)} candidates agree on."


def _oracle(
    scenario: Scenario, model: SimModel, shown: Shown, conversation: str
) -> tuple[str, str] | None:
    """The `oracle` rule: a right candidate with probability `accuracy` (else a wrong one).

    Seeded by the question and the candidates' texts, not their order, so showing the same
    candidates in another order gives the same decision. `None` off the bank.
    """
    question = find_question(scenario.bank, conversation)
    if question is None:
        return None
    spec = model.judge
    right = [lb for lb, t in shown if stated_value(question, t) == question.answer]
    wrong = [lb for lb, _ in shown if lb not in right]
    texts = sorted(t for _, t in shown)
    roll = draw(scenario.seed, "judge", model.name, question.question, *texts)
    pool = right if (right and (roll < spec.accuracy or not wrong)) else wrong
    by_label = dict(shown)
    ordered = sorted(pool, key=lambda lb: (by_label[lb], lb))
    label = ordered[int(draw(scenario.seed, "judge-pick", model.name, *texts) * len(ordered))]
    value = stated_value(question, by_label[label])
    return label, f"Candidate {label} gives {value}, which is the right answer."


def own_candidate(
    scenario: Scenario, model: SimModel, shown: Shown, conversation: str
) -> str | None:
    """The candidate the judge recognises as its own, if any.

    Candidates are anonymised, so the judge cannot know who wrote what: it recognises a
    candidate whose text is exactly what it would answer itself (normalised), as a model
    recognises its own phrasing. A pool member of the judge's model writes exactly that.
    """
    own, _ = first_answer(scenario, model, conversation)
    mine = normalise(own)
    return next((label for label, text in shown if normalise(prose_of(text)) == mine), None)


def choose(scenario: Scenario, model: SimModel, shown: Shown, conversation: str) -> tuple[str, str]:
    """The winning label and a one-sentence rationale (see `JudgeSpec` for the order).

    Args:
        scenario: The scenario (bank and seed).
        model: The judging model.
        shown: `(label, text)` of the candidates, in the order shown.
        conversation: The judged conversation (the prompt before its candidates).
    """
    spec: JudgeSpec = model.judge
    if spec.prefer is not None:
        for label, text in shown:
            if spec.prefer in text:
                return label, f"Candidate {label} says {spec.prefer}."
    in_order = [t for _, t in shown]
    if spec.position_bias and draw(scenario.seed, "position", model.name, *in_order) < (
        spec.position_bias
    ):
        return shown[0][0], f"Candidate {shown[0][0]} is the strongest."
    if spec.self_preference:
        own = own_candidate(scenario, model, shown, conversation)
        if own is not None and draw(scenario.seed, "self", model.name, *in_order) < (
            spec.self_preference
        ):
            return own, f"Candidate {own} is the most accurate."
    if spec.verbosity_bias and draw(scenario.seed, "verbose", model.name, *in_order) < (
        spec.verbosity_bias
    ):
        label = _plain_choice("longest", shown)
        return label, f"Candidate {label} is the most thorough."
    if spec.rule == "oracle":
        decided = _oracle(scenario, model, shown, conversation)
        if decided is not None:
            return decided
        label = _plain_choice(spec.fallback, shown)
    elif spec.rule == "agreement":
        return _agreement(spec, shown)
    else:
        label = _plain_choice(spec.rule, shown)
    return label, f"Candidate {label} is the most complete and clear answer."


def _comparison(shown: Shown, winner: str) -> dict[str, list[str]]:
    per = {label: sentences(prose_of(text)) for label, text in shown}
    shared = set.intersection(*(set(s) for s in per.values())) if per else set()
    contradictions: list[str] = []
    claims = {label: claim(text) for label, text in shown}
    by_claim: dict[str, list[str]] = {}
    for label, said in claims.items():
        if said is not None:
            by_claim.setdefault(said, []).append(label)
    if len(by_claim) > 1:
        words = {claim(t): answer_word(t) for _, t in shown}
        parts = "; ".join(
            f"{', '.join(group)} {'says' if len(group) == 1 else 'say'} {words[said]}"
            for said, group in by_claim.items()
        )
        best = words.get(claims[winner]) or "none"
        contradictions.append(f"{parts}; best supported: {best}.")
    return {
        "consensus": sorted(shared),
        "contradictions": contradictions,
        "unique_insights": [
            f"{label}: {s}" for label, ss in per.items() for s in ss if s not in shared
        ],
        "gaps": [],
    }


def synthesis(shown: Shown, winner: str) -> str:
    """A synthesis that combines the candidates' sentences.

    The winner's sentences first, then those of every other candidate that does not
    contradict it (a short answer with another claim does), ordered by their text (so the
    synthesis does not depend on the order shown); a sentence already said (its words
    already written, in order) is left out.
    """
    by_label = dict(shown)
    said = claim(by_label[winner])
    others = sorted((text, label) for label, text in shown if label != winner)
    order = [winner, *(label for _, label in others)]
    written: list[str] = []
    for label in order:
        other = claim(by_label[label])
        if label != winner and other is not None and said is not None and other != said:
            continue
        for sentence in sentences(prose_of(by_label[label])):
            so_far = " ".join(normalise_words(s) for s in written)
            if f" {normalise_words(sentence)} " not in f" {so_far} ":
                written.append(sentence)
    return " ".join(written)


def normalise_words(text: str) -> str:
    """`text` as case-folded words without surrounding punctuation, joined by spaces."""
    return " ".join(w for w in (normalise(word) for word in text.split()) if w)


def majority_claim(texts: list[str]) -> tuple[list[str], int]:
    """The claims most of `texts` make (ties: all of them), and how many make each."""
    counts = Counter(c for c in (claim(t) for t in texts) if c is not None)
    if not counts:
        return [], 0
    top = max(counts.values())
    return [c for c, n in counts.items() if n == top], top


def judge_reply(scenario: Scenario, model: SimModel, prompt: str, shown: Shown) -> str:
    """The judge's reply to a judge prompt, in the format its `## Task` asks for.

    A verdict (`{"winner", "rationale"}`), a comparison (`{"consensus", "contradictions",
    "unique_insights", "gaps"}`) or, for any other task, a synthesis (see `synthesis`).

    Args:
        scenario: The scenario (bank and seed).
        model: The judging model (its `judge` spec).
        prompt: The judge prompt (the last user message).
        shown: `(label, text)` read from the prompt's fences, in the order shown.
    """
    task = prompt[prompt.rfind("## Task") :]
    conversation = prompt.split("## Candidates", 1)[0]
    winner, rationale = choose(scenario, model, shown, conversation)
    if '"winner"' in task:
        return json.dumps({"winner": winner, "rationale": rationale})
    if '"consensus"' in task:
        return json.dumps(_comparison(shown, winner))
    return synthesis(shown, winner)
