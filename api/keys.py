"""API keys, hashed at rest: a JSON file holds each key's id, name, sha256 and dates, never the key itself.

A key is `fsk_<id>_<secret>`: the id (8 hex characters) names it in logs and in `revoke-key`, the secret is 32
random bytes (URL-safe base64). With that much entropy one unsalted sha256 is enough (nothing to brute-force, unlike
a password). The file is replaced atomically (mode 0600) on every change; a running server rereads it when it
changes, so a revoked key is refused from its next request on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fraudstream.clock import Clock, SystemClock
from fraudstream.errors import ConfigError, InputError

KEY_PREFIX = "fsk_"
FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_KEY_PATTERN = re.compile(r"^fsk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    sha256: str
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyFile:
    """The keys file: create and revoke (the CLI), authenticate (the server, rereading the file when it changed)."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._by_digest: dict[str, ApiKey] = {}

    # reading ------------------------------------------------------------------------------------------------
    def keys(self) -> list[ApiKey]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
            return [ApiKey(**item) for item in data["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the API keys file {self.path} cannot be read ({type(exc).__name__}: {exc}); restore it from a "
                "backup or move it away and create new keys"
            ) from None

    def authenticate(self, key: str | None) -> ApiKey | None:
        """The active key `key` is, or None (unknown, malformed or revoked). Rereads the file if it changed."""
        if not key or _KEY_PATTERN.fullmatch(key) is None:
            return None
        self._refresh()
        digest = key_digest(key)
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(found.sha256, digest) or not found.active:
            return None
        return found

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        if seen == self._seen and (seen is not None or not self._by_digest):
            return
        with self._lock:
            keys = self.keys() if seen is not None else []
            self._by_digest = {k.sha256: k for k in keys if k.active}
            self._seen = seen

    # writing ------------------------------------------------------------------------------------------------
    def create(self, name: str, actor: str) -> tuple[str, ApiKey]:
        """A new key named `name` (unique among active keys): returns the key (shown once) and its record."""
        if NAME_PATTERN.fullmatch(name) is None:
            raise InputError(
                f"key name {name!r} is not allowed: 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter "
                "or digit"
            )
        with self._exclusive():
            return self._create(name, actor)

    def _create(self, name: str, actor: str) -> tuple[str, ApiKey]:
        keys = self.keys()
        if any(k.name == name and k.active for k in keys):
            raise InputError(f"an active API key named {name!r} exists; revoke it first or choose another name")
        taken = {k.key_id for k in keys}
        key_id = secrets.token_hex(4)
        while key_id in taken:
            key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, name, key_digest(key), self._now(), actor)
        self._write([*keys, record])
        return key, record

    def revoke(self, name_or_id: str, actor: str) -> ApiKey:
        """Revoke the active key with this name or id; InputError when there is none."""
        with self._exclusive():
            return self._revoke(name_or_id, actor)

    def _revoke(self, name_or_id: str, actor: str) -> ApiKey:
        keys = self.keys()
        matches = [k for k in keys if k.active and name_or_id in (k.name, k.key_id)]
        if not matches:
            known = ", ".join(f"{k.name} ({k.key_id})" for k in keys if k.active) or "none"
            raise InputError(f"no active API key named or with id {name_or_id!r} in {self.path} (active: {known})")
        target = matches[0]
        revoked = ApiKey(**{**asdict(target), "revoked_at": self._now(), "revoked_by": actor})
        self._write([revoked if k.key_id == target.key_id else k for k in keys])
        return revoked

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time (two `create-key` at once must not lose either key)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _now(self) -> str:
        now: datetime = self.clock.now()
        return now.isoformat(timespec="seconds")

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"format_version": FORMAT_VERSION, "keys": [asdict(k) for k in keys]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(data, indent=2) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
