"""The embedded redis-server (Debian package), on 127.0.0.1 with our own port and folder, AOF persistence."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fraudstream.errors import InfraError
from fraudstream.infra.processes import port_open, read_pid, stop_pid, tail, wait_until
from fraudstream.settings import Settings


def root(settings: Settings) -> Path:
    return settings.embedded.state_dir.resolve() / "redis"


def pid_file(settings: Settings) -> Path:
    return root(settings) / "redis.pid"


def redis_server_binary() -> str:
    """The redis-server binary; installs the Debian package when it is missing and we are root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InfraError("redis-server is not installed; install the Debian package redis-server, or point "
                         "FRAUD_REDIS__URL at an existing Redis")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        result = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise InfraError(f"could not install redis-server ({' '.join(step)}): "
                             f"{(result.stderr or result.stdout).strip()[-300:]}")
    # The package starts a system-wide redis on 6379; we never use it, and leave it to the system.
    found = shutil.which("redis-server")
    if not found:
        raise InfraError("redis-server was installed but is not on PATH")
    return found


def running_pid(settings: Settings) -> int | None:
    return read_pid(pid_file(settings))


def start(settings: Settings) -> bool:
    """Start our redis-server unless it is already running. True when this call started it."""
    port = settings.embedded.redis_port
    folder = root(settings)
    if read_pid(pid_file(settings)) is not None:
        return False
    if port_open(port):
        raise InfraError(f"port {port} on 127.0.0.1 is already taken by another process; stop it, or choose "
                         "another port with FRAUD_EMBEDDED__REDIS_PORT")
    binary = redis_server_binary()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "redis.log"
    result = subprocess.run(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--daemonize", "yes",
         "--pidfile", str(pid_file(settings)), "--logfile", str(log), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"redis-server failed to start: {(result.stderr or result.stdout).strip()}")
    if not wait_until(lambda: port_open(port), 20.0):
        raise InfraError(f"redis-server did not open port {port}; see {log}: {tail(log)}")
    wait_until(lambda: read_pid(pid_file(settings)) is not None, 5.0)
    return True


def stop(settings: Settings) -> bool:
    return stop_pid(pid_file(settings), timeout_s=30.0)
