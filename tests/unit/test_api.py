"""The scoring API (FastAPI's TestClient, an in-memory store, a NumPy MLP): keys, refusals, the stream's score.

The Redis-backed, broker-fed equivalence is tests/integration/test_api_scoring.py.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyFile
from api.score_route import BodyTooLarge, ScoreRoute, bearer_key, read_body
from api.scoring import ScoringService
from features.spec import FEATURE_NAMES
from fraudstream.clock import ManualClock
from fraudstream.contracts import ScoreRecord, Transaction
from fraudstream.settings import Settings, build_settings
from models.loaded import LoadedModel, MLPWeights
from models.preprocess import Preprocessor
from state.memory import InMemoryFeatureStore
from streamer.core import RawRecord, StreamProcessor
from streamer.scoring import ModelHolder
from tests.streamer_support import simulated_transactions, txn_headers

PARTITIONS = 3
USED = ("amount", "amount_ratio_mean_30d", "new_merchant", "dist_prev_km", "count_1d")


def mlp_model(threshold: float = 0.1) -> LoadedModel:
    """A small MLP served by the NumPy forward pass, as the streamer serves it (no TensorFlow)."""
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.lognormal(3.5, 1.0, 500), rng.lognormal(0, 0.6, 500), rng.integers(0, 2, 500),
                         rng.exponential(20, 500), rng.integers(1, 9, 500)])  # fmt: skip
    weights = [rng.normal(0, 0.6, (len(USED), 8)), np.zeros(8), rng.normal(0, 0.6, (8, 1)), np.array([-0.5])]
    return LoadedModel(
        version="v-unit", input_names=FEATURE_NAMES, used_features=USED, thresholds={"mlp": threshold},
        preprocessor=Preprocessor.fit(X), mlp_weights=MLPWeights(weights, "sigmoid", "relu"), stack=None,
        contribution_weights=np.full(len(USED), 1 / len(USED)),
    )  # fmt: skip


def settings_for(tmp: Path) -> Settings:
    return build_settings({"streamer": {"scorer": "mlp"}, "api": {"keys_file": str(tmp / "keys.json")}}, environ={})


def partition_of(txn: Transaction) -> int:
    return zlib.crc32(txn.user_id.encode()) % PARTITIONS


def raw(txn: Transaction, offset: int) -> RawRecord:
    return RawRecord("transactions", partition_of(txn), offset, txn.user_id.encode(), txn.model_dump_json().encode(),
                     txn_headers())  # fmt: skip


class World:
    """A stream that applied a history (StreamProcessor over an in-memory store), and an API over the same store."""

    def __init__(self, tmp: Path) -> None:
        self.settings = settings_for(tmp)
        self.history = simulated_transactions(customers=20, merchants=16, days=2, seed=9)
        self.now = self.history[-1].timestamp + timedelta(minutes=5)
        self.clock = ManualClock(self.now)
        self.store = InMemoryFeatureStore(partitions=PARTITIONS)
        self.holder = ModelHolder.fixed(mlp_model())
        self.processor = StreamProcessor(self.settings, self.store, self.holder, self.clock)
        self.offsets = dict.fromkeys(range(PARTITIONS), 0)
        for lo in range(0, len(self.history), 50):
            self.stream(self.history[lo : lo + 50])
        self.keys = KeyFile(self.settings.api_keys_file, self.clock)
        self.key, _ = self.keys.create("unit", "tester")
        service = ScoringService(self.settings, self.store, self.holder, self.clock)
        self.client = TestClient(create_app(service, self.keys))

    def stream(self, txns: list[Transaction]) -> list[ScoreRecord]:
        records = []
        for txn in txns:
            p = partition_of(txn)
            records.append(raw(txn, self.offsets[p]))
            self.offsets[p] += 1
        result = self.processor.process(records)
        return [ScoreRecord.model_validate_json(m.value) for m in result.messages if m.topic == "scores"]

    def stream_alone(self, txn: Transaction) -> list[ScoreRecord]:
        """The stream's next output for `txn` applied alone to a copy of the state (the state itself untouched)."""
        copy = InMemoryFeatureStore(partitions=PARTITIONS)
        copy.strings = dict(self.store.strings)
        copy.hashes = {k: dict(v) for k, v in self.store.hashes.items()}
        processor = StreamProcessor(self.settings, copy, self.holder, self.clock)
        result = processor.process([raw(txn, self.offsets[partition_of(txn)])])
        return [ScoreRecord.model_validate_json(m.value) for m in result.messages if m.topic == "scores"]

    def new_event(self, k: int = 0, **changes: Any) -> Transaction:
        base = self.history[-1 - k]
        fields = {"transaction_id": f"api-{k}", "timestamp": self.now - timedelta(seconds=30), "amount": 420.0}
        return base.model_copy(update={**fields, **changes})

    def post(self, body: bytes | str, key: str | None = None, scheme: str = "Bearer") -> Any:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"{scheme} {key}"
        return self.client.post("/v1/score", content=body, headers=headers)

    def snapshot(self) -> dict[str, Any]:
        return {**dict(self.store.strings), **{k: dict(v) for k, v in self.store.hashes.items()}}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_the_api_gives_the_score_the_stream_then_emits_and_changes_no_state(world: World) -> None:
    events = [world.new_event(k, amount=float(30 + 400 * k)) for k in range(4)]
    before = world.snapshot()
    answers = []
    for txn in events:
        response = world.post(txn.model_dump_json(), world.key)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert world.snapshot() == before, "the API changed the state"
    for txn, answer in zip(events, answers, strict=True):
        (emitted,) = world.stream_alone(txn)  # each alone, so each meets the state the API read
        assert answer["score"] == emitted.score
        assert (answer["decision"] == "alert") is emitted.alerted
        assert answer["threshold"] == emitted.threshold and answer["model_version"] == emitted.model_version == "v-unit"
    assert {a["transaction_id"] for a in answers} == {t.transaction_id for t in events}
    assert all(set(a) >= {"score", "threshold", "decision", "reasons", "model_version"} for a in answers)
    assert any(a["reasons"] for a in answers) and all(r["text"] for a in answers for r in a["reasons"])
    assert {a["decision"] for a in answers} == {"alert", "pass"}, "the test events should fall on both sides"


