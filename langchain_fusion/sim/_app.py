"""The simulator's Starlette app: chat completions (plain and SSE), models, stats."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_fusion.sim import _wire
from langchain_fusion.sim._answer import build_answer
from langchain_fusion.sim._reply import Reply, SimState, SimulatedDisconnect
from langchain_fusion.sim._request import RequestError, parse_request
from langchain_fusion.sim._scenario import Fault, Scenario, SimModel
from langchain_fusion.sim._tokens import draw

_CREATED = 1_700_000_000


class _QuietDisconnects(logging.Filter):
    """Drops uvicorn's error log of connections the simulator cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDisconnect)


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDisconnects) for f in logger.filters):
        logger.addFilter(_QuietDisconnects())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(_wire.error_body(status, message), status_code=status, headers=headers)


def _pick_fault(scenario: Scenario, model: SimModel, number: int, stream: bool) -> Fault | None:
    for index, fault in enumerate(model.faults):
        if fault.selects(number, stream, draw(scenario.seed, "fault", model.name, number, index)):
            return fault
    return None


# -- routes ---------------------------------------------------------------------------------


async def _chat(request: Request) -> Response:
    state: SimState = request.app.state.sim
    try:
        body = json.loads(await request.body())
        parsed = parse_request(body)
    except ClientDisconnect:
        # Gone before its body arrived (a fusion cancelled while sending): nobody to answer.
        state.recorder.reject()
        return Response(status_code=499)
    except (json.JSONDecodeError, UnicodeDecodeError):
        state.recorder.reject()
        return _error(400, "the request body is not valid JSON")
    except RequestError as exc:
        state.recorder.reject()
        return _error(400, str(exc))
    model = state.scenario.model(parsed.model)
    if model is None:
        state.recorder.reject()
        return _error(404, f"model {parsed.model!r} is not simulated here")
    number = state.recorder.start(model.name, parsed.stream, parsed.images)
    try:
        fault = _pick_fault(state.scenario, model, number, parsed.stream)
        answer = build_answer(state.scenario, model, parsed, f"{number}_{secrets.token_hex(4)}")
    except Exception:
        state.recorder.finish(model.name)
        raise
    return Reply(state, model, parsed, answer, fault)


def _price(value: float) -> str:
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text or "0"


def models_body(scenario: Scenario) -> dict[str, Any]:
    """The `GET /v1/models` body: OpenAI's list shape with OpenRouter's model fields."""
    data = []
    for model in scenario.models:
        data.append(
            {
                "id": model.name,
                "canonical_slug": model.name,
                "object": "model",
                "owned_by": model.provider,
                "name": f"{model.provider}: {model.name}",
                "created": _CREATED,
                "description": model.description,
                "context_length": model.context_length,
                "architecture": {
                    "modality": "text+image->text",
                    "input_modalities": ["text", "image"],
                    "output_modalities": ["text"],
                    "tokenizer": "Other",
                    "instruct_type": None,
                },
                "pricing": {
                    "prompt": _price(model.prompt_price),
                    "completion": _price(model.completion_price),
                    "request": "0",
                    "image": "0",
                },
                "top_provider": {
                    "context_length": model.context_length,
                    "max_completion_tokens": None,
                    "is_moderated": False,
                },
                "per_request_limits": None,
                "supported_parameters": [
                    "max_tokens",
                    "response_format",
                    "structured_outputs",
                    "tools",
                    "tool_choice",
                ],
                "default_parameters": None,
                "supported_voices": None,
                "links": {"details": f"/api/v1/models/{model.name}/endpoints"},
            }
        )
    return {"object": "list", "data": data, "links": {"next": None}, "total_count": len(data)}


async def _models(request: Request) -> Response:
    state: SimState = request.app.state.sim
    return JSONResponse(models_body(state.scenario))


async def _stats(request: Request) -> Response:
    state: SimState = request.app.state.sim
    return JSONResponse(state.recorder.snapshot().model_dump())


async def _reset(request: Request) -> Response:
    state: SimState = request.app.state.sim
    state.recorder.reset()
    return JSONResponse(state.recorder.snapshot().model_dump())


def create_app(scenario: Scenario, state: SimState | None = None) -> Starlette:
    """The simulator as an ASGI app (serve it with uvicorn, or use `run_simulator`).

    Routes: `POST /v1/chat/completions`, `POST /api/v1/chat/completions`, `GET /v1/models`,
    `GET /api/v1/models`, `GET /stats`, `POST /stats/reset`.

    Args:
        scenario: What to simulate.
        state: The state to serve from (a fresh one by default); `app.state.sim` holds it.
    """
    sim = state or SimState(scenario)
    _install_log_filter()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim.loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            sim.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/api/v1/chat/completions", _chat, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/api/v1/models", _models, methods=["GET"]),
            Route("/stats", _stats, methods=["GET"]),
            Route("/stats/reset", _reset, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.sim = sim
    return app
