"""Token counting, normalisation and seeded draws: the simulator's exact, reproducible units.

A token is a whitespace-separated word: `count_tokens(text) == len(text.split())`.
"""

from __future__ import annotations

import hashlib
import re

_WORD_RE = re.compile(r"\S+\s*")
_NORMALISE_RE = re.compile(r"[\s?!.,;:'\"]+")


def count_tokens(text: str) -> int:
    """Tokens in `text`: its whitespace-separated words.

    Args:
        text: Any text.

    Returns:
        `len(text.split())`.
    """
    return len(text.split())


def split_tokens(text: str) -> list[str]:
    """Split `text` into one piece per token, so that `"".join(pieces) == text`.

    Each piece is a word with the whitespace after it (the first also carries any leading
    whitespace). Text without words is one piece (or none when empty).
    """
    pieces = _WORD_RE.findall(text)
    if not pieces:
        return [text] if text else []
    lead = text[: len(text) - len(text.lstrip())]
    pieces[0] = lead + pieces[0]
    return pieces


def normalise(text: str) -> str:
    """Case-folded `text` without whitespace and the punctuation `?!.,;:'"` (for matching)."""
    return _NORMALISE_RE.sub("", text.casefold())


def draw(*parts: object) -> float:
    """A uniform number in [0, 1) determined by `parts` (stable across runs and platforms)."""
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
