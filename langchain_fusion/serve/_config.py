"""The fusions config file: virtual models, their settings, and the server's limits.

```yaml
server:
  reports_kept: 100
  max_body_bytes: 8388608
fusions:
  fusion/merge:
    mode: merge
    pool: [anthropic/claude-3.7-sonnet, {model: llama3.1, base_url: "http://localhost:11434/v1"}]
    judge: openai/gpt-4o
    quorum: 2
    max_cost_usd: 0.05          # a ceiling: a request cannot raise it
    overridable: [mode, debate_rounds]
```

`load_fusions(path)` turns such a file into `{name: FusionChatModel}` for any command (the
server, `fusion batch`); `load_config(path)` keeps the server section too. Every error names
the fusion and the field, and is raised before any model is called.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from langchain_fusion._core.config import SETTING_NAMES
from langchain_fusion._exceptions import FusionInputError
from langchain_fusion.chat_models import FusionChatModel
from langchain_fusion.providers import ChatOpenAICompatible
from langchain_fusion.serve._wire import field_path

#: Settings a request may never override, whatever `overridable` says: they guard the server.
NEVER_OVERRIDABLE = frozenset({"max_cost_usd", "max_concurrency", "deadline", "prices"})
#: Settings a request's `fusion` field may set, when the config lists them in `overridable`.
REQUEST_SETTINGS = frozenset(SETTING_NAMES) - NEVER_OVERRIDABLE - {"agreement"}
#: Fields a config file cannot hold, with the fix.
NOT_IN_FILES = {
    "agreement": "takes a Python function; build the FusionChatModel in Python to set it",
    "api_key": "keys do not go in config files: name the environment variable in api_key_env",
}


class ConfigError(FusionInputError):
    """A fusions config file that cannot be used; the message names the fusion and field."""


class Endpoint(BaseModel):
    """A pool member or judge on an OpenAI-compatible endpoint (vLLM, Ollama, ...)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    """The model name the endpoint expects."""
    base_url: str
    """The API root, e.g. `http://localhost:11434/v1`."""
    api_key_env: str | None = None
    """The environment variable holding the endpoint's key; None sends no key."""
    temperature: float | None = None
    """Sampling temperature."""
    timeout: float | None = Field(default=120.0, gt=0)
    """Seconds allowed between bytes received."""
    max_retries: int = Field(default=2, ge=0)
    """Retries after a failed attempt."""

    def chat_model(self, env: dict[str, str]) -> ChatOpenAICompatible:
        """The chat model, its key read from the environment now."""
        key = None
        if self.api_key_env is not None:
            value = env.get(self.api_key_env)
            if not value:
                raise ValueError(
                    f"api_key_env names {self.api_key_env!r}, which is not set: export it, "
                    "or remove api_key_env for an endpoint that takes no key"
                )
            key = SecretStr(value)
        return ChatOpenAICompatible(
            model=self.model,
            base_url=self.base_url,
            api_key=key,
            temperature=self.temperature,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )


Entry = str | Endpoint


class FusionEntry(BaseModel):
    """One virtual model: a pool, a judge, `FusionChatModel` settings and request limits."""

    model_config = ConfigDict(extra="allow")

    pool: list[Entry] | dict[str, Entry]
    """Slugs (`vendor/model`, sent to `base_url` with the key from `api_key_env`) or
    endpoints, as a list or `{name: entry}`."""
    judge: Entry | list[Entry]
    """The judge (or a panel): a slug or an endpoint."""
    base_url: str | None = None
    """Where slugs go; default `OPENROUTER_API_BASE`, else OpenRouter."""
    api_key_env: str = "OPENROUTER_API_KEY"
    """The environment variable holding the slugs' key."""
    description: str | None = None
    """Shown in `GET /v1/models`."""
    overridable: list[str] = Field(default_factory=list)
    """Settings a request may set in its `fusion` field (e.g. `[mode, debate_rounds]`)."""

    @field_validator("overridable")
    @classmethod
    def _check_overridable(cls, value: list[str]) -> list[str]:
        for name in value:
            if name in NEVER_OVERRIDABLE:
                raise ValueError(
                    f"{name!r} cannot be overridable: it is a limit the config sets for every "
                    "request; remove it from overridable"
                )
            if name not in SETTING_NAMES or name == "agreement":
                raise ValueError(
                    f"{name!r} is not a setting a request can override: overridable takes "
                    f"names among {', '.join(sorted(REQUEST_SETTINGS))}"
                )
        return value

    def settings(self) -> dict[str, Any]:
        """The `FusionChatModel` settings given (the entries beyond the known fields)."""
        return dict(self.model_extra or {})


class ServerSettings(BaseModel):
    """The server's own limits (the `server:` section; every field optional)."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body (base64 images need room): larger is refused with 413."""
    max_messages: int = Field(default=256, ge=1)
    """Most messages in one request."""
    max_concurrent_requests: int = Field(default=256, ge=1)
    """Most fusions running at once on the server; more get 429 with `Retry-After`."""
    max_member_concurrency: int | None = Field(default=None, ge=1)
    """Most member calls in flight for one request (a ceiling on `max_concurrency`)."""
    request_timeout: float = Field(default=600.0, gt=0)
    """Seconds one request may take before it is cancelled with 504."""
    reports_kept: int = Field(default=100, ge=0)
    """How many recent fusion reports `GET /fusions` keeps in memory."""
    shutdown_grace: float = Field(default=30.0, ge=0)
    """Seconds in-flight fusions get to finish on shutdown."""
    api_keys_env: str = "FUSION_API_KEYS"
    """The environment variable with the server's API keys (comma-separated)."""
    api_keys_file: str | None = None
    """A file with one server API key per line."""


