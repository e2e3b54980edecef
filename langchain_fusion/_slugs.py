"""OpenRouter slugs in a fusion's pool and judge, resolved to `ChatOpenAICompatible` models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from langchain_fusion.providers import (
    OPENROUTER_API_KEY_ENV,
    ChatOpenAICompatible,
    is_slug,
    openrouter_base_url,
)


def has_slugs(pool: Any, judge: Any) -> bool:
    """Whether the pool (list or dict) or the judge holds a string."""
    values = pool.values() if isinstance(pool, Mapping) else pool
    return isinstance(judge, str) or any(isinstance(v, str) for v in values)


def slug_model(
    value: Any, where: str, api_key: SecretStr | None, base_url: str | None, require_key: bool
) -> Any:
    """`value`, or the chat model it names when it is an OpenRouter slug.

    Raises:
        ValueError: for a string that is not a slug, or a slug without any API key (when
            `require_key`); the message names `where`, the field and the fix.
    """
    if not isinstance(value, str):
        return value
    if not is_slug(value):
        raise ValueError(
            f"{where} is the string {value!r}, which is not an OpenRouter slug: write "
            "'vendor/model' (e.g. 'openai/gpt-4o'), or pass a LangChain chat model "
            "(BaseChatModel)"
        )
    if api_key is None and require_key:
        raise ValueError(
            f"{where} is the string {value!r}, an OpenRouter slug, which needs an API key: "
            f"set the api_key field or the {OPENROUTER_API_KEY_ENV} environment variable, "
            "or pass a LangChain chat model (BaseChatModel) instead"
        )
    return ChatOpenAICompatible(
        model=value, base_url=openrouter_base_url(base_url), api_key=api_key
    )


def resolve_slugs(
    pool: Any,
    judge: Any,
    api_key: SecretStr | None,
    base_url: str | None,
    require_key: bool = True,
) -> tuple[Any, Any]:
    """The pool and judge with every slug replaced by its chat model (others kept as given).

    Every slug gets a `ChatOpenAICompatible` on the shared connection pool.
    """
    if isinstance(pool, Mapping):
        pool = {
            k: slug_model(v, f"pool[{k!r}]", api_key, base_url, require_key)
            for k, v in pool.items()
        }
    elif isinstance(pool, list):
        pool = [
            slug_model(v, f"pool[{i}]", api_key, base_url, require_key) for i, v in enumerate(pool)
        ]
    return pool, slug_model(judge, "judge", api_key, base_url, require_key)
