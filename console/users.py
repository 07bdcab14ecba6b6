"""Console users: created by `fraudstream console create-user` or by an admin in the console."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console import audit
from console.passwords import hash_password
from console.roles import Role
from console.schema import User
from fraudstream.errors import InputError

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


def create_user(
    db: Session, username: str, password: str, role: Role, *, actor: str, source: str, at: datetime
) -> User:
    """Add a user and its audit row (the caller commits). InputError for a bad name, a taken name, a short password."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise InputError(f"user name {username!r} must be 2-64 letters, digits or . _ @ -")
    if db.scalar(select(func.count()).select_from(User).where(User.username == username)):
        raise InputError(f"user {username!r} exists already")
    user = User(username=username, password_hash=hash_password(password), role=role.value, active=True, created_at=at)
    db.add(user)
    audit.record(db, at=at, actor=actor, action="user.create", target=username, source=source, role=role.value)
    return user