def test_no_key_a_wrong_scheme_or_an_unknown_key_is_401(world: World) -> None:
    body = world.new_event().model_dump_json()
    for response in (world.post(body), world.post(body, world.key, scheme="Basic"),
                     world.post(body, "fsk_00000000_" + "A" * 43), world.post(body, "not-a-key")):  # fmt: skip
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]


def test_a_revoked_key_is_refused_from_the_next_request(world: World) -> None:
    body = world.new_event().model_dump_json()
    other, record = world.keys.create("second", "tester")
    assert world.post(body, other).status_code == 200
    KeyFile(world.settings.api_keys_file).revoke(record.key_id, "tester")  # another process, as the CLI would
    assert world.post(body, other).status_code == 401
    assert world.post(body, world.key).status_code == 200, "revoking one key refused another"


@pytest.mark.parametrize(
    ("change", "reason", "names"),
    [
        (lambda d: {**d, "amount": "12.5"}, "schema-violation", "amount"),
        (lambda d: {**d, "timestamp": "2024-03-01 12:00:00"}, "schema-violation", "timestamp"),
        (lambda d: {k: v for k, v in d.items() if k != "merchant_id"}, "schema-violation", "merchant_id"),
        (lambda d: {**d, "surprise": 1}, "schema-violation", "surprise"),
    ],
)
def test_a_bad_body_is_422_with_the_streams_reason_in_one_line(world: World, change: Any, reason: str,
                                                               names: str) -> None:  # fmt: skip
    data = json.loads(world.new_event().model_dump_json())
    response = world.post(json.dumps(change(data)), world.key)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["reason"] == reason and names in body["detail"] and "\n" not in body["detail"]


def test_duplicate_keys_broken_json_and_the_far_future_are_refused_as_the_stream_refuses_them(world: World) -> None:
    good = world.new_event().model_dump_json()
    duplicate = good[:-1] + ', "amount": 9999999}'
    future = world.new_event(timestamp=world.now + timedelta(hours=2)).model_dump_json()
    for body, reason in ((duplicate, "duplicate-key"), ("{broken", "invalid-json"), ("", "empty-record"),
                         ("[1, 2]", "schema-violation"), (future, "schema-violation")):  # fmt: skip
        response = world.post(body, world.key)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["reason"] == reason, response.text


