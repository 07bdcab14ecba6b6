"""A throwaway PostgreSQL server for the integration tests: Debian's postgresql package, initdb + pg_ctl.

The server listens on 127.0.0.1:TEST_POSTGRES_PORT (scripts/test.sh sets it; default 29432) with its data folder in
a temporary directory, runs as the `postgres` user when the tests run as root (PostgreSQL refuses root), and is
stopped at the end of the session. With FRAUD_DATABASE__URL set to a postgresql:// URL, that server is used instead
and nothing is started. Each test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_PORT = 29432
USER = "fraudstream"


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise AssertionError(f"{name} not found: install Debian's postgresql package (bash scripts/setup.sh does)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A server URL without a database name: postgresql://user@127.0.0.1:port."""
    external = os.environ.get("FRAUD_DATABASE__URL", "")
    if external.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        yield external.rsplit("/", 1)[0]
        return
    port = int(os.environ.get("TEST_POSTGRES_PORT", DEFAULT_PORT))
    folder = Path(tempfile.mkdtemp(prefix="fraudstream-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        _as_server_user([_pg_bin("initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    started = subprocess.run(
        _as_server_user([_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                         "-t", "60", "start"]),
        capture_output=True, text=True, timeout=90, check=False,
    )
    if started.returncode != 0:
        log = (folder / "log").read_text() if (folder / "log").is_file() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise AssertionError(f"PostgreSQL did not start on port {port}: {started.stderr}{log[-2000:]}")
    try:
        yield f"postgresql://{USER}@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_server_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"{postgres_url}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
