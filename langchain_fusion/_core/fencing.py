"""Anonymising, shuffling and fencing candidate answers before the judge reads them.

The pool is untrusted text: candidates reach the judge under labels (never model names), in
an order shuffled per call, each between delimiters that carry a random nonce the candidates
cannot know, so no candidate can close its own fence or pose as another.
"""

from __future__ import annotations

import functools
import json
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage

_BEGIN_LINE_RE = re.compile(r"^=+ BEGIN CANDIDATE [A-Z]+ \[nonce:[0-9a-f]+\] =+$", re.MULTILINE)
_STATED_NONCE_RE = re.compile(r"nonce ([0-9a-f]{8,})\b")
_SEEN_NONCE_RE = re.compile(r"\[nonce:([0-9a-f]+)\] =+")


@functools.lru_cache(maxsize=64)
def _fence_re(nonce: str) -> re.Pattern[str]:
    """BEGIN/END pairs of one nonce only: fences of other nonces are text like any other."""
    return re.compile(
        rf"^=+ BEGIN CANDIDATE (?P<label>[A-Z]+) \[nonce:{nonce}\] =+\n"
        r"(?P<body>.*?)\n"
        rf"=+ END CANDIDATE (?P=label) \[nonce:{nonce}\] =+$",
        re.DOTALL | re.MULTILINE,
    )


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


def _real_fences(text: str) -> list[re.Match[str]]:
    """The fences of the nonce the instructions state, one per label, in order."""
    # Instructions state the nonce before the candidates; a nonce stated later (inside a
    # candidate, beside a forged fence) is candidate text. A conversation is written before
    # the call draws its nonce, so whatever it states or forges is another nonce.
    first_fence = _BEGIN_LINE_RE.search(text)
    head = text[: first_fence.start()] if first_fence else text
    stated = _STATED_NONCE_RE.search(head)
    nonces = [stated.group(1)] if stated else list(dict.fromkeys(_SEEN_NONCE_RE.findall(text)))
    for nonce in nonces:
        found: dict[str, re.Match[str]] = {}
        for match in _fence_re(nonce).finditer(text):
            found.setdefault(match.group("label"), match)
        if found:
            return list(found.values())
    return []


def extract_candidates(text: str) -> dict[str, str]:
    """Read fenced candidates back out of a prompt: `{label: text}`.

    Used by the fake judge in `langchain_fusion.testing` and by the simulator's judge. The
    nonce is the first one stated ("... carry the nonce N") before the first fence line;
    failing that, the first nonce whose fences are complete. Only fences whose BEGIN and
    END lines carry the same label and that nonce count, so forged fences in the
    conversation or in a candidate are candidate text.
    """
    return {match.group("label"): match.group("body") for match in _real_fences(text)}


def after_candidates(text: str) -> str:
    """The part of a prompt after its last real fence (its task), or all of it if none."""
    fences = _real_fences(text)
    return text[max(match.end() for match in fences) :] if fences else text
