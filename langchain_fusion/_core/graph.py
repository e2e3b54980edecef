"""The debate as data: nodes are turns, edges say whose answer a turn saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_fusion._core.config import Topology


@dataclass
class Turn:
    """One member's turn in one round."""

    member: str
    round: int
    status: str = "pending"

    @property
    def id(self) -> str:
        """Stable node id, e.g. `r1:gpt-4o`."""
        return f"r{self.round}:{self.member}"


@dataclass
class DebateGraph:
    """Who answered in which round and whose answers each turn saw.

    Round 0: every member answers alone. In each later round a member sees the latest answer
    of each neighbour (all other members, or its two ring neighbours) and its own, and
    revises. A member that failed drops out of later rounds; its last answer stays visible.
    """

    members: list[str]
    topology: Topology = "all"
    turns: dict[str, Turn] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    rounds_run: int = 0
    stopped_early: bool = False

    def neighbours(self, member: str) -> list[str]:
        """The members whose answers `member` sees, in pool order."""
        others = [m for m in self.members if m != member]
        if self.topology == "all" or len(self.members) <= 3:
            return others
        i = self.members.index(member)
        n = len(self.members)
        ring = [self.members[(i - 1) % n], self.members[(i + 1) % n]]
        return [m for m in self.members if m in ring]

    def latest(self, member: str, before: int | None = None) -> Turn | None:
        """The member's most recent successful turn (before round `before`, if given)."""
        done = [
            t
            for t in self.turns.values()
            if t.member == member and t.status == "ok" and (before is None or t.round < before)
        ]
        return max(done, key=lambda t: t.round) if done else None

    def active(self) -> list[str]:
        """Members that have not failed: their latest turn succeeded."""
        active = []
        for member in self.members:
            turns = [t for t in self.turns.values() if t.member == member]
            if turns and max(turns, key=lambda t: t.round).status == "ok":
                active.append(member)
        return active

    def add_turn(self, member: str, round_: int) -> Turn:
        """Add a turn and the edges from what it sees (its own and neighbours' latest)."""
        turn = Turn(member, round_)
        if round_ > 0:
            for source in [member, *self.neighbours(member)]:
                seen = self.latest(source, before=round_)
                if seen is not None:
                    self.edges.append((seen.id, turn.id))
        self.turns[turn.id] = turn
        return turn

    def visible_to(self, member: str) -> list[str]:
        """Neighbours whose latest answer `member` sees in its next turn."""
        return [m for m in self.neighbours(member) if self.latest(m) is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, for the fusion report."""
        return {
            "topology": self.topology,
            "rounds": self.rounds_run,
            "stopped_early": self.stopped_early,
            "nodes": [
                {"id": t.id, "member": t.member, "round": t.round, "status": t.status}
                for t in self.turns.values()
            ],
            "edges": [list(edge) for edge in self.edges],
        }

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart, one subgraph per round."""
        ids = {tid: f"n{i}" for i, tid in enumerate(self.turns)}
        lines = ["flowchart LR"]
        for round_ in sorted({t.round for t in self.turns.values()}):
            lines.append(f'    subgraph round{round_}["round {round_}"]')
            for turn in self.turns.values():
                if turn.round == round_:
                    mark = "" if turn.status == "ok" else f" ({turn.status})"
                    label = f"{turn.member}{mark}".replace('"', "'")
                    lines.append(f'        {ids[turn.id]}["{label}"]')
            lines.append("    end")
        for source, target in self.edges:
            lines.append(f"    {ids[source]} --> {ids[target]}")
        return "\n".join(lines)
