"""Roles and what each may do. Separation of duties: analysts work alerts, ops run models, admins manage users.

A route names one permission; `allowed(role, permission)` is the only check (tested role by role).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    analyst = "analyst"
    ops = "ops"
    admin = "admin"


class Permission(StrEnum):
    view_alerts = "view_alerts"
    give_verdict = "give_verdict"
    view_models = "view_models"
    change_models = "change_models"
    manage_users = "manage_users"
    view_audit = "view_audit"
    view_dashboard = "view_dashboard"
    run_jobs = "run_jobs"  # upload histories, start training runs and backtests, read their reports


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.analyst: frozenset({Permission.view_alerts, Permission.give_verdict, Permission.view_dashboard}),
    Role.ops: frozenset({Permission.view_models, Permission.change_models, Permission.run_jobs,
                         Permission.view_dashboard}),
    Role.admin: frozenset({Permission.manage_users, Permission.view_audit, Permission.view_models,
                           Permission.view_dashboard}),
}

#: Where each role lands after login.
HOME: dict[Role, str] = {Role.analyst: "/alerts", Role.ops: "/models", Role.admin: "/users"}


def allowed(role: str, permission: Permission) -> bool:
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False
