"""Anonymising, shuffling and fencing candidate answers before the judge reads them.

The pool is untrusted text: candidates reach the judge under labels (never model names), in
an order shuffled per call, each between delimiters that carry a random nonce the candidates
cannot know, so no candidate can close its own fence or pose as another.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage

_BEGIN_RE = re.compile(
    r"^=+ BEGIN CANDIDATE (?P<label>[A-Z]+) \[nonce:(?P<nonce>[0-9a-f]+)\] =+$", re.MULTILINE
)
_END_RE = re.compile(
    r"^=+ END CANDIDATE (?P<label>[A-Z]+) \[nonce:(?P<nonce>[0-9a-f]+)\] =+$", re.MULTILINE
)
_STATED_NONCE_RE = re.compile(r"nonce ([0-9a-f]{8,})\b")


@dataclass(frozen=True)
class Candidate:
    """One answer as the judge sees it: a label and its text, nothing else."""

    label: str
    text: str


def new_nonce() -> str:
    """A fresh random nonce for one judge call."""
    return secrets.token_hex(8)


def labels(count: int) -> list[str]:
    """Labels `A`, `B`, ... `Z`, `AA`, `AB`, ... for `count` candidates."""
    out: list[str] = []
    for index in range(count):
        label = ""
        n = index
        while True:
            label = chr(ord("A") + n % 26) + label
            n = n // 26 - 1
            if n < 0:
                break
        out.append(label)
    return out


def message_text(message: BaseMessage) -> str:
    """The text of a message, with its proposed tool calls written out."""
    text = message.text if isinstance(message.text, str) else str(message.text)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = "\n".join(
            f"- {call['name']}({json.dumps(call['args'], sort_keys=True, ensure_ascii=False)})"
            for call in message.tool_calls
        )
        return f"{text}\n\nProposed tool calls:\n{calls}".strip()
    return text


def anonymise(names: Sequence[str], rng: random.Random) -> dict[str, str]:
    """Shuffle `names` and give each a label; returns `{label: name}` in label order."""
    order = list(names)
    rng.shuffle(order)
    return dict(zip(labels(len(order)), order, strict=True))


def fence(candidates: Sequence[Candidate], nonce: str) -> str:
    """Render candidates, each between BEGIN/END lines that carry `nonce`."""
    blocks = []
    for candidate in candidates:
        # A candidate cannot know the nonce; should one contain it anyway, blank it.
        body = candidate.text.replace(nonce, "[redacted]")
        blocks.append(
            f"===== BEGIN CANDIDATE {candidate.label} [nonce:{nonce}] =====\n"
            f"{body}\n"
            f"===== END CANDIDATE {candidate.label} [nonce:{nonce}] ====="
        )
    return "\n\n".join(blocks)


def _fences_of(text: str, nonce: str) -> list[tuple[str, int, int, int]]:
    """`(label, body start, body end, fence end)` of each fence of `nonce`, first per label.

    A fence runs from its BEGIN line to the first END line of the same label and nonce
    after it; fences of other nonces are text like any other. Scanning resumes after each
    fence, so a BEGIN line inside a fence's body is body.
    """
    found: dict[str, tuple[str, int, int, int]] = {}
    position = 0
    while (begin := _BEGIN_RE.search(text, position)) is not None:
        position = begin.end()
        if begin.group("nonce") != nonce:
            continue
        label = begin.group("label")
        body_start = begin.end() + 1
        for end in _END_RE.finditer(text, body_start):
            # The body is the lines in between: at least an empty line.
            same = (end.group("label"), end.group("nonce")) == (label, nonce)
            if same and end.start() - 1 >= body_start:
                found.setdefault(label, (label, body_start, end.start() - 1, end.end()))
                position = end.end()
                break
    return list(found.values())


def _real_fences(text: str) -> list[tuple[str, int, int, int]]:
    """The fences of the nonce the instructions state."""
    # Instructions state the nonce before the candidates; a nonce stated later (inside a
    # candidate, beside a forged fence) is candidate text. A conversation is written before
    # the call draws its nonce, so whatever it states or forges is another nonce.
    first_fence = _BEGIN_RE.search(text)
    head = text[: first_fence.start()] if first_fence else text
    stated = _STATED_NONCE_RE.search(head)
    if stated:
        nonces = [stated.group(1)]
    else:
        nonces = list(dict.fromkeys(m.group("nonce") for m in _BEGIN_RE.finditer(text)))
    for nonce in nonces:
        fences = _fences_of(text, nonce)
        if fences:
            return fences
    return []


def extract_candidates(text: str) -> dict[str, str]:
    """Read fenced candidates back out of a prompt: `{label: text}`.

    Used by the fake judge in `langchain_fusion.testing` and by the simulator's judge. The
    nonce is the first one stated ("... carry the nonce N") before the first fence line;
    failing that, the first nonce whose fences are complete. Only fences whose BEGIN and
    END lines carry the same label and that nonce count, so forged fences in the
    conversation or in a candidate are candidate text.
    """
    return {label: text[start:stop] for label, start, stop, _ in _real_fences(text)}


def after_candidates(text: str) -> str:
    """The part of a prompt after its last real fence (its task), or all of it if none."""
    fences = _real_fences(text)
    return text[max(fence_end for *_, fence_end in fences) :] if fences else text
