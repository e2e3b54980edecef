"""Chat models for OpenAI-compatible endpoints: OpenRouter slugs, vLLM, Ollama, La Plateforme.

`ChatOpenAICompatible` is a small LangChain chat model over httpx2 that speaks the OpenAI
chat-completions protocol. It is what an OpenRouter slug in a fusion's pool becomes, and
works the same for any OpenAI-compatible server given its `base_url`:

```python
from langchain_fusion import FusionChatModel
from langchain_fusion.providers import ChatOpenAICompatible

local = ChatOpenAICompatible(model="llama3.1", base_url="http://localhost:11434/v1")
fusion = FusionChatModel(
    pool=["anthropic/claude-3.7-sonnet", "google/gemini-2.0-flash-001", local],
    judge="openai/gpt-4o",  # slugs go to OpenRouter, with OPENROUTER_API_KEY
)
```

What it does that a fusion member needs:
- keeps OpenRouter's `usage.cost` (and `cost_details`) in `response_metadata["token_usage"]`,
  streaming and not, so the fusion report's cost is the provider's own;
- turns an error reported inside a response (OpenRouter's mid-stream error chunk with
  `finish_reason: "error"`, an error body) into a `ProviderError`, never a short answer;
- retries at most `max_retries` times, honouring `Retry-After` only when it is no longer
  than `max_retry_delay` and the retry starts before the fusion's deadline;
- shares one connection pool per process (per event loop for async calls) with every other
  `ChatOpenAICompatible`, unless given its own clients (httpx2's, or httpx's);
- asks for usage when streaming (`stream_usage`), whatever the `base_url`;
- costs little client CPU per call (`benchmarks/client_cpu.py` measures it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from langchain_fusion._exceptions import ProviderError, ProviderTimeoutError
from langchain_fusion._http import (
    SHARED_CLIENTS,
    TRANSPORT_ERRORS,
    AsyncClient,
    Request,
    RetryPolicy,
    SyncClient,
    aclose_response,
    asend,
    send,
    transport_error,
)
from langchain_fusion._openai_format import (
    StreamReader,
    chat_result,
    json_body,
    openai_tool,
    request_messages,
    sse_data,
)
from langchain_fusion._openrouter import (
    OPENROUTER_API_BASE_ENV,
    OPENROUTER_API_KEY_ENV,
    OPENROUTER_BASE_URL,
    is_slug,
    openrouter_base_url,
)


class ChatOpenAICompatible(BaseChatModel):
    """A chat model for any OpenAI-compatible chat-completions endpoint, over httpx2.

    OpenRouter slugs in a fusion's pool and judge become this model (with the fusion's
    `api_key` and `base_url`); point `base_url` at vLLM, Ollama, La Plateforme or any other
    compatible server.

    Setup:
        ```bash
        pip install llm-fusion
        export OPENROUTER_API_KEY=...   # for OpenRouter
        ```

    Instantiate:
        ```python
        from langchain_fusion.providers import ChatOpenAICompatible

        model = ChatOpenAICompatible(
            model="anthropic/claude-3.7-sonnet",
            base_url="https://openrouter.ai/api/v1",
            api_key="sk-or-...",
        )
        local = ChatOpenAICompatible(model="llama3.1", base_url="http://localhost:11434/v1")
        ```

    Invoke:
        ```python
        msg = model.invoke("What is 17*23?")
        msg.usage_metadata                            # tokens
        msg.response_metadata["token_usage"]["cost"]  # OpenRouter's cost in USD
        ```

    Tool calling and structured output:
        ```python
        model.bind_tools([get_weather]).invoke("Weather in Paris?").tool_calls
        model.with_structured_output(Person).invoke("Ada Lovelace, 36")
        ```

    Errors are `ProviderError`s (`ProviderTimeoutError` for timeouts), whose messages carry
    the status and the provider's error text, never the API key.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model: str
    """The model identifier the endpoint expects, e.g. `"anthropic/claude-3.7-sonnet"`."""

    base_url: str
    """The API root, up to and including the version: `https://openrouter.ai/api/v1`,
    `http://localhost:11434/v1` (Ollama), `http://localhost:8000/v1` (vLLM)... Requests go to
    `{base_url}/chat/completions`."""

    api_key: SecretStr | None = None
    """The API key, sent as `Authorization: Bearer ...`; `None` sends no key (local servers).
    Never shown in reprs, errors or traces."""

    temperature: float | None = None
    """Sampling temperature; `None` leaves the endpoint's default."""

    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens to generate; `None` leaves the endpoint's default."""

    stop: list[str] | None = None
    """Default stop sequences (a call's own `stop` replaces them)."""

    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further request-body parameters sent with every call, e.g. OpenRouter's
    `{"provider": {"order": [...]}}` or `{"reasoning": {"effort": "low"}}`."""

    default_headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra HTTP headers sent with every call (e.g. OpenRouter's `HTTP-Referer`,
    `X-Title`). Not shown in reprs."""

    timeout: float | None = Field(default=120.0, gt=0)
    """Seconds allowed for connecting and between bytes received (httpx2 timeouts); `None`
    waits forever. A fusion's `member_timeout` and `deadline` bound a whole call."""

    max_retries: int = Field(default=2, ge=0)
    """Retries after a failed attempt (connection errors, 408, 409, 429, 5xx); 0 disables
    them. A stream is never retried once it started."""

    max_retry_delay: float = Field(default=10.0, ge=0)
    """Longest wait before a retry, in seconds. A `Retry-After` longer than this, or that
    would end after the running fusion's `deadline`, is not waited for: the error is raised
    at once, so the fusion can go on without this member."""

    streaming: bool = False
    """Use the streaming API for `invoke` too (the reply is assembled from its chunks), e.g.
    to see the first token early or keep a slow connection alive."""

    stream_usage: bool = True
    """Ask for the usage (and OpenRouter's cost) at the end of a stream
    (`stream_options.include_usage`); turn off for servers that reject it."""

    http_client: SyncClient | None = Field(default=None, exclude=True, repr=False)
    """The client for sync calls, an `httpx2.Client` (or an `httpx.Client`); `None` shares
    the process's connection pool."""

    http_async_client: AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """The client for async calls, an `httpx2.AsyncClient` (or an `httpx.AsyncClient`, whose
    pool can lose connections to cancelled calls: encode/httpcore#1093); `None` shares one
    connection pool per event loop."""

    if not TYPE_CHECKING:  # type checkers keep pydantic's typed constructor

        def __init__(self, **data: Any) -> None:
            # A plain-text key is wrapped before validation: errors show their input.
            if isinstance(data.get("api_key"), str):
                data["api_key"] = SecretStr(data["api_key"])
            super().__init__(**data)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url {value!r} is not an http(s) URL: give the API root, e.g. "
                f"{OPENROUTER_BASE_URL!r} or 'http://localhost:11434/v1'"
            )
        return value.rstrip("/")

    # -- identity ---------------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "model_kwargs": self.model_kwargs,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        host = urlsplit(self.base_url).hostname or ""
        params = LangSmithParams(
            ls_provider="openrouter" if host.endswith("openrouter.ai") else "openai-compatible",
            ls_model_name=kwargs.get("model") or self.model,
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- tools ------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any form LangChain accepts) in the OpenAI format.

        Args:
            tools: Functions, pydantic models, `BaseTool`s or OpenAI tool dicts.
            tool_choice: `"auto"`, `"none"`, `"any"`/`"required"` (a tool call is
                required), a tool name, `True` (the single tool), or an OpenAI dict.
            strict: Ask the endpoint for schema-exact arguments (where supported).
            **kwargs: Further request parameters bound with the tools.
        """
        formatted = [openai_tool(tool, strict) for tool in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        return self.bind(tools=formatted, **kwargs)

    # -- requests ---------------------------------------------------------------------------

    def _payload(
        self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, **kwargs: Any
    ) -> dict[str, Any]:
        kwargs.pop("stream", None)
        stream_usage = kwargs.pop("stream_usage", self.stream_usage)
        payload: dict[str, Any] = {"model": self.model, "messages": request_messages(messages)}
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        if stop or self.stop:
            payload["stop"] = stop or self.stop
        payload.update(self.model_kwargs)
        payload.update(kwargs)
        if stream:
            payload["stream"] = True
            if stream_usage:
                payload["stream_options"] = {"include_usage": True}
        return payload

    def _request(self, client: SyncClient | AsyncClient, payload: Any) -> Request:
        headers = dict(self.default_headers)
        if self.api_key is not None:
            headers["Authorization"] = "Bearer " + self.api_key.get_secret_value()
        return client.build_request(
            "POST",
            self.base_url + "/chat/completions",
            json=payload,
            headers=headers,
            timeout=self.timeout,  # connect, read, write and pool alike
        )

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.max_retry_delay)

    def _sync_client(self) -> SyncClient:
        return self.http_client or SHARED_CLIENTS.sync_client()

    def _async_client(self) -> AsyncClient:
        return self.http_async_client or SHARED_CLIENTS.async_client()

    # -- calls ------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = self._sync_client()
        request = self._request(client, self._payload(messages, stop, False, **kwargs))
        response = send(client, request, self._policy(), stream=False)
        return chat_result(json_body(response))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = self._async_client()
        request = self._request(client, self._payload(messages, stop, False, **kwargs))
        response = await asend(client, request, self._policy(), stream=False)
        return chat_result(json_body(response))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        client = self._sync_client()
        request = self._request(client, self._payload(messages, stop, True, **kwargs))
        response = send(client, request, self._policy(), stream=True)
        reader = StreamReader()
        try:
            for line in response.iter_lines():
                data = sse_data(line)
                if data is None:
                    continue
                message = reader.feed(data)
                if reader.done:
                    break
                if message is not None:
                    chunk = ChatGenerationChunk(message=message)
                    if run_manager is not None:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, 0, _broken(reader)) from exc
        finally:
            response.close()
        last = ChatGenerationChunk(message=reader.final())
        if run_manager is not None:
            run_manager.on_llm_new_token("", chunk=last)
        yield last

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        client = self._async_client()
        request = self._request(client, self._payload(messages, stop, True, **kwargs))
        response = await asend(client, request, self._policy(), stream=True)
        reader = StreamReader()
        try:
            async for line in response.aiter_lines():
                data = sse_data(line)
                if data is None:
                    continue
                message = reader.feed(data)
                if reader.done:
                    break
                if message is not None:
                    chunk = ChatGenerationChunk(message=message)
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, 0, _broken(reader)) from exc
        finally:
            await aclose_response(response)  # released to the pool even if cancelled
        last = ChatGenerationChunk(message=reader.final())
        if run_manager is not None:
            await run_manager.on_llm_new_token("", chunk=last)
        yield last


def _broken(reader: StreamReader) -> str:
    return f"the stream broke after {reader.events} events" if reader.events else ""


def _tool_choice(choice: str | bool | dict[str, Any], tools: list[dict[str, Any]]) -> Any:
    names = [tool["function"]["name"] for tool in tools if "function" in tool]
    if choice is True:
        if len(names) != 1:
            raise ValueError("tool_choice=True needs exactly one tool: name the tool, or 'any'")
        choice = names[0]
    if isinstance(choice, dict):
        return choice
    if choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, str):
        if names and choice not in names:
            raise ValueError(f"tool_choice {choice!r} is not a bound tool: use one of {names}")
        return {"type": "function", "function": {"name": choice}}
    raise ValueError(f"unsupported tool_choice {choice!r}")


__all__ = [
    "OPENROUTER_API_BASE_ENV",
    "OPENROUTER_API_KEY_ENV",
    "OPENROUTER_BASE_URL",
    "ChatOpenAICompatible",
    "ProviderError",
    "ProviderTimeoutError",
    "is_slug",
    "openrouter_base_url",
]
