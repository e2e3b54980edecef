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

_FENCE_RE = re.compile(
    r"^=+ BEGIN CANDIDATE (?P<label>[A-Z]+) \[nonce:(?P<nonce>[0-9a-f]+)\] =+\n"
    r"(?P<body>.*?)\n"
    r"=+ END CANDIDATE (?P=label) \[nonce:(?P=nonce)\] =+$",
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


def extract_candidates(text: str) -> dict[str, str]:
    """Read fenced candidates back out of a prompt: `{label: text}`.

    Used by the fake judge in `langchain_fusion.testing` and by the simulator's judge. The
    nonce is the one the instructions name ("... carry the nonce N"); failing that, the first
    nonce whose fences are complete. Only fences whose BEGIN and END carry the same label and
    that nonce count, so forged fences in the conversation or in a candidate are ignored.
    """
    stated = re.findall(r"nonce ([0-9a-f]{8,})\b", text)
    seen = re.findall(r"\[nonce:([0-9a-f]+)\] =+", text)
    for nonce in dict.fromkeys([*stated[:1], *seen]):
        found: dict[str, str] = {}
        for match in _FENCE_RE.finditer(text):
            if match.group("nonce") == nonce and match.group("label") not in found:
                found[match.group("label")] = match.group("body")
        if found:
            return found
    return {}
