"""The console's models page: ops promote and roll back through the registry (audited in both trails), admins read,
analysts are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.db import session_factory
from console.schema import AuditEvent
from console.server import Console, build_console
from fraudstream.clock import ManualClock
from models.audit import read_audit
from models.registry import ModelRegistry
from tests.conftest import make_test_settings
from tests.console_support import T0, LabelRecorder, add_users, console_settings, csrf_of, login
from tests.streamer_support import publish_tiny_model


@pytest.fixture(scope="module")
def registry_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("registry")
    first = publish_tiny_model(root, seed=0)
    second = publish_tiny_model(root, seed=1)
    return root, first, second


@pytest.fixture
def models_console(tmp_path: Path, registry_versions: tuple[Path, str, str]) -> Iterator[Console]:
    import shutil

    root = tmp_path / "registry"
    shutil.copytree(registry_versions[0], root)
    clock = ManualClock(T0)
    settings = console_settings(make_test_settings(registry={"path": str(root)}), tmp_path)
    console = build_console(settings, clock=clock, publish=LabelRecorder(), consume=False)
    add_users(console, clock)
    yield console
    console.engine.dispose()


def _registry(console: Console) -> ModelRegistry:
    return ModelRegistry(console.app.state.console.settings.registry.path)


def test_ops_roll_back_and_promote_audited_in_both_trails(
    models_console: Console, registry_versions: tuple[Path, str, str]
) -> None:
    _root, first, second = registry_versions
    with TestClient(models_console.app) as client:
        login(client, "otto")
        page = client.get("/models")
        assert page.status_code == 200 and first in page.text and second in page.text and 'id="rollback"' in page.text
        assert _registry(models_console).current_version() == second
        done = client.post("/models/rollback", data={"csrf_token": csrf_of(page.text)})
        assert done.status_code == 200 and f"rolled back to {first}" in done.text
        assert _registry(models_console).current_version() == first
        done = client.post(f"/models/{second}/promote", data={"csrf_token": csrf_of(page.text)})
        assert done.status_code == 200 and _registry(models_console).current_version() == second
        unknown = client.post("/models/nope/promote", data={"csrf_token": csrf_of(page.text)})
        assert unknown.status_code == 400 and "no model version" in unknown.text and "nope" in unknown.text
    trail = [(r.actor, r.action, r.version, r.previous) for r in read_audit(_registry(models_console).root)]
    assert trail[-2:] == [("otto", "rollback", first, second), ("otto", "promote", second, first)]
    with session_factory(models_console.engine)() as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.action.like("model.%")).order_by(AuditEvent.id)))
    assert [(e.actor, e.action, e.target, e.source) for e in events] == [
        ("otto", "model.rollback", f"model:{first}", "testclient"),
        ("otto", "model.promote", f"model:{second}", "testclient"),
    ]
    assert json.loads(events[0].detail) == {"forced": True, "new": first, "old": second}


def test_admins_read_models_but_cannot_change_them_and_analysts_see_none(
    models_console: Console, registry_versions: tuple[Path, str, str]
) -> None:
    _root, first, _second = registry_versions
    with TestClient(models_console.app) as client:
        login(client, "ada")
        page = client.get("/models")
        assert page.status_code == 200 and first in page.text
        assert "Make current" not in page.text and 'id="rollback"' not in page.text and "Read-only" in page.text
        token = csrf_of(page.text)
        assert client.post(f"/models/{first}/promote", data={"csrf_token": token, "force": "1"}).status_code == 403
        assert client.post("/models/rollback", data={"csrf_token": token}).status_code == 403
        client.cookies.clear()
        login(client, "ana")
        assert client.get("/models").status_code == 403
    assert _registry(models_console).current_version() == registry_versions[2]


def test_a_version_s_manifest_and_two_versions_compared(
    models_console: Console, registry_versions: tuple[Path, str, str]
) -> None:
    _root, first, second = registry_versions
    with TestClient(models_console.app) as client:
        login(client, "ada")
        detail = client.get(f"/models/{first}")
        assert detail.status_code == 200 and "feature_spec_hash" in detail.text and "holdout_id" in detail.text
        compared = client.get(f"/models/compare?a={first}&b={second}")
        assert compared.status_code == 200
        assert "metrics.average_precision" in compared.text and "threshold.stack" in compared.text
        assert first in compared.text and second in compared.text and 'class="differs"' in compared.text
        assert client.get(f"/models/compare?a={first}&b=nope").status_code == 400
        assert client.get("/models/nope").status_code == 400
        client.cookies.clear()
        login(client, "ana")
        assert client.get(f"/models/{first}").status_code == 403
