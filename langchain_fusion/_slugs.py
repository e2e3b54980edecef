"""OpenRouter slugs in a fusion's pool and judge, resolved to `ChatOpenAICompatible` models.

`SlugFields` is what both adapters (`FusionChatModel`, `FusionLLM`) share: the `api_key`
and `base_url` fields, the checks of the slugs at construction, and their resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from langchain_fusion._openrouter import (
    OPENROUTER_API_BASE_ENV,
    OPENROUTER_API_KEY_ENV,
    OPENROUTER_BASE_URL,
    is_slug,
    openrouter_base_url,
)
from langchain_fusion.providers import ChatOpenAICompatible

#: What a pool entry or judge may be besides a slug, as `FusionChatModel`'s errors say it.
CHAT_MODEL = "a LangChain chat model (BaseChatModel)"


def has_slugs(pool: Any, judge: Any) -> bool:
    """Whether the pool (list or dict) or the judge holds a string."""
    values = pool.values() if isinstance(pool, Mapping) else pool
    judges = judge if isinstance(judge, list) else [judge]
    return any(isinstance(v, str) for v in [*judges, *values])


def slug_model(
    value: Any,
    where: str,
    api_key: SecretStr | None,
    base_url: str | None,
    require_key: bool,
    alternative: str = CHAT_MODEL,
) -> Any:
    """`value`, or the chat model it names when it is an OpenRouter slug.

    Raises:
        ValueError: for a string that is not a slug, or a slug without any API key (when
            `require_key`); the message names `where`, the field and the fix (`alternative`:
            what else may be passed).
    """
    if not isinstance(value, str):
        return value
    if not is_slug(value):
        raise ValueError(
            f"{where} is the string {value!r}, which is not an OpenRouter slug: write "
            f"'vendor/model' (e.g. 'openai/gpt-4o'), or pass {alternative}"
        )
    if api_key is None and require_key:
        raise ValueError(
            f"{where} is the string {value!r}, an OpenRouter slug, which needs an API key: "
            f"set the api_key field or the {OPENROUTER_API_KEY_ENV} environment variable, "
            f"or pass {alternative} instead"
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
    alternative: str = CHAT_MODEL,
) -> tuple[Any, Any]:
    """The pool and judge with every slug replaced by its chat model (others kept as given).

    Every slug gets a `ChatOpenAICompatible` on the shared connection pool.
    """
    args = (api_key, base_url, require_key, alternative)
    if isinstance(pool, Mapping):
        pool = {k: slug_model(v, f"pool[{k!r}]", *args) for k, v in pool.items()}
    elif isinstance(pool, list):
        pool = [slug_model(v, f"pool[{i}]", *args) for i, v in enumerate(pool)]
    if isinstance(judge, list):
        return pool, [slug_model(v, f"judge[{i}]", *args) for i, v in enumerate(judge)]
    return pool, slug_model(judge, "judge", *args)


def api_key_field(**kwargs: Any) -> Any:
    """The `api_key` field: a `SecretStr`, default `OPENROUTER_API_KEY`, never in reprs."""
    return Field(
        default_factory=secret_from_env(OPENROUTER_API_KEY_ENV, default=None), repr=False, **kwargs
    )


class SlugFields(BaseModel):
    """Mixin of both adapters: OpenRouter slugs as pool members and judge.

    It brings the `api_key` and `base_url` fields, takes a plain-text key as a `SecretStr`
    before validation (so that no validation error shows it), and resolves the slugs. The
    adapter declares `pool` and `judge`; its field validators check the slugs' form
    (`_check_slugs`), its model validator their key (`_resolved`, once every field is known).
    """

    #: What a pool entry or judge may be besides a slug, for the adapter's errors.
    _slug_alternative: ClassVar[str] = CHAT_MODEL

    api_key: SecretStr | None = api_key_field()
    """OpenRouter API key for the slugs in `pool` and `judge`; default: the
    `OPENROUTER_API_KEY` environment variable. Never shown in reprs, reports or errors."""

    base_url: str | None = Field(
        default_factory=from_env(OPENROUTER_API_BASE_ENV, default=OPENROUTER_BASE_URL)
    )
    """Where slugs are sent: OpenRouter's API root, up to `/api/v1`; default: the
    `OPENROUTER_API_BASE` environment variable, else `https://openrouter.ai/api/v1`."""

    _slug_cache: tuple[Any, ...] | None = PrivateAttr(default=None)

    if TYPE_CHECKING:  # declared by the adapter, with its own documentation
        pool: Any
        judge: Any
    else:  # type checkers keep pydantic's typed constructor

        def __init__(self, **data: Any) -> None:
            # A plain-text key is wrapped before validation: errors show their input.
            if isinstance(data.get("api_key"), str):
                data["api_key"] = SecretStr(data["api_key"])
            super().__init__(**data)

    @classmethod
    def _check_slugs(cls, pool: Any = (), judge: Any = None) -> tuple[Any, Any]:
        """`pool` and `judge` with slugs resolved, keyless: their form is checked, not the key.

        Raises:
            ValueError: for a string that is not a slug, naming where it is.
        """
        return resolve_slugs(
            pool, judge, None, None, require_key=False, alternative=cls._slug_alternative
        )

    def _resolved(self) -> tuple[Any, Any]:
        """The pool and judge with OpenRouter slugs replaced by their chat models.

        Resolved once and kept, so that a fusion's slug members are the same objects from
        call to call (on one shared connection pool); resolved again if a field changed.

        Raises:
            ValueError: for a slug without an API key, naming it, the field and the fix.
        """
        if not has_slugs(self.pool, self.judge):
            return self.pool, self.judge
        cache = self._slug_cache
        if (
            cache is not None
            and cache[0] is self.pool
            and cache[1] is self.judge
            and cache[2] == (self.api_key, self.base_url)
        ):
            return cache[3], cache[4]
        pool, judge = resolve_slugs(
            self.pool,
            self.judge,
            self.api_key,
            self.base_url,
            alternative=self._slug_alternative,
        )
        self._slug_cache = (self.pool, self.judge, (self.api_key, self.base_url), pool, judge)
        return pool, judge
