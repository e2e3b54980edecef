"""The pure rules of judging: orders per pass, the majority and its tie rule, relabelling."""

from __future__ import annotations

import pytest

from langchain_fusion._core.agreement import answers_agree
from langchain_fusion._core.judging import (
    Failure,
    JudgeVerdict,
    agreement_counts,
    decide,
    main_failure,
    most_agreed,
    pass_orders,
    relabel,
    truncate,
    union_comparisons,
)
from langchain_fusion._core.verdict import Comparison, VerdictParseError, parse_verdict


def test_pass_orders_reverse_then_rotate() -> None:
    assert pass_orders(["a", "b", "c"], 5) == [
        ["a", "b", "c"],
        ["c", "b", "a"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert pass_orders(["a"], 3) == [["a"], ["a"], ["a"]]


def test_every_candidate_is_shown_first_once_over_enough_passes() -> None:
    names = ["a", "b", "c", "d"]
    firsts = {order[0] for order in pass_orders(names, 4)}
    assert firsts == set(names)


def test_agreement_counts_are_pairwise() -> None:
    texts = {"a": "Paris", "b": "paris.", "c": "Lyon", "d": "PARIS"}
    assert agreement_counts(list(texts), texts, answers_agree) == {"a": 2, "b": 2, "c": 0, "d": 2}


def test_most_agreed_breaks_ties_by_pool_order() -> None:
    counts = {"a": 1, "b": 2, "c": 2}
    assert most_agreed(["c", "b", "a"], ["a", "b", "c"], counts) == "b"
    assert most_agreed(["a"], ["a", "b", "c"], counts) == "a"


def verdict(winner: str | None, status: str = "ok") -> JudgeVerdict:
    return JudgeVerdict("judge", "m", 1, [], winner=winner, status=status)


def test_decide_majority_tie_and_nothing_valid() -> None:
    pool = ["a", "b", "c"]
    counts = {"a": 0, "b": 0, "c": 1}
    majority = decide([verdict("a"), verdict("a"), verdict("b")], pool, counts)
    assert majority is not None and (majority.winner, majority.rule) == ("a", "majority")
    assert majority.agreement == pytest.approx(2 / 3, abs=1e-6)
    tie = decide([verdict("a"), verdict("c")], pool, counts)
    assert tie is not None and (tie.winner, tie.rule, tie.agreement) == (
        "c",
        "tie_most_agreed",
        0.5,
    )
    # Excluded and failed verdicts do not count.
    only = decide([verdict("a", "excluded"), verdict(None, "timeout"), verdict("b")], pool, counts)
    assert only is not None and (only.winner, only.agreement) == ("b", 1.0)
    assert decide([verdict("a", "excluded")], pool, counts) is None


def test_main_failure_is_the_most_common_reason() -> None:
    failures = [
        Failure("timeout", "t"),
        Failure("upstream_error", "u1"),
        Failure("upstream_error", "u2"),
    ]
    main = main_failure(failures)
    assert main is not None and (main.reason, main.error) == ("upstream_error", "u1")
    assert main_failure([]) is None


def test_truncate() -> None:
    assert truncate(None) is None
    assert truncate("short") == "short"
    assert truncate("x" * 10, limit=4) == "xxxx…"


def test_relabel_only_translates_unambiguous_references() -> None:
    mapping = {"A": "B", "B": "A"}
    assert relabel("Candidate A and candidate B disagree", mapping) == (
        "Candidate B and candidate A disagree"
    )
    assert relabel("A: it is on the Seine.", mapping) == "B: it is on the Seine."
    assert relabel("A rollback plan is missing", mapping) == "A rollback plan is missing"


def test_union_keeps_each_point_once_in_first_seen_order() -> None:
    first = Comparison(consensus=["Paris is the capital."], gaps=["No source."])
    second = Comparison(consensus=["paris is the capital", "It is on the Seine."])
    union = union_comparisons([first, second])
    assert union is not None
    assert union.consensus == ["Paris is the capital.", "It is on the Seine."]
    assert union.gaps == ["No source."]
    assert union_comparisons([]) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("I choose the second", "not_valid_json"),
        ('{"pick": "A"}', "schema_mismatch"),
        ('{"winner": "Z"}', "refused_label"),
        ('{"winner": "A"} {"winner": "B"}', "refused_label"),
    ],
)
def test_parse_errors_name_their_reason(text: str, reason: str) -> None:
    with pytest.raises(VerdictParseError) as caught:
        parse_verdict(text, ["A", "B"])
    assert caught.value.reason == reason