class ServeConfig(BaseModel):
    """A whole config file: the server section and the fusions."""

    model_config = ConfigDict(extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    """The server's limits."""
    fusions: dict[str, FusionEntry]
    """Virtual model name to its fusion."""


def _read(path: str | Path) -> Any:
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        return json.loads(text)
    import yaml  # type: ignore[import-untyped]

    return yaml.safe_load(text)


def _config_error(error: ValidationError, source: str) -> ConfigError:
    lines = []
    for e in error.errors(include_input=False, include_url=False):
        loc = tuple(e["loc"])
        if len(loc) >= 2 and loc[0] == "fusions":
            where = f"fusion {loc[1]!r}, field {field_path(loc[2:]) or '(entry)'}"
        else:
            where = f"field {field_path(loc)}"
        line = f"  {where}: {e['msg']}"
        if line not in lines:
            lines.append(line)
    return ConfigError(f"bad fusions config {source}:\n" + "\n".join(lines))


def parse_config(data: Any, source: str = "(inline)") -> ServeConfig:
    """Validate a config document (the parsed YAML/JSON).

    Raises:
        ConfigError: naming the fusion and the field.
    """
    if not isinstance(data, dict) or "fusions" not in data:
        raise ConfigError(
            f"bad fusions config {source}: expected a mapping with a 'fusions' key, e.g. "
            "fusions: {fusion/merge: {mode: merge, pool: [...], judge: ...}}"
        )
    try:
        config = ServeConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, source) from None
    if not config.fusions:
        raise ConfigError(f"bad fusions config {source}: 'fusions' is empty; define one")
    for name, entry in config.fusions.items():
        refused = sorted(k for k in entry.settings() if k in NOT_IN_FILES)
        if refused:
            raise ConfigError(
                f"bad fusions config {source}: fusion {name!r}, field {refused[0]}: "
                f"{NOT_IN_FILES[refused[0]]}"
            )
    return config


def load_config(path: str | Path) -> ServeConfig:
    """Read and validate a config file (`.json`, else YAML)."""
    try:
        data = _read(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the fusions config {path}: {exc}") from None
    return parse_config(data, str(path))


def _member(entry: Entry, env: dict[str, str]) -> Any:
    return entry.chat_model(env) if isinstance(entry, Endpoint) else entry


def build_fusion(name: str, entry: FusionEntry, env: dict[str, str]) -> FusionChatModel:
    """The `FusionChatModel` of one config entry.

    Raises:
        ConfigError: naming the fusion and the field.
    """
    key_value = env.get(entry.api_key_env)
    key = SecretStr(key_value) if key_value else None
    try:
        pool: Any
        if isinstance(entry.pool, dict):
            pool = {n: _member(e, env) for n, e in entry.pool.items()}
        else:
            pool = [_member(e, env) for e in entry.pool]
        judges = entry.judge if isinstance(entry.judge, list) else [entry.judge]
        judge = [_member(j, env) for j in judges]
        base_url = entry.base_url or env.get("OPENROUTER_API_BASE") or None
        return FusionChatModel(
            pool=pool,
            judge=judge if len(judge) > 1 else judge[0],
            api_key=key,
            **({"base_url": base_url} if base_url else {}),
            **entry.settings(),
        )
    except ValidationError as exc:
        lines = [
            f"  fusion {name!r}, field {field_path(tuple(e['loc'])) or '(entry)'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError("bad fusions config:\n" + "\n".join(lines)) from None
    except ValueError as exc:
        raise ConfigError(f"bad fusions config: fusion {name!r}: {exc}") from None


def build_fusions(
    config: ServeConfig, env: dict[str, str] | None = None
) -> dict[str, FusionChatModel]:
    """Every fusion of a validated config, by virtual model name."""
    env = dict(os.environ) if env is None else env
    return {name: build_fusion(name, entry, env) for name, entry in config.fusions.items()}


def load_fusions(
    path: str | Path | None, env: dict[str, str] | None = None
) -> dict[str, FusionChatModel]:
    """The fusions of a config file, by virtual model name.

    Args:
        path: A YAML or JSON file with a `fusions` key. None: `demo_config` must be used
            instead (it needs a running simulator); this raises.
        env: Where keys are read (default: `os.environ`).

    Raises:
        ConfigError: a bad file, naming the fusion and the field.
    """
    if path is None:
        raise ConfigError("no fusions config given: pass a YAML or JSON file with 'fusions'")
    return build_fusions(load_config(path), env)


def demo_config(base_url: str, pool: list[str], judge: str, modes: list[str]) -> ServeConfig:
    """One fusion per mode (`fusion/<mode>`) over the bundled simulator at `base_url`."""
    fusions = {
        f"fusion/{mode.replace('_', '-')}": {
            "pool": pool,
            "judge": judge,
            "mode": mode,
            "base_url": base_url,
            "api_key_env": "FUSION_SIMULATOR_KEY",
            "description": f"{mode} over the bundled simulator (simulated models)",
            "overridable": ["mode", "debate_rounds", "quorum", "grace", "criteria", "seed"],
        }
        for mode in modes
    }
    return parse_config({"fusions": fusions}, "(demo)")
