"""HTTP for provider members: shared connection pools, bounded retries, the fusion's deadline.

- One connection pool per process for sync calls, and one per event loop for async calls
  (an async connection belongs to the loop that opened it), shared by every
  `ChatOpenAICompatible` that was not given its own clients.
- The pools are httpx2's (pydantic's maintained fork of httpx): a cancelled call leaves no
  connection or request behind in httpcore2's pool, where httpcore 1.0.9 under httpx
  strands them for good (encode/httpcore#1093), and it costs less client CPU per fusion
  under load (`benchmarks/stranding.py` and `benchmarks/throughput.py` measure both). An
  httpx client given by the caller still works: its errors are mapped to the same
  `ProviderError`s.
- Retries are bounded: at most `max_retries`, on connection failures and on 408, 409, 429
  and 5xx; a `Retry-After` (or `retry-after-ms`) is honoured only when it is no longer than
  `max_retry_delay` and the retry would start before the fusion's deadline, otherwise the
  error is raised at once. A 429's `Retry-After` is also told to the rate limiter of the
  call's model (`ON_RATE_LIMITED`), which pauses the model for every fusion in the process.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import math
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx
import httpx2

from langchain_fusion._exceptions import ProviderError, ProviderTimeoutError

#: Connection limits of the shared pools (the openai SDK's defaults).
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)

#: A client for sync calls: httpx2's (the shared pools), or an httpx one given by the caller.
SyncClient: TypeAlias = httpx2.Client | httpx.Client
#: A client for async calls: httpx2's (the shared pools), or an httpx one given by the caller.
AsyncClient: TypeAlias = httpx2.AsyncClient | httpx.AsyncClient
#: A request built by one of those clients (and sent by the same client).
Request: TypeAlias = httpx2.Request | httpx.Request
#: A response of one of those clients.
Response: TypeAlias = httpx2.Response | httpx.Response

#: The error of a request that got no response (network failure, timeout, broken stream).
TransportError: TypeAlias = httpx2.TransportError | httpx.TransportError
#: The classes of `TransportError`, to catch.
TRANSPORT_ERRORS: tuple[type[httpx2.TransportError], type[httpx.TransportError]] = (
    httpx2.TransportError,
    httpx.TransportError,
)
#: The timeouts among them (connect, read, write, pool).
TIMEOUT_ERRORS = (httpx2.TimeoutException, httpx.TimeoutException)

#: Statuses worth a retry: request timeout, conflict, rate limit, server errors.
_RETRY_STATUSES = frozenset({408, 409, 429})
_BACKOFF_BASE_S = 0.5


#: `time.monotonic()` instant of the running fusion's deadline, or None. Set by the fusion
#: around a call; asyncio tasks and the sync driver's threads inherit it.
FUSION_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "llm_fusion_deadline", default=None
)


#: Told the `Retry-After` seconds of each 429 the client is about to retry, so that the
#: fusion's rate limiter for the call's model pauses it for every caller at once, not only
#: when the call finally fails. Set by the runtime around a limited model's call.
ON_RATE_LIMITED: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar(
    "llm_fusion_on_rate_limited", default=None
)


def _told_rate_limited(response: Response) -> None:
    """Tell the rate limiter of a 429 with a `Retry-After`, if one listens."""
    listener = ON_RATE_LIMITED.get()
    if listener is None or response.status_code != 429:
        return
    seconds = parse_retry_after(response.headers)
    if seconds is not None and seconds > 0:
        listener(seconds)


@contextmanager
def deadline_scope(at: float | None) -> Iterator[None]:
    """Make `at` (monotonic seconds) the deadline that retries must fit in, for a block."""
    token = FUSION_DEADLINE.set(at)
    try:
        yield
    finally:
        FUSION_DEADLINE.reset(token)


# -- retries ----------------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = float(value) / 1000
            if math.isfinite(seconds):
                return max(0.0, seconds)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a member may retry a call.

    Attributes:
        max_retries: Retries after the first attempt.
        max_delay: Longest wait before one retry, in seconds.
    """

    max_retries: int
    max_delay: float

    def delay(self, attempt: int, headers: Mapping[str, str] | None) -> tuple[float | None, str]:
        """The wait before retry number `attempt + 1`, or None and why not to retry.

        Args:
            attempt: Retries made so far.
            headers: The failed response's headers (None for a connection failure).
        """
        if attempt >= self.max_retries:
            return None, f"gave up after {attempt} retries" if attempt else "no retries allowed"
        asked = parse_retry_after(headers)
        if asked is not None and asked > self.max_delay:
            return None, f"Retry-After {asked:g}s exceeds max_retry_delay {self.max_delay:g}s"
        if asked is None:
            asked = min(_BACKOFF_BASE_S * 2**attempt * (1 - 0.25 * random.random()), self.max_delay)
        deadline = FUSION_DEADLINE.get()
        if deadline is not None and time.monotonic() + asked >= deadline:
            return None, f"a retry in {asked:g}s would start after the fusion's deadline"
        return asked, ""


def should_retry(response: Response) -> bool:
    """Whether a failed response's status is worth a retry (the server may say otherwise)."""
    told = str(response.headers.get("x-should-retry", ""))
    if told in ("true", "false"):
        return told == "true"
    status: int = response.status_code
    return status in _RETRY_STATUSES or status >= 500


