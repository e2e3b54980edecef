"""The debate graph (who sees whom, turns and edges, drawing) and answer agreement."""

from __future__ import annotations

import json

import pytest
from syrupy.assertion import SnapshotAssertion

from langchain_fusion._core.agreement import answers_agree, normalise_answer
from langchain_fusion._core.graph import DebateGraph, Turn

FIVE = ["a", "b", "c", "d", "e"]


def _round(graph: DebateGraph, round_: int, status: dict[str, str] | None = None) -> None:
    """Add one round of turns for the active members (all members in round 0), then mark them.

    Every turn of the round is added before any is marked, as the runtime does.
    """
    members = graph.members if round_ == 0 else graph.active()
    turns = [graph.add_turn(m, round_) for m in members]
    for turn in turns:
        turn.status = (status or {}).get(turn.member, "ok")
    graph.rounds_run = round_


# --- neighbours ---------------------------------------------------------------------------


def test_all_topology_sees_every_other_member() -> None:
    graph = DebateGraph(FIVE, "all")
    for member in FIVE:
        assert graph.neighbours(member) == [m for m in FIVE if m != member]


def test_ring_of_five_sees_its_two_neighbours() -> None:
    graph = DebateGraph(FIVE, "ring")
    assert graph.neighbours("a") == ["b", "e"]
    assert graph.neighbours("b") == ["a", "c"]
    assert graph.neighbours("c") == ["b", "d"]
    assert graph.neighbours("d") == ["c", "e"]
    assert graph.neighbours("e") == ["a", "d"]
    for member in FIVE:
        assert len(graph.neighbours(member)) == 2
        assert member not in graph.neighbours(member)
    # The relation is symmetric.
    for member in FIVE:
        for other in graph.neighbours(member):
            assert member in graph.neighbours(other)


def test_ring_of_four() -> None:
    graph = DebateGraph(["w", "x", "y", "z"], "ring")
    assert graph.neighbours("w") == ["x", "z"]
    assert graph.neighbours("y") == ["x", "z"]


