"""The registry's audit trail: every move of `current` as one JSON line appended to <registry>/audit.jsonl.

Append-only: each record is written with one O_APPEND write (a line far below PIPE_BUF, so concurrent writers never
interleave) and fsynced; nothing ever rewrites the file. A record says who (the actor), what (publish, promote,
rollback), when (UTC), the version made current and the one it replaced. The history of `current` that `rollback`
needs is replayed from it (`current_history`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fraudstream.errors import ArtifactIntegrityError

AUDIT_FILE = "audit.jsonl"
Action = Literal["publish", "promote", "rollback"]


@dataclass(frozen=True)
class AuditRecord:
    at: str
    actor: str
    action: str
    version: str
    previous: str | None
    forced: bool = False


def audit_path(root: Path) -> Path:
    return Path(root) / AUDIT_FILE


def append_audit(
    root: Path, *, action: Action, actor: str, version: str, previous: str | None, forced: bool = False,
    at: datetime | None = None,
) -> AuditRecord:  # fmt: skip
    record = AuditRecord((at or datetime.now(UTC)).isoformat(timespec="microseconds"), actor, action, version,
                         previous, forced)  # fmt: skip
    line = (json.dumps(asdict(record), separators=(",", ":")) + "\n").encode()
    fd = os.open(audit_path(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read_audit(root: Path) -> Iterator[AuditRecord]:
    path = audit_path(root)
    if not path.is_file():
        return
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield AuditRecord(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ArtifactIntegrityError(
                    f"{path} line {number} is not an audit record ({type(exc).__name__}); the file is append-only: "
                    "restore it from a backup"
                ) from None


def current_history(root: Path) -> list[str]:
    """The versions that were current, oldest first, as the audit trail tells it: a publish or promote pushes its
    version, a rollback pops back to its target. The last entry is what the trail says is current."""
    stack: list[str] = []
    for record in read_audit(root):
        if record.action == "rollback":
            while stack and stack[-1] != record.version:
                stack.pop()
            if not stack:
                stack.append(record.version)
        elif not stack or stack[-1] != record.version:
            stack.append(record.version)
    return stack
