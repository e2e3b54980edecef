"""The ASGI app: the configured fusions as virtual models behind OpenAI's API.

Routes: `GET /v1/models`, `POST /v1/chat/completions` (plain and SSE), `GET /fusions` (the
last reports kept), `GET /fusions/{id}` (a report as a page; `?format=json` for the JSON),
`GET /metrics` (Prometheus), `GET /health`. Every route but `/health` takes the server's API
keys when it has some.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from langchain_fusion._core.outcome import describe_error
from langchain_fusion._exceptions import FusionInputError, FusionRunError
from langchain_fusion._report_html import report_html
from langchain_fusion.chat_models import FusionChatModel
from langchain_fusion.cli._provider import scenario_roles
from langchain_fusion.serve._completions import (
    ClientGone,
    Plan,
    SSEResponse,
    call_arguments,
    first_and_rest,
    input_error,
    run_error,
    until_disconnect,
)
from langchain_fusion.serve._config import ServeConfig, build_fusions, demo_config, load_config
from langchain_fusion.serve._metrics import CONTENT_TYPE, Metrics
from langchain_fusion.serve._security import ApiKeys, Slots, load_api_keys
from langchain_fusion.serve._wire import (
    ApiError,
    ChatRequest,
    ChunkWriter,
    completion_body,
    internal_error,
    output_schema,
    parse_request,
    to_messages,
)
from langchain_fusion.sim import arun_simulator, default_scenario

access_log = logging.getLogger("langchain_fusion.serve.access")
log = logging.getLogger("langchain_fusion.serve")

#: The key the demo fusions send to the bundled simulator (which checks none).
SIMULATOR_KEY = "sk-local-simulator"
DEMO_MODES = ["best_of", "merge", "debate", "vote"]


@dataclass
class Kept:
    """One fusion kept for `GET /fusions`."""

    id: str
    model: str
    created: float
    status: int
    report: dict[str, Any]
    answer: str | None

    def summary(self) -> dict[str, Any]:
        """Its entry in the list."""
        return {
            "id": self.id,
            "model": self.model,
            "created": int(self.created),
            "status": self.status,
            "mode": self.report.get("mode"),
            "cost_usd": self.report.get("cost_usd"),
            "total_s": (self.report.get("timings") or {}).get("total_s"),
            "url": f"/fusions/{self.id}",
        }


class Reports:
    """The last `size` fusion reports, by id."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[str, Kept] = OrderedDict()

    def add(self, kept: Kept) -> None:
        """Keep one, dropping the oldest beyond `size`."""
        if self.size == 0:
            return
        self._kept[kept.id] = kept
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def get(self, fusion_id: str) -> Kept | None:
        """The one kept under `fusion_id`."""
        return self._kept.get(fusion_id)

    def newest_first(self) -> list[Kept]:
        """All kept, newest first."""
        return list(reversed(self._kept.values()))


