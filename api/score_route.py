"""POST /v1/score as a plain ASGI handler in front of FastAPI: the hot route without the framework's per-request work.

FastAPI's route would build a Request, run the HTTPBearer dependency, wrap the answer in a Response and pass
through its exception middleware: about as much CPU as the scoring itself for one transaction. This handler reads
the Authorization header and the body from the ASGI messages, and answers with two ASGI messages. What it answers is
the same as before: the key is checked as HTTPBearer checks it (scheme `Bearer`, any case, then the key), the body is
decoded by the stream's own decoder, every error is one JSON object with a one-line `detail` (an unexpected
exception too: a 500 with its one line, logged with its traceback). FastAPI still owns the other routes and documents
this one; the handler runs in front of the whole application (`api.app.ScoringAPI`), outside Starlette's middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from api.batching import Batcher
from api.keys import KeyFile
from api.scoring import Late, Scored
from fraudstream.errors import FraudstreamError, ModelError, StateStoreError
from streamer.validation import DecodeFailure

log = logging.getLogger(__name__)

SCORE_PATH = "/v1/score"
UNAUTHORIZED = "a valid API key is required: send Authorization: Bearer <key> (fraudstream api create-key)"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


def bearer_key(authorization: bytes | None) -> str | None:
    """The key of `Authorization: Bearer <key>` (scheme in any case), else None: FastAPI's HTTPBearer's reading."""
    if not authorization:
        return None
    scheme, _, key = authorization.decode("latin-1").partition(" ")
    return key if scheme.lower() == "bearer" and key else None


class ScoreHandler:
    """Authenticate, read, decode, score (through the batcher), answer: (status, body, extra headers)."""

    def __init__(self, batcher: Batcher, keys: KeyFile, max_body_bytes: int) -> None:
        self.batcher = batcher
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.decode = batcher.service.decode

    def too_large(self) -> tuple[int, bytes]:
        return error(413, f"the body is larger than {self.max_body_bytes} bytes; send one transaction")

    def refused(self, authorization: bytes | None, client: str) -> tuple[int, bytes] | None:
        """The 401 answer when the Authorization header holds no active key, else None."""
        if self.keys.authenticate(bearer_key(authorization)) is not None:
            return None
        log.warning("refused /v1/score from %s: no valid API key", client)
        return error(401, UNAUTHORIZED)

    async def answer(self, body: bytes) -> tuple[int, bytes]:
        """The answer to an authenticated request's body."""
        if len(body) > self.max_body_bytes:
            return self.too_large()
        txn = self.decode(body)
        if isinstance(txn, DecodeFailure):
            return error(422, f"the transaction is refused ({txn.reason}): {txn.message}",
                         error_class=txn.error_class, reason=txn.reason)  # fmt: skip
        try:
            result = await self.batcher.submit(txn)
        except StateStoreError as exc:
            return error(503, f"the feature state cannot be read: {exc}")
        except ModelError as exc:
            return error(503, f"the model cannot score: {exc}")
        except FraudstreamError as exc:
            return error(500, str(exc))
        if isinstance(result, Late):
            return error(409, result.message)
        assert isinstance(result, Scored)
        return 200, orjson.dumps(result.as_json())


def error(status: int, detail: str, **extra: Any) -> tuple[int, bytes]:
    return status, orjson.dumps({"detail": detail, **extra})


class ScoreRoute:
    """ASGI middleware: POST /v1/score goes to the ScoreHandler, everything else to `app`."""

    def __init__(self, app: ASGIApp, handler: ScoreHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SCORE_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
        client = scope.get("client")
        handler = self.handler
        refused = handler.refused(authorization, client[0] if client else "?")  # before the body is read
        if refused is not None:
            status, body = refused
        elif length is not None and length.isdigit() and int(length) > handler.max_body_bytes:
            status, body = handler.too_large()
        else:
            try:
                request = await read_body(receive, handler.max_body_bytes)
            except BodyTooLarge:
                status, body = handler.too_large()
            else:
                try:
                    status, body = await handler.answer(request)
                except Exception as exc:  # a bug answers as Starlette's error middleware would, but in JSON
                    log.exception("POST /v1/score failed")
                    status, body = error(500, f"internal error ({type(exc).__name__}); see the server's log")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body; BodyTooLarge as soon as it passes `limit` bytes (a chunked body has no content-length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
