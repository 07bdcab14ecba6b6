"""The quix-streams reference pipeline (bench/quix/app.py) in the bench: its own virtualenv, one max run.

quixstreams 3.28.1 pins confluent-kafka<2.13 and pydantic<2.14, below the project's, so it lives in a virtualenv of
its own: built on first use under .fraudstream/quix-venv (ignored) with this Python, from the fully pinned
bench/quix/requirements.txt (PyPI only), and rebuilt when that file changes. The app runs there as a subprocess on the
bench's backlog, with its own consumer group, state folder and output topic; its rate is measured from the output
topic exactly as the engines' are (bench/e2e.py run_max: ScoreCollector, read_committed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.monitor import ProcessMonitor
from bench.streams import REPO, EngineProcess, ScoreCollector
from fraudstream.errors import InfraError, ModelError

if TYPE_CHECKING:
    from bench.e2e import E2EContext
    from fraudstream.settings import Settings

NAME = "quix-streams reference"
APP = REPO / "bench" / "quix" / "app.py"
REQUIREMENTS = REPO / "bench" / "quix" / "requirements.txt"
VENV = REPO / ".fraudstream" / "quix-venv"
MARKER = ".requirements-sha256"  # inside the venv: the requirements it was built from
COMMIT_INTERVAL_S = 5.0  # quix-streams' default commit_interval


def requirements_digest(path: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path = VENV, requirements: Path = REQUIREMENTS, say: Any = print) -> Path:
    """The venv's Python, building the venv first if it is missing or was built from other requirements.

    Built in a sibling folder and moved into place only once pip succeeded, so a failed build leaves nothing that
    looks usable. InfraError (one line: what failed, what to do) when it cannot be built."""
    digest = requirements_digest(requirements)
    marker = venv / MARKER
    if venv_python(venv).is_file() and marker.is_file() and marker.read_text().strip() == digest:
        return venv_python(venv)
    say(f"building the quix-streams reference virtualenv in {venv} (pip, from {requirements.name})")
    staging = venv.with_name(f"{venv.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(staging)],
             [str(venv_python(staging)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
              "-r", str(requirements)]]
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1][:300]
                raise InfraError(
                    f"the quix-streams reference virtualenv could not be built ({Path(step[0]).name} "
                    f"{' '.join(step[1:3])} exited {done.returncode}: {last}); check PyPI access, or skip it with "
                    "--no-quix"
                )
        (staging / MARKER).write_text(digest + "\n")
        shutil.rmtree(venv, ignore_errors=True)
        os.replace(staging, venv)
    except subprocess.TimeoutExpired:
        raise InfraError("building the quix-streams reference virtualenv took over 30 minutes; skip it with "
                         "--no-quix") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return venv_python(venv)


def model_dir(settings: Settings) -> Path:
    from models.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings)
    version = registry.current_version()
    if version is None:
        raise ModelError(f"no current model in {registry.root} for the quix-streams reference; train one first")
    registry.verify(version)  # its signature and hashes hold before another process reads its files
    return registry.root / "versions" / version


@dataclass
class QuixProcess(EngineProcess):
    """bench/quix/app.py in its venv, sampled by a ProcessMonitor; SIGTERM stops it (quix commits and closes)."""

    command: list[str] = field(default_factory=list)

    def start(self) -> QuixProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "PYTHON", "VIRTUAL_ENV"))}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.monitor = ProcessMonitor(self.process.pid).start()
        return self


def drop_changelogs(settings: Settings, group: str) -> None:
    """quix's changelog topics of this run (changelog__<group>--...)."""
    from fraudstream.infra.topics import admin_client

    admin = admin_client(settings)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"changelog__{group}--")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - cleanup never hides the measurement
                pass


def run_quix_max(ctx: E2EContext, source: str, count: int) -> dict[str, Any]:
    """The reference app drains the backlog: sustained events/s, CPU, peak RSS (as bench.e2e.run_max)."""
    from bench.e2e import Neighbours, _monotonic_of, sustained_rate

    python = ensure_venv()
    settings = ctx.isolated("qmax", transactions=source)
    group = settings.streamer.consumer_group
    state = ctx.workdir / "quix-state"
    command = [str(python), str(APP), "--broker", settings.bootstrap_servers, "--input", source,
               "--output", settings.topics.scores, "--dlq", settings.topics.dlq, "--group", group,
               "--state-dir", str(state), "--model-dir", str(model_dir(settings)),
               "--commit-interval", str(COMMIT_INTERVAL_S)]
    neighbours = Neighbours(settings)
    collector = ScoreCollector(settings).start()
    worker = QuixProcess(settings, NAME, ctx.workdir / "quix-max.log", command=command).start()
    started = time.monotonic()
    try:
        collector.wait_for(count, worker, stall_s=180)
    finally:
        worker.stop()
        collector.stop()
        drop_changelogs(settings, group)
        shutil.rmtree(state, ignore_errors=True)
    times = list(collector.times_ms.values())
    assert worker.monitor is not None
    first, last = _monotonic_of(min(times)), _monotonic_of(max(times))
    return {
        "engine": NAME, "mode": "max", "events": len(times), "duplicates": collector.duplicates,
        "events_per_s": sustained_rate(times), "wall_incl_startup_s": round(time.monotonic() - started, 1),
        "cpu_percent": worker.monitor.cpu_percent(first, last), "peak_rss_mib": worker.monitor.peak_rss_mib,
        **neighbours.stop(first, last), "processing_guarantee": "exactly-once",
        "commit_interval_s": COMMIT_INTERVAL_S, "quixstreams": _pinned("quixstreams"),
    }


def _pinned(package: str) -> str | None:
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    return None
