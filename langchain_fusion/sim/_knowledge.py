"""What a simulated model knows: its scripted answers and its answers to the question bank."""

from __future__ import annotations

import re

from langchain_fusion.sim._scenario import BankQuestion, Scenario, ScriptedAnswer, SimModel
from langchain_fusion.sim._tokens import draw, normalise

_PROMPT_CHARS = 120


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
    """The answer `model` gives to `question`: right with probability `model.accuracy`.

    A miss gives the wrong answer drawn for (seed, model, question); models of one
    `error_group` draw the same wrong answer (correlated errors).
    """
    if draw(scenario.seed, "bank", model.name, question.question) < model.accuracy:
        return question.answer
    if not question.wrong:
        return "not sure"
    who = model.error_group if model.error_group is not None else model.name
    pick = draw(scenario.seed, "wrong", who, question.question)
    return question.wrong[int(pick * len(question.wrong))]


def fill(template: str, model: SimModel, prompt: str, answer: str = "") -> str:
    """`template` with `{answer}`, `{model}` and `{prompt}` (shortened) replaced."""
    short = " ".join(prompt.split())
    if len(short) > _PROMPT_CHARS:
        short = short[: _PROMPT_CHARS - 1].rstrip() + "…"
    return (
        template.replace("{answer}", answer)
        .replace("{model}", model.name)
        .replace("{prompt}", short)
    )


def scripted(model: SimModel, text: str) -> ScriptedAnswer | None:
    """The first of `model`'s scripted answers that `text` selects."""
    haystack = normalise(text)
    for rule in model.answers:
        if rule.match is not None and normalise(rule.match) in haystack:
            return rule
        if rule.regex is not None and re.search(rule.regex, text):
            return rule
    return None


def first_answer(
    scenario: Scenario, model: SimModel, prompt: str
) -> tuple[str, ScriptedAnswer | None]:
    """What `model` answers to `prompt` on its own.

    Scripted, else from the bank, else its default answer; with the scripted answer it came
    from (for its tools and JSON).
    """
    rule = scripted(model, prompt)
    if rule is not None:
        return fill(rule.answer, model, prompt), rule
    question = find_question(scenario.bank, prompt)
    if question is not None:
        return fill(model.template, model, prompt, bank_value(scenario, model, question)), None
    return fill(model.default_answer, model, prompt), None
