"""The scoring API's HTTP surface (FastAPI): POST /v1/score behind API keys, GET /v1/health and /v1/ready.

The body of /v1/score is read as bytes and decoded by the stream's own decoder, not by FastAPI's (which would be
laxer: repeated JSON keys silently merged), so the OpenAPI document names the Transaction schema explicitly.
POST /v1/score is answered by `api.score_route.ScoreRoute`, a plain ASGI handler in front of the whole FastAPI
application (`ScoringAPI.__call__`: the hot route without Starlette's middleware stack, FastAPI's routing or its
per-request work); FastAPI documents it and serves everything else.
Every error is one JSON object with a one-line `detail`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from api.batching import Batcher
from api.keys import KeyFile
from api.score_route import SCORE_PATH, Receive, Scope, ScoreHandler, ScoreRoute, Send
from api.scoring import ScoringService
from fraudstream import __version__
from fraudstream.contracts import Reason, Transaction


class ScoreResponse(BaseModel):
    """The stream's verdict on one transaction against the state as it is now (the state is not changed)."""

    transaction_id: str
    user_id: str
    score: float = Field(ge=0.0, le=1.0, description="Fraud probability, rounded to 9 decimals as the stream's.")
    threshold: float = Field(ge=0.0, le=1.0, description="The model's alert threshold for the scorer in use.")
    decision: Literal["alert", "pass"] = Field(description="alert when score >= threshold, as the stream decides.")
    reasons: list[Reason] = Field(description="The features pushing the score up the most, in words.")
    model_version: str = Field(description="The registry version that scored it (the current one).")
    scorer: Literal["mlp", "stack", "blend"]
    features: dict[str, float] = Field(description="The feature vector the model saw (finite values).")
    scored_at: datetime


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, in one line.")
    error_class: str | None = Field(default=None, description="For a refused body: the stream's error class.")
    reason: str | None = Field(default=None, description="For a refused body: the stream's short reason code.")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    model_version: str | None = None
    scorer: str | None = None
    detail: str | None = None


class ScoringAPI(FastAPI):
    """FastAPI with POST /v1/score answered before Starlette's middleware stack (its error middleware, FastAPI's
    exception and body-limit middleware, the router): `score_front` sees every request first and hands the rest to
    FastAPI. None: FastAPI alone (its documented route answers /v1/score the same way; a test compares them)."""

    score_front: ScoreRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.score_front
        if front is None:
            await FastAPI.__call__(self, scope, receive, send)
        else:
            await front(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(self, scope, receive, send)


def create_app(service: ScoringService, keys: KeyFile, *, max_body_bytes: int = 64 * 1024) -> ScoringAPI:
    app = ScoringAPI(
        title="fraudstream scoring API",
        version=__version__,
        description=(
            "Scores one transaction the way the stream would score it next: the same strict contract, the features "
            "from the card's and the merchant's state in Redis as it is (extract before update; the state is not "
            "changed, the stream still applies the event), the registry's current model. Every /v1/score call "
            "needs `Authorization: Bearer <key>` (keys from `fraudstream api create-key`)."
        ),
    )
    bearer = HTTPBearer(auto_error=False, description="An API key from `fraudstream api create-key`.")
    batcher = Batcher(service)
    app.state.batcher = batcher
    handler = ScoreHandler(batcher, keys, max_body_bytes)
    app.score_front = ScoreRoute(app.framework, handler)  # in front of everything FastAPI runs per request

    @app.post(
        SCORE_PATH,
        response_model=ScoreResponse,
        summary="Score one transaction",
        responses={
            401: {"model": ErrorBody, "description": "No API key, or an unknown or revoked one."},
            409: {"model": ErrorBody, "description": "The event is late: the stream would not score it."},
            413: {"model": ErrorBody, "description": "The body is larger than api.max_body_bytes."},
            422: {"model": ErrorBody, "description": "The body is not a valid Transaction (the reason says why)."},
            503: {"model": ErrorBody, "description": "Redis or the model cannot be used right now; retry."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transaction"}}},
            }
        },
    )
    async def score(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Response:
        """Documents the route; requests are answered by the ScoreRoute in front of FastAPI, with this handler."""
        client = request.client.host if request.client else "?"
        authorization = request.headers.get("authorization")
        status, body = handler.refused(authorization.encode("latin-1") if authorization else None, client) or (
            await handler.answer(await request.body())
        )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    @app.get("/v1/health", response_model=Health, summary="Liveness: the process answers")
    async def health() -> Response:
        return Response(orjson.dumps({"status": "ok", "version": __version__}), media_type="application/json")

    @app.get("/v1/ready", response_model=Ready, summary="Readiness: a model is loaded and Redis answers",
             responses={503: {"model": Ready}})
    async def ready() -> Response:
        try:
            found = service.ready()
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency means not ready, said in one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
        return JSONResponse({"status": "ready", **found})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            txn = Transaction.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(txn.pop("$defs", {}))
            components["Transaction"] = txn
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

