"""Training runs and backtests started from the console, run one at a time by a worker thread of the console process.

A run is a `console_runs` row (queued -> running -> done | failed) and a folder `<runs_dir>/runs/<id>/` where the
training report (report.json, report.md, plots) or the backtest report (report.md, report.json, plots, scores) is
written. The worker records progress (a message, done/total steps) in the row as it goes; the run's page polls it.
A run that was running when the console stopped is marked failed at the next start; queued runs are taken up again.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from console.schema import JobRun
from console.uploads import get_upload, runs_dir
from fraudstream.clock import Clock
from fraudstream.errors import InputError, InternalError
from fraudstream.settings import Settings

log = logging.getLogger(__name__)
PLOT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}\.png$")
#: A backtest without a range replays this many days up to the end of its history.
DEFAULT_BACKTEST_DAYS = 7


def run_folder(settings: Settings, run_id: int) -> Path:
    return runs_dir(settings) / "runs" / str(int(run_id))


def plot_path(settings: Settings, run_id: int, name: str) -> Path:
    """A plot file of a run's folder; InputError for any other name (no separators, no dot-dot, .png only)."""
    folder = run_folder(settings, run_id).resolve()
    if not PLOT_NAME.fullmatch(name):
        raise InputError(f"no plot {name[:80]!r} in run {run_id}")
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise InputError(f"no plot {name!r} in run {run_id}")
    return path


def plots_of(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png") if PLOT_NAME.fullmatch(p.name)) if folder.is_dir() else []


class Progress:
    """Writes a run's progress to its row, at most every `every_s` seconds (and always for a new message)."""

    def __init__(self, sessions: sessionmaker[Session], run_id: int, every_s: float = 0.5) -> None:
        self.sessions, self.run_id, self.every_s = sessions, run_id, every_s
        self.message, self.done = "", 0
        self.total: int | None = None
        self._last = 0.0

    def say(self, message: str, *, step: bool = False) -> None:
        self.message = message[:300]
        if step:
            self.done += 1
        self._write(force=True)

    def set_total(self, total: int) -> None:
        self.total, self.done = total, 0
        self._write(force=True)

    def advance(self, n: int) -> None:
        self.done += n
        self._write(force=False)

    def _write(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        with self.sessions.begin() as db:
            run = db.get(JobRun, self.run_id)
            if run is not None:
                run.message, run.done_steps, run.total_steps = self.message, self.done, self.total


class JobRunner:
    """One worker thread that takes queued runs in order. `submit` after the row is committed."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.settings, self.sessions, self.clock = settings, sessions, clock
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.sessions.begin() as db:
            for run in db.scalars(select(JobRun).where(JobRun.status == "running")):
                run.status, run.finished_at = "failed", self.clock.now()
                run.error = "the console stopped while this run was going; start it again"
            waiting = list(db.scalars(select(JobRun.id).where(JobRun.status == "queued").order_by(JobRun.id)))
        self._thread = threading.Thread(target=self._work, name="console-jobs", daemon=True)
        self._thread.start()
        for run_id in waiting:
            self._queue.put(run_id)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Takes no new run; one in progress goes on in the daemon thread until the process ends."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def submit(self, run_id: int) -> None:
        self._queue.put(run_id)

    def wait_idle(self, timeout_s: float) -> bool:
        """For tests and shutdown: True once every submitted run has finished."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False

    def _work(self) -> None:
        while True:
            run_id = self._queue.get()
            try:
                if run_id is None:
                    return
                self._run(run_id)
            finally:
                self._queue.task_done()

    def _run(self, run_id: int) -> None:
        with self.sessions.begin() as db:  # claimed by one conditional update: never run twice
            claimed: CursorResult[Any] = db.execute(  # type: ignore[assignment]
                update(JobRun).where(JobRun.id == run_id, JobRun.status == "queued")
                .values(status="running", started_at=self.clock.now(), message="starting"))
            run = db.get(JobRun, run_id) if claimed.rowcount == 1 else None
            if run is None:
                return
            kind, upload_id, options = run.kind, run.upload_id, json.loads(run.options)
        progress = Progress(self.sessions, run_id)
        folder = run_folder(self.settings, run_id)
        error: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            history = get_upload(self.settings, upload_id).history if upload_id else None  # None: the topics
            execute = train_run if kind == "train" else backtest_run
            execute(self.settings, history, folder, options, progress)
        except Exception as exc:  # the worker's one broad except: a failed run fails that run only
            from fraudstream.boundary import translate

            translated = translate(exc, self.settings)  # a missing [train] extra, Redis down, ...: one clear line
            if isinstance(translated, InternalError):
                log.exception("console run %s (%s) failed", run_id, kind)
            error = str(translated)
        with self.sessions.begin() as db:
            run = db.get(JobRun, run_id)
            if run is not None:
                run.status = "failed" if error else "done"
                run.error, run.finished_at = error, self.clock.now()
                run.message = "failed" if error else "done"
                if not error and run.total_steps:
                    run.done_steps = run.total_steps


def train_run(
    settings: Settings, history: Path | None, folder: Path, options: dict[str, Any], progress: Progress
) -> None:
    """`fraudstream train --history FILE [--config] [--no-publish]` into the run folder."""
    if history is None:
        raise InputError("a training run needs an uploaded history")
    from features.config import FeatureConfig
    from training.config import training_config
    from training.history import read_history
    from training.pipeline import run_training
    from training.report import write_report

    cfg = training_config(options.get("config") or {})
    publish = bool(options.get("publish"))
    folds = cfg.prequential.n_folds if cfg.protocol == "prequential" else 1
    progress.set_total(1 + folds + int(publish) + 1)  # features, each fold, the published fit, the report
    frame = read_history(history)
    registry = None
    if publish:
        from models.registry import ModelRegistry

        registry = ModelRegistry.from_settings(settings)
    report = run_training(frame, cfg, FeatureConfig.from_settings(settings.features), registry=registry,
                          force=bool(options.get("force")), progress=lambda msg: progress.say(msg, step=True))
    progress.say("writing the report")
    write_report(report, folder)


def backtest_run(
    settings: Settings, history: Path | None, folder: Path, options: dict[str, Any], progress: Progress
) -> None:
    """`fraudstream backtest --fast (--history FILE | --from-topic) --model M --start --end` into the run folder."""
    import pandas as pd

    from backtest.job import run_backtest
    from backtest.runner import BacktestOptions

    start, end = _when(options.get("start")), _when(options.get("end"))
    if history is None and (start is None or end is None):
        raise InputError("a backtest on the topics needs a start and an end")
    if history is not None and (start is None or end is None):
        stamps = pd.read_parquet(history, columns=["timestamp"])["timestamp"]
        last = pd.Timestamp(stamps.max()).to_pydatetime()
        end = end or last + timedelta(seconds=1)
        start = start or end - timedelta(days=DEFAULT_BACKTEST_DAYS)
    assert start is not None and end is not None
    if start >= end:
        raise InputError("the backtest's start must be before its end")
    opts = BacktestOptions(report_dir=folder, history=history, from_topic=history is None, start=start, end=end,
                           model=str(options.get("model") or "current"), fast=True)
    run_backtest(settings, opts, say=progress.say, on_total=progress.set_total, advance=progress.advance)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{value!r} is not a date or ISO time like 2018-07-04") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
