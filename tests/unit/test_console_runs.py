"""Training runs, backtests and card scores in the console (TestClient on SQLite, a real tiny training run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.db import session_factory
from console.jobs import plot_path, run_folder
from console.schema import AuditEvent, CardScore, JobRun
from console.score_ingest import store_scores
from console.server import Console, build_console
from fraudstream.clock import ManualClock
from fraudstream.contracts import ScoreRecord
from fraudstream.errors import InputError
from tests.conftest import make_test_settings
from tests.console_support import T0, LabelRecorder, add_users, console_settings, csrf_of, login, make_alert, store

#: A config that trains in a few seconds: one model, one stratified split.
TINY = "models: [logistic_regression]\nprotocol: stratified_80_20\n"


def handbook_csv(path: Path, *, days: int = 10, users: int = 40, bad_rows: bool = True) -> Path:
    rng = np.random.default_rng(3)
    n = days * users * 3
    seconds = np.sort(rng.integers(0, days * 86400, n))
    amount = np.round(rng.gamma(2.0, 40.0, n), 2)
    frame = pd.DataFrame({
        "TRANSACTION_ID": np.arange(n).astype(str), "TX_DATETIME": (
            pd.Timestamp("2018-04-01") + pd.to_timedelta(seconds, "s")).astype(str),
        "CUSTOMER_ID": rng.integers(0, users, n).astype(str), "TERMINAL_ID": rng.integers(0, 200, n).astype(str),
        "TX_AMOUNT": amount.astype(str), "TX_FRAUD": (amount > 220).astype(int).astype(str),
        "TX_FRAUD_SCENARIO": (amount > 220).astype(int).astype(str),
    })
    if bad_rows:
        frame.loc[5, "TX_AMOUNT"] = "not-a-number"
        frame.loc[9, "TX_DATETIME"] = "yesterday"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def console(tmp_path: Path, clock: ManualClock) -> Iterator[Console]:
    settings = console_settings(make_test_settings(registry={"path": str(tmp_path / "registry")}), tmp_path)
    built = build_console(settings, clock=clock, publish=LabelRecorder(), consume=False)
    add_users(built, clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(console.app) as test_client:
        yield test_client


def _upload(client: TestClient, path: Path) -> str:
    token = csrf_of(client.get("/runs").text)
    with path.open("rb") as handle:
        response = client.post("/uploads", data={"csrf_token": token}, files={"file": (path.name, handle)},
                               follow_redirects=False)
    assert response.status_code == 303, response.text
    return str(response.headers["location"]).rsplit("/", 1)[1]


def _runs(console: Console) -> list[JobRun]:
    with session_factory(console.engine)() as db:
        return list(db.scalars(select(JobRun).order_by(JobRun.id)))


def _audit(console: Console, action: str) -> list[AuditEvent]:
    with session_factory(console.engine)() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_every_run_route_needs_a_login(client: TestClient) -> None:
    from console.run_pages import router

    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 8
    token = csrf_of(client.get("/login").text)
    for route in routes:
        path = route.path.replace("{run_id}", "1").replace("{upload_id}", "0" * 32).replace("{name}", "roc.png")
        for method in route.methods:
            if method == "GET":
                response = client.get(path, follow_redirects=False)
                assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
            else:
                response = client.request(method, path, data={"csrf_token": token, "upload_id": "0" * 32},
                                          files={"file": ("x.csv", b"a\n1\n")}, follow_redirects=False)
                assert response.status_code == 401, (method, path)


@pytest.mark.parametrize("username", ["ana", "ada"])
def test_only_ops_upload_and_start_runs(client: TestClient, console: Console, tmp_path: Path, username: str) -> None:
    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv"))
    client.cookies.clear()
    login(client, username)
    assert client.get("/runs").status_code == 403
    assert client.get(f"/uploads/{upload_id}").status_code == 403
    token = csrf_of(client.get("/dashboard").text)
    started = client.post("/runs/train", data={"csrf_token": token, "upload_id": upload_id, "config": TINY})
    assert started.status_code == 403
    assert client.post("/runs/backtest", data={"csrf_token": token, "upload_id": upload_id}).status_code == 403
    assert _runs(console) == [] and _audit(console, "train.start") == []


def test_a_start_without_its_csrf_token_is_refused(client: TestClient, console: Console, tmp_path: Path) -> None:
    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv"))
    for data in ({"upload_id": upload_id}, {"upload_id": upload_id, "csrf_token": "forged"}):
        assert client.post("/runs/train", data={**data, "config": TINY}).status_code == 403
        assert client.post("/runs/backtest", data=data).status_code == 403
    with (tmp_path / "h.csv").open("rb") as handle:
        assert client.post("/uploads", files={"file": ("h.csv", handle)}).status_code == 403
    assert _runs(console) == []


def test_an_upload_with_bad_rows_lists_them_and_offers_them_as_csv(
    client: TestClient, console: Console, tmp_path: Path
) -> None:
    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv"))
    page = client.get(f"/uploads/{upload_id}")
    assert page.status_code == 200
    assert '<td id="rejected">2' in page.text and "not-a-number" in page.text and "yesterday" in page.text
    rejects = client.get(f"/uploads/{upload_id}/rejects.csv")
    assert rejects.status_code == 200 and rejects.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(pd.io.common.StringIO(rejects.text))
    assert list(table["source_row"]) == [5, 9] and table["reject_reason"].notna().all()
    (row,) = _audit(console, "history.upload")
    assert (row.actor, json.loads(row.detail)["rejected"]) == ("otto", 2)


def test_an_unusable_upload_is_one_clear_line_and_kept_nowhere(client: TestClient, tmp_path: Path) -> None:
    login(client, "otto")
    token = csrf_of(client.get("/runs").text)
    bad = client.post("/uploads", data={"csrf_token": token}, files={"file": ("notes.txt", b"hello")})
    assert bad.status_code == 400 and "upload a .csv or .parquet file" in bad.text
    nolabel = client.post("/uploads", data={"csrf_token": token}, files={
        "file": ("h.csv", b"transaction_id,user_id,timestamp,amount,merchant_id\nt1,u1,2024-01-01T00:00:00Z,5,m1\n")})
    assert nolabel.status_code == 400 and "no is_fraud" in nolabel.text
    assert "No history uploaded yet" in client.get("/runs").text


def test_a_training_run_goes_to_done_and_its_page_shows_the_metrics_and_plots(
    client: TestClient, console: Console, tmp_path: Path
) -> None:
    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv"))
    token = csrf_of(client.get(f"/uploads/{upload_id}").text)
    started = client.post("/runs/train", data={"csrf_token": token, "upload_id": upload_id, "config": TINY},
                          follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == "/runs/1"
    (start,) = _audit(console, "train.start")
    assert (start.actor, start.target, json.loads(start.detail)["upload"]) == ("otto", "run:1", upload_id)
    assert console.jobs.wait_idle(60)
    (run,) = _runs(console)
    assert (run.status, run.error, run.done_steps) == ("done", None, run.total_steps), run.error
    assert run.started_at is not None and run.finished_at is not None
    status = client.get("/runs/1/status").text
    assert 'id="run-status">done' in status and "data-finished" in status
    page = client.get("/runs/1").text
    report = json.loads((run_folder(console.app.state.console.settings, 1) / "report.json").read_text())
    auc = report["mean_metrics"]["logistic_regression"]["roc_auc"]
    assert 'id="metrics"' in page and "logistic_regression" in page and f"{auc:.3f}" in page
    assert auc > 0.9  # amount > 220 is learnable
    assert "/runs/1/files/roc.png" in page and "# Training report" in page
    plot = client.get("/runs/1/files/roc.png")
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    assert '<span class="badge run-done">done</span>' in client.get("/runs").text


def test_a_bad_training_config_is_refused_before_any_run(client: TestClient, console: Console, tmp_path: Path) -> None:
    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv", bad_rows=False))
    token = csrf_of(client.get(f"/uploads/{upload_id}").text)
    response = client.post("/runs/train", data={"csrf_token": token, "upload_id": upload_id, "config": "modelz: []"})
    assert response.status_code == 400 and "modelz" in response.text
    assert _runs(console) == []


def test_a_backtest_that_cannot_run_fails_with_its_reason(client: TestClient, console: Console, tmp_path: Path) -> None:
    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv", bad_rows=False))
    token = csrf_of(client.get(f"/uploads/{upload_id}").text)
    response = client.post("/runs/backtest", data={"csrf_token": token, "upload_id": upload_id},
                           follow_redirects=False)
    assert response.status_code == 303
    assert console.jobs.wait_idle(60)
    (run,) = _runs(console)
    assert run.kind == "backtest" and run.status == "failed" and run.error and "\n" not in run.error
    options = json.loads(run.options)
    assert options["fast"] is True and options["model"] == "current" and options["start"] is None
    assert [e.target for e in _audit(console, "backtest.start")] == ["run:1"]
    assert run.error in client.get("/runs/1").text


def test_plot_files_are_served_by_plain_name_only(client: TestClient, console: Console, tmp_path: Path) -> None:
    settings = console.app.state.console.settings
    folder = run_folder(settings, 1)
    folder.mkdir(parents=True)
    (folder / "roc.png").write_bytes(b"\x89PNG fake")
    (folder.parent / "secret.png").write_bytes(b"\x89PNG secret")
    with session_factory(console.engine).begin() as db:
        db.add(JobRun(kind="train", status="done", started_by="otto", upload_id="0" * 32, options="{}", message="",
                      done_steps=0, created_at=T0))
    assert plot_path(settings, 1, "roc.png") == (folder / "roc.png").resolve()
    for name in ("../secret.png", "..%2Fsecret.png", "/etc/passwd", "report.json", "..", "a/../roc.png", "x.png"):
        with pytest.raises(InputError):
            plot_path(settings, 1, name)
    (folder / "link.png").symlink_to(folder.parent / "secret.png")
    with pytest.raises(InputError):
        plot_path(settings, 1, "link.png")
    login(client, "otto")
    assert client.get("/runs/1/files/roc.png").status_code == 200
    for path in ("/runs/1/files/..%2Fsecret.png", "/runs/1/files/%2E%2E%2Fsecret.png", "/runs/1/files/link.png",
                 "/runs/2/files/roc.png"):
        response = client.get(path)
        assert response.status_code in (400, 404), path
        assert b"secret" not in response.content
    assert client.get("/uploads/..%2F..%2Fconsole.db/rejects.csv").status_code in (400, 404)


def test_a_run_left_running_by_a_stopped_console_is_failed_at_the_next_start(console: Console) -> None:
    with session_factory(console.engine).begin() as db:
        db.add(JobRun(kind="train", status="running", started_by="otto", upload_id="0" * 32, options="{}",
                      message="fold 1", done_steps=1, created_at=T0))
    with TestClient(console.app):
        (run,) = _runs(console)
    assert run.status == "failed" and run.error is not None and "stopped" in run.error


def _score(n: int, card: str, minutes: int, score: float = 0.2) -> ScoreRecord:
    at = T0 + timedelta(minutes=minutes)
    return ScoreRecord(transaction_id=f"T{n}", user_id=card, timestamp=at, score=score, threshold=0.5,
                       alerted=score >= 0.5, model_version="v1", scorer="stack", produced_at=at)


def test_score_records_keep_the_newest_per_card_and_show_on_alert_and_case(
    client: TestClient, console: Console, clock: ManualClock
) -> None:
    sessions = session_factory(console.engine)
    with sessions.begin() as db:
        assert store_scores(db, [_score(n, "C1", n) for n in range(5)] + [_score(9, "C2", 1)], keep_per_card=3) == 6
    with sessions.begin() as db:  # re-read after a crash: nothing stored twice
        assert store_scores(db, [_score(4, "C1", 4), _score(5, "C1", 5, 0.93)], keep_per_card=3) == 1
    with sessions() as db:
        kept = {(s.card_id, s.transaction_id) for s in db.scalars(select(CardScore))}
    assert kept == {("C1", "T3"), ("C1", "T4"), ("C1", "T5"), ("C2", "T9")}
    store(console, [make_alert(5, card="C1", score=0.93)], clock)
    login(client, "ana")
    alert_id = make_alert(5, card="C1").alert_id
    page = client.get(f"/alerts/{alert_id}").text
    section = page[page.index('id="card-scores"'):]
    assert [t for t in ("T5", "T4", "T3", "T2", "T9") if f"<td>{t}</td>" in section] == ["T5", "T4", "T3"]
    assert section.index("<td>T5</td>") < section.index("<td>T3</td>") and "0.930 / 0.500" in section
    case = client.get("/cases/1").text
    assert 'id="card-scores"' in case and "<td>T4</td>" in case and "<td>T9</td>" not in case


def test_a_run_without_the_train_extra_fails_with_one_clear_line(
    client: TestClient, console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    login(client, "otto")
    upload_id = _upload(client, handbook_csv(tmp_path / "h.csv", days=4, users=20, bad_rows=False))
    token = csrf_of(client.get(f"/uploads/{upload_id}").text)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in an installation without [train]
    client.post("/runs/train", data={"csrf_token": token, "upload_id": upload_id, "config": TINY})
    assert console.jobs.wait_idle(60)
    (run,) = _runs(console)
    assert run.status == "failed" and run.error is not None
    assert run.error.startswith("this command needs the [train] extra (matplotlib is not installed)")


def test_a_backtest_on_the_topics_needs_its_range(client: TestClient, console: Console) -> None:
    login(client, "otto")
    token = csrf_of(client.get("/runs").text)
    for data in ({"source": "topics"}, {"source": "topics", "start": "2018-04-02"}, {"source": "disk"}, {}):
        response = client.post("/runs/backtest", data={"csrf_token": token, **data})
        assert response.status_code == 400, data
    assert _runs(console) == [] and _audit(console, "backtest.start") == []