@pytest.mark.parametrize("pool", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_small_rings_see_all_others(pool: list[str]) -> None:
    graph = DebateGraph(pool, "ring")
    for member in pool:
        assert graph.neighbours(member) == [m for m in pool if m != member]


# --- turns and edges ----------------------------------------------------------------------


def test_turn_id() -> None:
    assert Turn("gpt-4o", 2).id == "r2:gpt-4o"
    assert Turn("m", 0).status == "pending"


def test_round_zero_has_no_edges() -> None:
    graph = DebateGraph(FIVE, "ring")
    _round(graph, 0)
    assert list(graph.turns) == [f"r0:{m}" for m in FIVE]
    assert graph.edges == []
    assert graph.active() == FIVE


def test_round_one_edges_ring() -> None:
    graph = DebateGraph(FIVE, "ring")
    _round(graph, 0)
    _round(graph, 1)
    assert graph.edges == [
        ("r0:a", "r1:a"),
        ("r0:b", "r1:a"),
        ("r0:e", "r1:a"),
        ("r0:b", "r1:b"),
        ("r0:a", "r1:b"),
        ("r0:c", "r1:b"),
        ("r0:c", "r1:c"),
        ("r0:b", "r1:c"),
        ("r0:d", "r1:c"),
        ("r0:d", "r1:d"),
        ("r0:c", "r1:d"),
        ("r0:e", "r1:d"),
        ("r0:e", "r1:e"),
        ("r0:a", "r1:e"),
        ("r0:d", "r1:e"),
    ]


def test_round_edges_all_topology() -> None:
    graph = DebateGraph(["a", "b", "c"], "all")
    _round(graph, 0)
    _round(graph, 1)
    _round(graph, 2)
    into = {}
    for source, target in graph.edges:
        into.setdefault(target, []).append(source)
    assert into["r1:b"] == ["r0:b", "r0:a", "r0:c"]
    assert into["r2:c"] == ["r1:c", "r1:a", "r1:b"]
    assert len(graph.edges) == 3 * 3 * 2
    assert "r0:a" not in into


def test_failed_member_drops_out_but_stays_visible() -> None:
    graph = DebateGraph(FIVE, "ring")
    _round(graph, 0)
    _round(graph, 1, status={"c": "error"})
    assert graph.active() == ["a", "b", "d", "e"]
    # c's last good answer (round 0) stays visible to its neighbours.
    latest = graph.latest("c")
    assert latest is not None
    assert latest.id == "r0:c"
    assert graph.visible_to("b") == ["a", "c"]
    assert graph.visible_to("d") == ["c", "e"]
    _round(graph, 2)
    assert "r2:c" not in graph.turns
    into_b = [s for s, t in graph.edges if t == "r2:b"]
    assert into_b == ["r1:b", "r1:a", "r0:c"]
    assert graph.latest("b").id == "r2:b"  # type: ignore[union-attr]


def test_member_failing_in_round_zero() -> None:
    graph = DebateGraph(["a", "b", "c"], "all")
    _round(graph, 0, status={"b": "timeout"})
    assert graph.active() == ["a", "c"]
    assert graph.latest("b") is None
    assert graph.visible_to("a") == ["c"]
    _round(graph, 1)
    assert [s for s, t in graph.edges if t == "r1:a"] == ["r0:a", "r0:c"]


def test_pending_turn_is_not_active_and_not_latest() -> None:
    graph = DebateGraph(["a", "b"], "all")
    graph.add_turn("a", 0)
    assert graph.active() == []
    assert graph.latest("a") is None
    assert graph.visible_to("b") == []


def test_to_dict_is_json_serialisable() -> None:
    graph = DebateGraph(FIVE, "ring")
    _round(graph, 0)
    _round(graph, 1, status={"e": "cancelled"})
    graph.stopped_early = True
    data = graph.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["topology"] == "ring"
    assert data["rounds"] == 1
    assert data["stopped_early"] is True
    assert len(data["nodes"]) == 10
    assert {"id": "r1:e", "member": "e", "round": 1, "status": "cancelled"} in data["nodes"]
    assert len(data["edges"]) == 15
    assert data["edges"][0] == ["r0:a", "r1:a"]


def test_to_mermaid_structure() -> None:
    graph = DebateGraph(FIVE, "ring")
    _round(graph, 0)
    _round(graph, 1, status={"c": "error"})
    _round(graph, 2)
    text = graph.to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert [line.strip() for line in lines if "subgraph" in line] == [
        'subgraph round0["round 0"]',
        'subgraph round1["round 1"]',
        'subgraph round2["round 2"]',
    ]
    assert sum(line.strip() == "end" for line in lines) == 3
    arrows = [line for line in lines if "-->" in line]
    assert len(arrows) == len(graph.edges)
    assert sum('["' in line for line in lines) - 3 == len(graph.turns)
    assert '["c (error)"]' in text


def test_to_mermaid_snapshot(snapshot: SnapshotAssertion) -> None:
    graph = DebateGraph(["openai/gpt-4o", 'say "hi"', "gemini", "claude"], "ring")
    _round(graph, 0)
    _round(graph, 1, status={"gemini": "timeout"})
    _round(graph, 2)
    assert graph.to_mermaid() == snapshot


# --- agreement ----------------------------------------------------------------------------


def test_normalise_answer() -> None:
    assert normalise_answer("  The answer is **Paris**!\n") == "the answer is paris"
    assert (
        normalise_answer("\uff30\uff21\uff32\uff29\uff33") == "paris"
    )  # NFKC folds full-width letters
    assert normalise_answer("Straße") == normalise_answer("STRASSE")


@pytest.mark.parametrize(
    "texts",
    [
        ["Paris", "paris", "PARIS."],
        ["The answer is 42", "the  answer\nis 42!", "`The answer is 42`"],
        ["Yes, it is.", "yes it is"],
        ["only one"],
    ],
)
def test_answers_agree(texts: list[str]) -> None:
    assert answers_agree(texts)


@pytest.mark.parametrize(
    "texts",
    [
        ["Paris", "Lyon"],
        ["42", "43"],
        ["Paris", "Paris", "Paris is nice"],
        ["", ""],
        ["...", "!!"],
        ["", "Paris"],
        [],
    ],
)
def test_answers_disagree(texts: list[str]) -> None:
    assert not answers_agree(texts)
