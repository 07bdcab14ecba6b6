"""Ops' pages for training runs and backtests: upload a history, start a run, watch it, read its report.

Uploads are validated by the importer (console.uploads); runs go to the console's worker thread (console.jobs).
Every upload and every start is an audit row. Plot files are served from the run's own folder by plain file name
only (console.jobs.plot_path): no path ever comes from the request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from console import audit
from console.jobs import plot_path, plots_of, run_folder
from console.roles import Permission
from console.schema import JobRun, User
from console.uploads import get_upload, list_uploads, shown_rejects, store_upload
from console.web import client_source, csrf_protect, get_db, render, require, state_of
from fraudstream.errors import ConfigError, InfraError, InputError

router = APIRouter()
CSRF = [Depends(csrf_protect)]
OPS = Depends(require(Permission.run_jobs))


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _run_or_404(db: Session, run_id: int) -> JobRun:
    run = db.get(JobRun, run_id)
    if run is None:
        raise InputError(f"no run {run_id}")
    return run


@router.get("/runs", response_class=HTMLResponse)
def run_list(request: Request, user: User = OPS, db: Session = Depends(get_db)) -> Response:
    runs = list(db.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(200)))
    return render(request, "runs.html", user, runs=runs, uploads=list_uploads(state_of(request).settings))


@router.post("/uploads", dependencies=CSRF)
def upload_history(
    request: Request, file: UploadFile = File(...), user: User = OPS, db: Session = Depends(get_db)
) -> Response:
    state = state_of(request)
    now = state.clock.now()
    upload = store_upload(state.settings, file.file, file.filename or "upload", uploaded_by=user.username, at=now)
    audit.record(db, at=now, actor=user.username, action="history.upload", target=f"upload:{upload.id}",
                 source=client_source(request), filename=upload.meta["filename"], accepted=upload.meta["accepted"],
                 rejected=upload.meta["rejected"])
    db.commit()
    return _redirect(f"/uploads/{upload.id}")


@router.get("/uploads/{upload_id}", response_class=HTMLResponse)
def upload_detail(upload_id: str, request: Request, user: User = OPS) -> Response:
    upload = get_upload(state_of(request).settings, upload_id)
    header, rows = shown_rejects(upload)
    return render(request, "upload.html", user, upload=upload, meta=upload.meta, reject_header=header,
                  reject_rows=rows)


@router.get("/uploads/{upload_id}/rejects.csv")
def upload_rejects(upload_id: str, request: Request, user: User = OPS) -> Response:
    upload = get_upload(state_of(request).settings, upload_id)
    if not upload.rejects.is_file():
        raise InputError(f"upload {upload_id} has no rejected rows")
    return FileResponse(upload.rejects, media_type="text/csv", filename=f"rejects-{upload_id[:8]}.csv")


def _start(request: Request, db: Session, user: User, kind: str, upload_id: str, options: dict[str, Any]) -> int:
    """The queued run row and its audit row in one transaction, then handed to the worker."""
    state = state_of(request)
    if state.jobs is None:
        raise InfraError("this console runs no worker for training and backtests")
    if upload_id or kind == "train":
        get_upload(state.settings, upload_id)
    now = state.clock.now()
    run = JobRun(kind=kind, status="queued", started_by=user.username, upload_id=upload_id,
                 options=json.dumps(options, sort_keys=True), message="queued", done_steps=0, created_at=now)
    db.add(run)
    db.flush()
    audit.record(db, at=now, actor=user.username, action=f"{kind}.start", target=f"run:{run.id}",
                 source=client_source(request), upload=upload_id or None, **options)
    db.commit()
    state.jobs.submit(run.id)
    return run.id


@router.post("/runs/train", dependencies=CSRF)
def start_training(
    request: Request, upload_id: str = Form(...), config: str = Form(""), publish: str = Form(""),
    force: str = Form(""), user: User = OPS, db: Session = Depends(get_db),
) -> Response:
    from training.config import training_config

    try:
        data = yaml.safe_load(config) if config.strip() else {}
    except yaml.YAMLError as exc:
        raise InputError(f"the training config is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError("the training config must be a YAML mapping of keys to values (see training/config.py)")
    try:
        training_config(data)  # one clear line now rather than a failed run later
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    run_id = _start(request, db, user, "train", upload_id,
                    {"config": data, "publish": publish == "1", "force": force == "1"})
    return _redirect(f"/runs/{run_id}")


@router.post("/runs/backtest", dependencies=CSRF)
def start_backtest(
    request: Request, upload_id: str = Form(""), source: str = Form("upload"), start: str = Form(""),
    end: str = Form(""), model: str = Form("current"), user: User = OPS, db: Session = Depends(get_db),
) -> Response:
    """On an upload, or (source=topics) on the history stored in the transactions and labels topics."""
    from console.jobs import _when

    begin, until = _when(start.strip()), _when(end.strip())
    if source not in ("upload", "topics"):
        raise InputError("source must be 'upload' or 'topics'")
    if source == "topics" and (begin is None or until is None):
        raise InputError("a backtest on the topics needs a start and an end (the time range of the transactions)")
    if source == "upload" and not upload_id:
        raise InputError("choose an uploaded history to backtest on")
    if begin is not None and until is not None and begin >= until:
        raise InputError("the backtest's start must be before its end")
    options = {"start": begin.isoformat() if begin else None, "end": until.isoformat() if until else None,
               "model": model.strip() or "current", "fast": True, "input": source}
    upload_id = upload_id if source == "upload" else ""
    run_id = _start(request, db, user, "backtest", upload_id, options)
    return _redirect(f"/runs/{run_id}")


def _report(folder: Path) -> dict[str, Any] | None:
    path = folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_detail(run_id: int, request: Request, user: User = OPS, db: Session = Depends(get_db)) -> Response:
    run = _run_or_404(db, run_id)
    folder = run_folder(state_of(request).settings, run_id)
    done = run.status == "done"
    report = _report(folder) if done else None
    markdown = (folder / "report.md").read_text() if done and (folder / "report.md").is_file() else ""
    return render(request, "run.html", user, run=run, options=json.loads(run.options), report=report,
                  markdown=markdown, plots=plots_of(folder) if done else [])


@router.get("/runs/{run_id}/status", response_class=HTMLResponse)
def run_status(run_id: int, request: Request, user: User = OPS, db: Session = Depends(get_db)) -> Response:
    """The run's status block alone, fetched by console.js every 2 s until the run has finished."""
    return render(request, "_run_status.html", user, run=_run_or_404(db, run_id))


@router.get("/runs/{run_id}/files/{name}")
def run_file(run_id: int, name: str, request: Request, user: User = OPS, db: Session = Depends(get_db)) -> Response:
    _run_or_404(db, run_id)
    return FileResponse(plot_path(state_of(request).settings, run_id, name), media_type="image/png")