def error_response(error: ApiError, report: dict[str, Any] | None = None) -> JSONResponse:
    """An error in OpenAI's shape (the fusion's report in `fusion` when there is one)."""
    body = error.body()
    if report is not None:
        body["fusion"] = report
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def read_body(request: Request, limit: int) -> Any:
    """The JSON body, read up to `limit` bytes.

    Raises:
        ApiError: 413 past the limit, 400 for a body that is not JSON.
    """
    too_large = ApiError(
        413,
        f"the request body is larger than this server's limit of {limit} bytes "
        "(server.max_body_bytes)",
        code="body_too_large",
        cause="body_too_large",
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None


class FusionServer:
    """The app's state and handlers."""

    def __init__(
        self,
        config: ServeConfig,
        fusions: Mapping[str, FusionChatModel],
        keys: ApiKeys,
    ) -> None:
        self.config = config
        self.limits = config.server
        self.fusions = dict(fusions)
        self.keys = keys
        self.slots = Slots(self.limits.max_concurrent_requests)
        self.reports = Reports(self.limits.reports_kept)
        self.metrics = Metrics()

    # -- plumbing -----------------------------------------------------------------------------

    def _finished(
        self,
        request: Request,
        model: str,
        started: float,
        status: int,
        report: dict[str, Any] | None,
        cause: str | None,
    ) -> None:
        elapsed = time.monotonic() - started
        self.metrics.observe(model, status, elapsed, cause, report)
        usage = (report or {}).get("usage") or {}
        cost = (report or {}).get("cost_usd")
        access_log.info(
            '%s "%s %s" %d model=%s latency_ms=%.1f tokens=%d cost=%s fusion=%s',
            request.client.host if request.client else "-",
            request.method,
            request.url.path,
            status,
            model or "-",
            elapsed * 1000,
            usage.get("total_tokens", 0),
            "-" if cost is None else f"{cost:.6f}",
            (report or {}).get("id", "-"),
        )

    def _keep(self, fusion_id: str, model: str, status: int, report: Any, answer: Any) -> None:
        if isinstance(report, dict):
            report["id"] = fusion_id
            self.reports.add(Kept(fusion_id, model, time.time(), status, report, answer))

    # -- routes -------------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        self.keys.check(request.headers.get("authorization"))
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "llm-fusion",
                "description": self.config.fusions[name].description
                if name in self.config.fusions
                else None,
            }
            for name in self.fusions
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response | SSEResponse:
        started = time.monotonic()
        model, status = "", 500
        report: dict[str, Any] | None = None
        cause: str | None = "internal"
        acquired = False
        streaming = False
        try:
            self.keys.check(request.headers.get("authorization"))
            body = await read_body(request, self.limits.max_body_bytes)
            chat = parse_request(body, self.limits.max_messages)
            model = chat.model
            fusion = self.fusions.get(model)
            if fusion is None:
                raise ApiError(
                    404,
                    f"the model {model!r} does not exist on this server; GET /v1/models "
                    f"lists {', '.join(self.fusions)}",
                    param="model",
                    code="model_not_found",
                    cause="unknown_model",
                )
            plan = self._plan(chat, fusion)
            self.slots.acquire()
            acquired = True
            fusion_id = secrets.token_hex(8)
            if chat.stream and plan.schema is None:
                response = await self._stream(request, chat, plan, fusion_id, started)
                streaming = True
                return response
            message = await until_disconnect(
                request.receive, plan.invoke(), self.limits.request_timeout
            )
            content = plan.structured_content(message) if plan.schema is not None else None
            report = message.response_metadata["fusion"]
            self._keep(fusion_id, model, 200, report, content or message.text)
            status, cause = 200, None
            completion = completion_body(f"chatcmpl-{fusion_id}", model, message, content)
            if chat.stream:  # structured output: the answer in one event
                writer = ChunkWriter(completion["id"], model, chat.include_usage)
                events = [writer.text(content or ""), *writer.final(message, report)]
                return Response(b"".join(events), media_type="text/event-stream")
            return JSONResponse(completion)
        except ApiError as error:
            status, cause = error.status, error.cause
            return error_response(error)
        except FusionRunError as exc:
            failed = run_error(exc)
            status, cause, report = failed.status, failed.cause, exc.report
            self._keep(secrets.token_hex(8), model, status, report, None)
            return error_response(failed, report)
        except (FusionInputError, ValidationError) as exc:
            refused = input_error(exc)
            status, cause = refused.status, refused.cause
            return error_response(refused)
        except ClientGone:
            status, cause = 499, "disconnect"
            return Response(status_code=499)
        except Exception as exc:  # an answer in OpenAI's shape; the log gets one line
            log.error("request failed: %s", describe_error(exc))
            return error_response(internal_error())
        finally:
            if not streaming:
                if acquired:
                    self.slots.release()
                self._finished(request, model, started, status, report, cause)

    def _plan(self, chat: ChatRequest, fusion: FusionChatModel) -> Plan:
        entry = self.config.fusions[chat.model]
        kwargs = call_arguments(chat, entry, self.limits.max_member_concurrency)
        schema = output_schema(chat)
        if schema is not None and chat.tools:
            raise ApiError(
                400,
                "tools and response_format together are not supported: send one of them",
                param="response_format",
            )
        messages = to_messages(chat)
        try:
            return Plan(
                fusion,
                messages,
                kwargs,
                tools=chat.tools,
                tool_choice=chat.tool_choice,
                schema=schema,
                stop=chat.stops,
            )
        except ValueError as exc:  # tools LangChain cannot bind
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid tools"
            raise ApiError(400, f"invalid tools: {first}", param="tools", cause="input") from None

    async def _stream(
        self, request: Request, chat: ChatRequest, plan: Plan, fusion_id: str, started: float
    ) -> Response | SSEResponse:
        """The SSE response; errors before the first chunk still get their own status."""
        first, rest = await until_disconnect(
            request.receive, first_and_rest(plan.astream()), self.limits.request_timeout
        )

        def finish(
            status: int, report: dict[str, Any] | None, cause: str | None, answer: str
        ) -> None:
            self.slots.release()
            self._keep(fusion_id, chat.model, status, report, answer or None)
            self._finished(request, chat.model, started, status, report, cause)

        writer = ChunkWriter(f"chatcmpl-{fusion_id}", chat.model, chat.include_usage)
        left = max(0.001, self.limits.request_timeout - (time.monotonic() - started))
        return SSEResponse(first, rest, writer, finish, left, fusion_id)

    async def fusions_list(self, request: Request) -> Response:
        self.keys.check(request.headers.get("authorization"))
        return JSONResponse(
            {"object": "list", "data": [k.summary() for k in self.reports.newest_first()]}
        )

    async def fusion_page(self, request: Request) -> Response:
        self.keys.check(request.headers.get("authorization"))
        fusion_id = request.path_params["fusion_id"]
        kept = self.reports.get(fusion_id)
        if kept is None:
            raise ApiError(
                404,
                f"no fusion {fusion_id!r} is kept (the server keeps the last "
                f"{self.reports.size}; GET /fusions lists them)",
                code="fusion_not_found",
            )
        if request.query_params.get("format") == "json":
            return JSONResponse(kept.report)
        return HTMLResponse(report_html(kept.report, answer=kept.answer, title=kept.model))

    async def metrics_page(self, request: Request) -> Response:
        self.keys.check(request.headers.get("authorization"))
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    config: ServeConfig | str | Path | None = None,
    *,
    api_keys: Iterable[str | SecretStr] = (),
    env: Mapping[str, str] | None = None,
    fusions: Mapping[str, FusionChatModel] | None = None,
) -> Starlette:
    """The ASGI app, ready to serve or to mount in another app.

    Args:
        config: A `ServeConfig`, a YAML/JSON config file, or None: one fusion per mode over
            the bundled simulator, started by the app's lifespan (an offline demo, logged at
            start-up; a mounted app's lifespan does not run, so give it a config).
        api_keys: Keys clients must send (also read from `server.api_keys_env` and
            `server.api_keys_file`); none: no key is asked for.
        env: Where keys are read (default `os.environ`).
        fusions: Ready-made fusions by virtual model name, instead of building the config's.

    Raises:
        ConfigError: a bad config, naming the fusion and the field, before any call.
    """
    environ = dict(os.environ if env is None else env)
    demo = config is None and fusions is None
    if isinstance(config, str | Path):
        config = load_config(config)
    if config is None:
        config = ServeConfig(fusions={})
    keys = load_api_keys(
        [k.get_secret_value() if isinstance(k, SecretStr) else k for k in api_keys],
        environ,
        config.server.api_keys_env,
        config.server.api_keys_file,
    )
    built = dict(fusions) if fusions is not None else build_fusions(config, environ)
    server = FusionServer(config, built, keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not demo:
            yield
            return
        scenario = default_scenario()
        async with arun_simulator(scenario) as sim:
            pool, judge = scenario_roles(scenario)
            server.config = demo_config(sim.openrouter_base_url, list(pool), judge, DEMO_MODES)
            server.fusions = build_fusions(server.config, {"FUSION_SIMULATOR_KEY": SIMULATOR_KEY})
            log.warning(
                "no config given: serving %s over the bundled simulator at %s "
                "(simulated models, offline demo)",
                ", ".join(server.fusions),
                sim.base_url,
            )
            yield

    app = Starlette(
        routes=[
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/v1/chat/completions", server.chat, methods=["POST"]),
            Route("/fusions", server.fusions_list, methods=["GET"]),
            Route("/fusions/{fusion_id}", server.fusion_page, methods=["GET"]),
            Route("/metrics", server.metrics_page, methods=["GET"]),
            Route("/health", _health, methods=["GET"]),
        ],
        exception_handlers={ApiError: _api_error},
        lifespan=lifespan,
    )
    app.state.fusion_server = server
    return app
