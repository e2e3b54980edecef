"""Do the members agree? Used to stop a debate early."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_PUNCT_RE = re.compile(r"[\s\.\,\;\:\!\?\"'`\*_\(\)\[\]]+")


def normalise_answer(text: str) -> str:
    """Case-, whitespace-, punctuation- and markdown-insensitive form of an answer."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_RE.sub(" ", text).strip()


def answers_agree(texts: Sequence[str]) -> bool:
    """Whether every answer has the same normalised form (one answer agrees with itself)."""
    forms = {normalise_answer(t) for t in texts}
    return len(forms) == 1 and "" not in forms
