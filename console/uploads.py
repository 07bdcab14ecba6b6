"""Histories uploaded to the console: validated by the project's importer, kept as canonical Parquet with their rejects.

Each upload is a folder `<runs_dir>/uploads/<id>/` (id: 32 hex digits, never a name the user chose) holding
`history.parquet` (the accepted rows), `rejects.csv` (the rejected source rows with `source_row` and
`reject_reason`, when any) and `upload.json` (who, when, the original file name, the counts). The handbook's TX_*
columns are recognised; any other file must use the canonical column names.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from fraudstream.errors import DataError, InputError
from fraudstream.settings import Settings

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
SUFFIXES = (".csv", ".parquet")
#: Rejected rows shown on the page (all of them are in the downloadable CSV).
SHOWN_REJECTS = 50


def runs_dir(settings: Settings) -> Path:
    return settings.console.runs_dir or settings.embedded.state_dir / "console-runs"


def uploads_dir(settings: Settings) -> Path:
    return runs_dir(settings) / "uploads"


@dataclass(frozen=True)
class Upload:
    id: str
    folder: Path
    meta: dict[str, Any]

    @property
    def history(self) -> Path:
        return self.folder / "history.parquet"

    @property
    def rejects(self) -> Path:
        return self.folder / "rejects.csv"


def upload_folder(settings: Settings, upload_id: str) -> Path:
    """The folder of an upload id; InputError for anything that is not one (no path ever comes from the user)."""
    if not UPLOAD_ID.fullmatch(upload_id):
        raise InputError(f"no upload {upload_id[:40]!r}")
    return uploads_dir(settings) / upload_id


def get_upload(settings: Settings, upload_id: str) -> Upload:
    folder = upload_folder(settings, upload_id)
    meta = folder / "upload.json"
    if not meta.is_file():
        raise InputError(f"no upload {upload_id!r}")
    return Upload(upload_id, folder, json.loads(meta.read_text()))


def list_uploads(settings: Settings) -> list[Upload]:
    root = uploads_dir(settings)
    found = [get_upload(settings, p.name) for p in root.iterdir()
             if UPLOAD_ID.fullmatch(p.name) and (p / "upload.json").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda u: str(u.meta.get("uploaded_at", "")), reverse=True)


def _mapping_for(columns: list[str]) -> Any:
    from bankbus.importer import HANDBOOK, KNOWN, ColumnMapping

    if "TX_DATETIME" in columns:
        return HANDBOOK
    return ColumnMapping(columns={c: c for c in columns if c in KNOWN})


def store_upload(
    settings: Settings, stream: IO[bytes], filename: str, *, uploaded_by: str, at: datetime
) -> Upload:
    """Copy the upload (at most console.upload_max_bytes), validate it with the importer, keep what it accepts.

    InputError/DataError (one line) for a wrong type, a file too large, missing columns, no labels or no valid
    row; the folder is then removed."""
    from bankbus.frames import write_canonical
    from bankbus.importer import import_frame, read_source

    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{filename!r}: upload a .csv or .parquet file")
    upload_id = uuid.uuid4().hex
    folder = upload_folder(settings, upload_id)
    folder.mkdir(parents=True)
    try:
        source = folder / f"source{suffix}"
        limit = settings.console.upload_max_bytes
        with source.open("wb") as out:
            copied = 0
            while chunk := stream.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise InputError(f"{filename!r} is larger than {limit:,} bytes (FRAUD_CONSOLE__UPLOAD_MAX_BYTES)")
                out.write(chunk)
        raw = read_source(source)
        result = import_frame(raw, _mapping_for([str(c) for c in raw.columns]), where=filename)
        if "is_fraud" not in result.frame.columns:
            raise DataError(f"{filename!r} has no is_fraud (or TX_FRAUD) column: training and backtests need labels")
        if len(result.rejects):
            result.rejects.to_csv(folder / "rejects.csv", index=False)
        if result.frame.empty:
            first = result.rejects["reject_reason"].iloc[0]
            raise DataError(f"{filename!r}: all {result.source_rows:,} rows were rejected (first reason: {first})")
        write_canonical(result.frame, folder / "history.parquet")
        source.unlink()
        meta = {
            "id": upload_id, "filename": Path(filename).name[:200], "uploaded_by": uploaded_by,
            "uploaded_at": at.isoformat(), "source_rows": result.source_rows, "accepted": len(result.frame),
            "rejected": len(result.rejects), "frauds": int(result.frame["is_fraud"].sum()),
            "first": str(result.frame["timestamp"].iloc[0]), "last": str(result.frame["timestamp"].iloc[-1]),
        }
        (folder / "upload.json").write_text(json.dumps(meta, indent=2))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Upload(upload_id, folder, meta)


def shown_rejects(upload: Upload) -> tuple[list[str], list[list[str]]]:
    """The first SHOWN_REJECTS rejected rows (header, rows) for the page."""
    import csv

    if not upload.rejects.is_file():
        return [], []
    with upload.rejects.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows = [row for _, row in zip(range(SHOWN_REJECTS), reader, strict=False)]
    return header, rows