def test_a_late_event_is_409_and_an_oversized_body_413(world: World) -> None:
    late = world.new_event(timestamp=world.history[-1].timestamp - timedelta(days=1))
    response = world.post(late.model_dump_json(), world.key)
    assert response.status_code == 409 and "late topic" in response.json()["detail"]
    assert world.post(b"{" + b" " * 70_000 + b"}", world.key).status_code == 413


def test_health_ready_and_the_openapi_document_names_the_fields(world: World) -> None:
    assert world.client.get("/v1/health").json()["status"] == "ok"
    ready = world.client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == "v-unit"
    doc = world.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    fields = set(schemas["Transaction"]["properties"])
    assert {"transaction_id", "user_id", "timestamp", "amount", "merchant_id"} <= fields
    assert set(schemas["Transaction"]["required"]) >= {"transaction_id", "user_id", "timestamp", "amount"}
    assert {"score", "threshold", "decision", "reasons", "model_version"} <= set(schemas["ScoreResponse"]["properties"])
    post = doc["paths"]["/v1/score"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Transaction"
    assert {"401", "409", "413", "422", "503"} <= set(post["responses"])
    assert post["security"] == [{"HTTPBearer": []}]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_ready_is_503_when_the_store_does_not_answer(world: World) -> None:
    def down() -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    service = ScoringService(world.settings, world.store, world.holder, world.clock, ping=down)
    response = TestClient(create_app(service, world.keys)).get("/v1/ready")
    assert response.status_code == 503 and "Connection refused" in response.json()["detail"]


def test_keys_are_hashed_at_rest(tmp_path: Path) -> None:
    keys = KeyFile(tmp_path / "keys.json", ManualClock(datetime(2024, 1, 1, tzinfo=UTC)))
    key, record = keys.create("bank-auth", "ops")
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and key.split("_")[-1] not in text and record.sha256 in text
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0
    assert keys.authenticate(key) == record and keys.authenticate(key + "x") is None
    with pytest.raises(Exception, match="an active API key named 'bank-auth' exists"):
        keys.create("bank-auth", "ops")
    assert orjson.loads(text)["keys"][0]["created_by"] == "ops"


def test_concurrent_requests_are_scored_in_batches_with_the_answers_they_get_alone(world: World) -> None:
    import asyncio

    import httpx

    events = [world.new_event(k, amount=float(20 + 150 * k)) for k in range(12)]
    alone = {t.transaction_id: world.post(t.model_dump_json(), world.key).json() for t in events}
    app = create_app(ScoringService(world.settings, world.store, world.holder, world.clock), world.keys)

    async def together() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {world.key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
            replies = await asyncio.gather(*(client.post("/v1/score", content=t.model_dump_json()) for t in events))
        return [r.json() for r in replies]

    answers = asyncio.run(together())
    batcher = app.state.batcher
    assert batcher.scored == len(events) and batcher.batches < len(events), "nothing was batched"
    for answer in answers:
        expected = alone[answer["transaction_id"]]
        assert {k: v for k, v in answer.items() if k != "scored_at"} == {
            k: v for k, v in expected.items() if k != "scored_at"
        }


def test_the_bearer_key_is_read_as_httpbearer_reads_it() -> None:
    assert bearer_key(b"Bearer fsk_1") == "fsk_1" and bearer_key(b"bEARER fsk_1") == "fsk_1"
    assert bearer_key(b"Basic fsk_1") is None and bearer_key(b"Bearer") is None and bearer_key(b"Bearer ") is None
    assert bearer_key(None) is None and bearer_key(b"") is None


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    import asyncio

    def receiver(chunks: list[bytes]) -> Any:
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        return receive

    assert asyncio.run(read_body(receiver([b"ab", b"cd", b"e"]), 5)) == b"abcde"
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(receiver([b"ab", b"cd", b"ef", b"never read"]), 5))


def test_an_oversized_body_without_content_length_is_413(world: World) -> None:
    def chunks() -> Any:
        yield b'{"transaction_id": "' + b"x" * (70 * 1024)
        yield b'"}'

    headers = {"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"}
    response = world.client.post("/v1/score", content=chunks(), headers=headers)
    assert response.status_code == 413 and "larger than 65536 bytes" in response.json()["detail"]


def test_fastapis_own_score_route_answers_as_the_asgi_handler_does(world: World) -> None:
    """The documented FastAPI route (reached without the ScoreRoute in front) gives the same answers."""
    app = create_app(ScoringService(world.settings, world.store, world.holder, world.clock), world.keys)
    assert isinstance(app.score_front, ScoreRoute) and app.user_middleware == []
    app.score_front = None  # FastAPI alone: its route answers /v1/score
    behind = TestClient(app)
    txn = world.new_event(0).model_dump_json()
    headers = {"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"}
    for body, sent in ((txn, headers), (txn, {}), ('{"amount": "1"}', headers)):
        front, back = world.client.post("/v1/score", content=body, headers=sent), behind.post(
            "/v1/score", content=body, headers=sent)
        assert front.status_code == back.status_code
        assert {k: v for k, v in front.json().items() if k != "scored_at"} == {
            k: v for k, v in back.json().items() if k != "scored_at"}
        assert front.headers.get("www-authenticate") == back.headers.get("www-authenticate")
    assert {front.status_code for front in [world.post(txn, world.key), world.post(txn)]} == {200, 401}


def test_an_unexpected_failure_is_a_500_in_one_json_line_and_the_next_request_is_answered(world: World) -> None:
    """The ScoreRoute runs in front of Starlette's error middleware: a bug still answers one JSON object."""

    class Broken(InMemoryFeatureStore):
        fail = True

        def peek(self, txns: Any) -> Any:
            if Broken.fail:
                Broken.fail = False
                raise RuntimeError("boom")
            return world.store.peek(txns)

    service = ScoringService(world.settings, Broken(partitions=PARTITIONS), world.holder, world.clock)
    client = TestClient(create_app(service, world.keys))
    headers = {"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"}
    body = world.new_event(0).model_dump_json()
    first, second = client.post("/v1/score", content=body, headers=headers), client.post(
        "/v1/score", content=body, headers=headers)
    assert first.status_code == 500 and first.json() == {
        "detail": "internal error (RuntimeError); see the server's log"}
    assert second.status_code == 200 and second.json()["transaction_id"] == "api-0"


@pytest.mark.parametrize("method", ["deeplift", "integrated_gradients"])
def test_an_alerts_reasons_are_the_streams_under_its_mlp_attribution_method(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """streamer.mlp_attribution reaches the API's explanations as it reaches the stream's alerts."""
    world = World(tmp_path)
    asked: list[str] = []
    attributions = LoadedModel.attributions

    def spy(self: LoadedModel, X: Any, scorer: Any = "mlp", w: float = 0.5, mlp_method: str = "deeplift") -> Any:
        asked.append(mlp_method)
        return attributions(self, X, scorer, w, mlp_method)

    monkeypatch.setattr(LoadedModel, "attributions", spy)
    world.settings = world.settings.with_overrides(streamer={"mlp_attribution": method})
    service = ScoringService(world.settings, world.store, world.holder, world.clock)
    client = TestClient(create_app(service, world.keys))
    headers = {"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"}
    for k in range(4):  # the first of the first test's events that alerts
        txn = world.new_event(k, amount=float(30 + 400 * k))
        response = client.post("/v1/score", content=txn.model_dump_json(), headers=headers)
        assert response.status_code == 200, response.text
        if response.json()["decision"] == "alert":
            break
    assert response.json()["decision"] == "alert" and asked == [method]
    copy = InMemoryFeatureStore(partitions=PARTITIONS)
    copy.strings = dict(world.store.strings)
    copy.hashes = {k: dict(v) for k, v in world.store.hashes.items()}
    processor = StreamProcessor(world.settings, copy, world.holder, world.clock)
    result = processor.process([raw(txn, world.offsets[partition_of(txn)])])
    (alert,) = [json.loads(m.value) for m in result.messages if m.topic == "alerts"]
    assert response.json()["reasons"] == alert["reasons"] and alert["reasons"]
    assert method.replace("_", " ").split()[0].lower() in alert["explanation"]["method"].lower().replace("-", " ")
