"""The server's guards: API keys, the bind address, and the concurrency limit."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import SecretStr

from langchain_fusion.serve._wire import ApiError

LOOPBACK_NAMES = ("localhost",)


class ApiKeys:
    """The keys a client may send as `Authorization: Bearer KEY`; empty: no key needed."""

    def __init__(self, keys: Iterable[str | SecretStr] = ()) -> None:
        values = [k.get_secret_value() if isinstance(k, SecretStr) else k for k in keys]
        self._keys = [SecretStr(v.strip()) for v in values if v and v.strip()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._keys)} keys)"

    def check(self, authorization: str | None) -> None:
        """Accept the request's `Authorization` header, or raise a 401.

        Every key is compared in constant time, all of them every time, so timing tells
        nothing about which key or how much of it matched.

        Raises:
            ApiError: 401 for a missing or wrong key.
        """
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "missing API key: send it as 'Authorization: Bearer KEY'",
                type="authentication_error",
                code="missing_api_key",
                cause="auth",
            )
        given = token.strip().encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key.get_secret_value().encode())
        if not matched:
            raise ApiError(
                401,
                "invalid API key",
                type="authentication_error",
                code="invalid_api_key",
                cause="auth",
            )


def load_api_keys(
    given: Iterable[str], env: Mapping[str, str], env_name: str, file: str | None
) -> ApiKeys:
    """The server's keys: given, from `env_name` (comma-separated) and from `file`."""
    keys = list(given)
    keys += [k for k in env.get(env_name, "").split(",") if k.strip()]
    if file is not None:
        keys += read_key_file(file)
    return ApiKeys(keys)


def read_key_file(path: str) -> list[str]:
    """The keys in a file: one per line, blank lines and `#` comments skipped.

    Raises:
        ValueError: when the file cannot be read.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the API keys file {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: ApiKeys) -> None:
    """Refuse to serve beyond this machine without API keys.

    Raises:
        ValueError: for a non-loopback `host` without keys, with the fix.
    """
    if not keys and not is_loopback(host):
        raise ValueError(
            f"refusing to bind {host} without API keys: anyone who can reach it could spend "
            "your provider credit. Give --api-key KEY, FUSION_API_KEYS or --api-key-file, "
            "or bind 127.0.0.1"
        )


class Slots:
    """At most `limit` fusions at once on the server; beyond it a request gets 429 at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> None:
        """Take a slot (single-threaded: the event loop).

        Raises:
            ApiError: 429 with `Retry-After` when every slot is taken.
        """
        if self.in_use >= self.limit:
            raise ApiError(
                429,
                f"the server is running its limit of {self.limit} fusions; retry shortly",
                type="rate_limit_error",
                code="too_many_requests",
                headers={"Retry-After": "1"},
                cause="concurrency",
            )
        self.in_use += 1

    def release(self) -> None:
        """Give a slot back."""
        self.in_use -= 1