def error_text(body: Any) -> str:
    """The message of an OpenAI/OpenRouter error body (or of any text), on one line."""
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict):
        inner = inner.get("message") or ""
    text = " ".join(str(inner).split()) if inner else ""
    return text[:300] or "no error message"


def error_code(body: Any) -> int | None:
    """The numeric `code` of an OpenAI/OpenRouter error object, if it has one."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def status_error(response: Response, attempt: int, why: str) -> ProviderError:
    """The `ProviderError` of a failed response whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    note = f" ({why})" if why else ""
    return ProviderError(
        f"HTTP {response.status_code} from {response.request.url.host}: {error_text(body)}{note}",
        status_code=response.status_code,
        retry_after=parse_retry_after(response.headers),
        retries=attempt,
    )


def transport_error(exc: TransportError, attempt: int, why: str) -> ProviderError:
    """The `ProviderError` of a request that got no response."""
    kind = ProviderTimeoutError if isinstance(exc, TIMEOUT_ERRORS) else ProviderError
    host = exc.request.url.host if _has_request(exc) else "the provider"
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    note = f" ({why})" if why else ""
    return kind(f"{type(exc).__name__} calling {host}: {detail}{note}", retries=attempt)


def _has_request(exc: TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def _send_once(client: SyncClient, request: Request, stream: bool) -> Response:
    if isinstance(client, httpx2.Client) and isinstance(request, httpx2.Request):
        return client.send(request, stream=stream)
    if isinstance(client, httpx.Client) and isinstance(request, httpx.Request):
        return client.send(request, stream=stream)
    raise TypeError("a request must be sent by the client (httpx2 or httpx) that built it")


async def _asend_once(client: AsyncClient, request: Request, stream: bool) -> Response:
    if isinstance(client, httpx2.AsyncClient) and isinstance(request, httpx2.Request):
        return await client.send(request, stream=stream)
    if isinstance(client, httpx.AsyncClient) and isinstance(request, httpx.Request):
        return await client.send(request, stream=stream)
    raise TypeError("a request must be sent by the client (httpx2 or httpx) that built it")


def send(client: SyncClient, request: Request, policy: RetryPolicy, *, stream: bool) -> Response:
    """Send `request` with bounded retries; returns a successful response (open if `stream`).

    Raises:
        ProviderError: for an error status or a network failure after the retries allowed.
    """
    attempt = 0
    while True:
        try:
            response = _send_once(client, request, stream)
        except TRANSPORT_ERRORS as exc:
            wait, why = policy.delay(attempt, None)
            if wait is None:
                raise transport_error(exc, attempt, why) from exc
        else:
            if response.status_code < 400:
                return response
            response.read()
            response.close()
            _told_rate_limited(response)
            wait, why = (
                policy.delay(attempt, response.headers) if should_retry(response) else (None, "")
            )
            if wait is None:
                raise status_error(response, attempt, why)
        time.sleep(wait)
        attempt += 1


async def asend(
    client: AsyncClient, request: Request, policy: RetryPolicy, *, stream: bool
) -> Response:
    """`send` for an async client: the waits are cancellable, as the fusion's deadline needs.

    Raises:
        ProviderError: for an error status or a network failure after the retries allowed.
    """
    attempt = 0
    while True:
        try:
            response = await _asend_once(client, request, stream)
        except TRANSPORT_ERRORS as exc:
            wait, why = policy.delay(attempt, None)
            if wait is None:
                raise transport_error(exc, attempt, why) from exc
        else:
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            _told_rate_limited(response)
            wait, why = (
                policy.delay(attempt, response.headers) if should_retry(response) else (None, "")
            )
            if wait is None:
                raise status_error(response, attempt, why)
        await asyncio.sleep(wait)
        attempt += 1


#: Closes still running after their caller was cancelled (a task needs a reference).
_CLOSING: set[asyncio.Task[None]] = set()


async def aclose_response(response: Response) -> None:
    """Close `response`, and finish releasing it to its pool even if the caller is cancelled.

    A response that was not read to its end closes its connection, and the socket's close
    yields to the event loop once; a cancellation landing there would leave the request
    registered in the pool for good (encode/httpcore#1115, in httpcore2 too; with a closed
    connection, so no slot is lost). The close runs in a task of its own, shielded: the
    caller's cancellation still propagates at once.
    """
    closing = asyncio.ensure_future(response.aclose())
    _CLOSING.add(closing)
    closing.add_done_callback(_closed)
    await asyncio.shield(closing)


def _closed(task: asyncio.Task[None]) -> None:
    _CLOSING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed close of an abandoned stream is no news


# -- shared connection pools -----------------------------------------------------------------


class SharedClients:
    """One httpx2 connection pool for sync calls, and one per event loop for async calls.

    An async connection belongs to the event loop that opened it, so each loop gets its own
    `httpx2.AsyncClient`; it is dropped with its loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: httpx2.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def sync_client(self) -> httpx2.Client:
        """The process's shared sync client."""
        client = self._sync
        if client is None:
            with self._lock:
                if self._sync is None:
                    self._sync = httpx2.Client(limits=LIMITS)
                client = self._sync
        return client

    def async_client(self) -> httpx2.AsyncClient:
        """The running event loop's shared async client."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = httpx2.AsyncClient(limits=LIMITS)
        return client


#: The pools every `ChatOpenAICompatible` without its own httpx clients uses.
SHARED_CLIENTS = SharedClients()
