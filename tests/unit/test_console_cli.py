"""`fraudstream console migrate` and `console create-user` in-process, on a SQLite file in a temporary state folder."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from console.passwords import verify_password
from console.schema import AuditEvent, User
from fraudstream.cli import run


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [k for k in os.environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FRAUD_EMBEDDED__STATE_DIR", str(tmp_path))
    return tmp_path


def _create(monkeypatch: pytest.MonkeyPatch, *argv: str, password: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return run(["console", "create-user", *argv, "--password-stdin"])


def test_migrate_then_create_the_first_admin(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["console", "migrate"]) == 0
    assert "at revision 0002" in capsys.readouterr().out
    assert _create(monkeypatch, "root-admin", password="a-long-admin-password") == 0
    assert _create(monkeypatch, "root-admin", password="a-long-admin-password") == 2
    assert "exists already" in capsys.readouterr().err
    assert _create(monkeypatch, "ana", "--role", "analyst", password="short") == 2
    assert "shorter than 12 characters" in capsys.readouterr().err
    engine = create_engine(f"sqlite:///{state / 'console.db'}")
    with Session(engine) as db:
        users = {u.username: u for u in db.scalars(select(User))}
        assert set(users) == {"root-admin"} and users["root-admin"].role == "admin"
        assert verify_password(users["root-admin"].password_hash, "a-long-admin-password")
        assert users["root-admin"].password_hash.startswith("$argon2id$")
        (event,) = db.scalars(select(AuditEvent))
        assert (event.actor, event.action, event.target) == ("cli", "user.create", "root-admin")
        assert event.source.startswith("cli@") and json.loads(event.detail) == {"role": "admin"}
    engine.dispose()


def test_an_unreachable_database_is_one_line_and_exit_69(
    state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAUD_DATABASE__URL", "postgresql://console:secret@127.0.0.1:1/console")
    assert run(["console", "migrate"]) == 69
    err = capsys.readouterr().err
    assert "cannot migrate the console database postgresql+psycopg://console:***@127.0.0.1:1/console" in err
    assert "secret" not in err and "FRAUD_DATABASE__URL" in err and "Traceback" not in err
