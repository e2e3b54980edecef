"""What an OpenRouter model is to llm-fusion: the slug form, the API root, the environment.

A leaf module: `providers` (the chat model a slug becomes), `_slugs` (slugs in a fusion's
pool and judge) and the `fusion` command read these names from here.
"""

from __future__ import annotations

import os
import re

#: OpenRouter's OpenAI-compatible API.
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
#: Environment variable read for the OpenRouter API key.
OPENROUTER_API_KEY_ENV = "OPENROUTER_API_KEY"
#: Environment variable read for the OpenRouter base URL (e.g. a local simulator).
OPENROUTER_API_BASE_ENV = "OPENROUTER_API_BASE"

_SLUG_RE = re.compile(r"^[^\s/]+/\S+$")


def is_slug(value: object) -> bool:
    """Whether `value` is an OpenRouter model slug, `"vendor/model"` (variants allowed)."""
    return isinstance(value, str) and bool(_SLUG_RE.match(value))


def openrouter_base_url(base_url: str | None = None) -> str:
    """`base_url`, else `OPENROUTER_API_BASE` from the environment, else OpenRouter's API."""
    return base_url or os.environ.get(OPENROUTER_API_BASE_ENV) or OPENROUTER_BASE_URL
