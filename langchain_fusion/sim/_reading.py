"""How a simulated model reads a prompt: fenced candidates, the task, and what each answer says.

The simulator has its own reader of the library's fence format (not
`langchain_fusion._core.fencing`), as a real judge reads the prompt it is sent: should the
library's fence format change, the simulated judge stops finding candidates and the tests
that run fusions on the simulator fail, instead of the change passing unseen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_fusion.sim._tokens import normalise

# "===== BEGIN CANDIDATE B [nonce:0123abcd] =====", alone on its line.
_FENCE_LINE = re.compile(
    r"=+ (?P<edge>BEGIN|END) CANDIDATE (?P<label>[A-Z]+) \[nonce:(?P<nonce>[0-9a-f]+)\] =+"
)
# The instructions state the nonce before the first fence: "... carry the nonce N".
_STATED_NONCE = re.compile(r"\bnonce\s+([0-9a-f]{8,})\b")
_PROPOSED = "Proposed tool calls:"
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_EDGE_PUNCTUATION = ".,;:!?\"'()[]*`"
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")

#: Answers of at most this many words are short answers, which state a claim (their last word).
SHORT_ANSWER_WORDS = 12


@dataclass(frozen=True)
class Fenced:
    """The candidates of a prompt, in the order shown, and the text after the last one."""

    candidates: list[tuple[str, str]]
    """`(label, text)` of each candidate, in the order the prompt shows them."""

    after: str
    """The prompt after its last candidate (where the task is); all of it without any."""

    @property
    def by_label(self) -> dict[str, str]:
        """`{label: text}`."""
        return dict(self.candidates)

    @property
    def is_judge_task(self) -> bool:
        """Whether candidates are followed by a `## Task` (a judge prompt, not a debate)."""
        return bool(self.candidates) and "## Task" in self.after


def _fence_lines(lines: list[str]) -> list[tuple[int, str, str, str]]:
    """`(line index, edge, label, nonce)` of every line that is a fence line."""
    found = []
    for index, line in enumerate(lines):
        match = _FENCE_LINE.fullmatch(line.rstrip("\r"))
        if match:
            found.append((index, match["edge"], match["label"], match["nonce"]))
    return found


def _read_with(lines: list[str], edges: list[tuple[int, str, str, str]], nonce: str) -> Fenced:
    """The candidates fenced with `nonce`.

    A fence is a BEGIN line, then at least one body line, then the first END line of the
    same label and nonce. Reading resumes after a fence (a BEGIN line inside a body is body);
    a BEGIN line that no END line closes is text. A label counts once.
    """
    mine = [(index, edge, label) for index, edge, label, n in edges if n == nonce]
    candidates: dict[str, str] = {}
    last_end = -1
    for position, (begin, edge, label) in enumerate(mine):
        if edge != "BEGIN" or begin <= last_end:
            continue
        closing = (i for i, e, lb in mine[position + 1 :] if (e, lb) == ("END", label))
        end = next((i for i in closing if i > begin + 1), None)
        if end is None:
            continue
        candidates.setdefault(label, "\n".join(lines[begin + 1 : end]))
        last_end = end
    after = "\n".join(lines[last_end + 1 :]) if candidates else "\n".join(lines)
    return Fenced(candidates=list(candidates.items()), after=after)


def read_candidates(text: str) -> Fenced:
    """The fenced candidates of a prompt (a judge's, or a debater's revision).

    The nonce is the one the instructions state before the first fence line; failing that,
    the first nonce whose fences are complete. Fence lines of any other nonce (forged in the
    conversation or inside a candidate) are candidate text.
    """
    lines = text.split("\n")
    edges = _fence_lines(lines)
    if not edges:
        return Fenced(candidates=[], after=text)
    head = "\n".join(lines[: edges[0][0]])
    stated = _STATED_NONCE.search(head)
    nonces = [stated.group(1)] if stated else list(dict.fromkeys(e[3] for e in edges))
    for nonce in nonces:
        fenced = _read_with(lines, edges, nonce)
        if fenced.candidates:
            return fenced
    return Fenced(candidates=[], after=text)


def prose_of(text: str) -> str:
    """A candidate's text without the tool calls a fusion writes out after it."""
    return text.split(_PROPOSED, 1)[0].strip()


def sentences(text: str) -> list[str]:
    """The sentences of `text` (split after `.`, `!`, `?` and at line breaks)."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]


def answer_word(text: str) -> str | None:
    """The word a short answer turns on, punctuation around it removed (case kept).

    Its last number; else its last capitalised word other than "I"; else its last word.
    """
    words = [w.strip(_EDGE_PUNCTUATION) for w in prose_of(text).split()]
    words = [w for w in words if w]
    numbers = [w for w in words if _NUMBER.fullmatch(w)]
    if numbers:
        return numbers[-1]
    names = [w for w in words if w[0].isupper() and w != "I"]
    if names:
        return names[-1]
    return words[-1] if words else None


def claim(text: str) -> str | None:
    """What a short answer says, normalised (see `answer_word`); `None` for longer text.

    "The answer is 391.", "Working it through, I get 391." and "391, clearly." all claim
    `391`. A reader that does not know the right answer can still see which answers agree.
    """
    prose = prose_of(text)
    if not prose or len(prose.split()) > SHORT_ANSWER_WORDS:
        return None
    word = answer_word(prose)
    return normalise(word) if word else None
