"""Commands: `fraudstream models list|show|promote|rollback`, over the registry of FRAUD_REGISTRY__PATH.

Every move of `current` is appended to <registry>/audit.jsonl (models/audit.py) with who (--actor, default $USER),
what and when; running streamers and scoring APIs pick the new current version up by themselves (hot reload).
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import typer

from fraudstream.cli import settings_of
from fraudstream.errors import InputError, ModelError, ModelUnavailable
from fraudstream.settings import Settings
from models.audit import AuditRecord, audit_path, current_history, read_audit
from models.registry import PRIMARY_METRIC, ModelRegistry, running_feature_spec_hash

models_app = typer.Typer(help="The model registry: list, show, promote and roll back versions.", no_args_is_help=True)


def _registry(settings: Settings) -> ModelRegistry:
    """The registry of the settings, with its trust policy (signing key, unsigned allowed or not)."""
    return ModelRegistry.from_settings(settings)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME
        return "unknown"


def _versions(registry: ModelRegistry) -> list[str]:
    versions = registry.versions()
    if not versions:
        raise ModelUnavailable(
            f"the model registry {registry.root} has no versions; run `fraudstream train` first, or point "
            "FRAUD_REGISTRY__PATH at the registry the trainer publishes to"
        )
    return versions


def _known(registry: ModelRegistry, version: str) -> None:
    versions = _versions(registry)
    if version not in versions:
        shown = ", ".join(versions[-5:]) + (f" (and {len(versions) - 5} older)" if len(versions) > 5 else "")
        raise InputError(f"no model version '{version}' in {registry.root}; known versions: {shown} "
                         "(`fraudstream models list`)")


def _servable(registry: ModelRegistry, version: str) -> dict[str, Any]:
    """The manifest of a version the streamers can load: every file's hash checked, the running feature spec."""
    manifest = registry.verify(version)
    running = running_feature_spec_hash()
    if manifest.get("feature_spec_hash") != running:
        raise ModelError(
            f"model version {version} was trained for feature spec {str(manifest.get('feature_spec_hash'))[:12]} but "
            f"the running code has {running[:12]}: streamers could not load it; retrain with this code"
        )
    return manifest


def _summary(registry: ModelRegistry, version: str, current: str | None) -> dict[str, Any]:
    m = registry.manifest(version)
    metrics = m.get("metrics", {})
    return {
        "version": version,
        "current": version == current,
        "created_at": m.get("created_at"),
        "data_range": m.get("data_range"),
        "holdout_id": m.get("holdout_id"),
        "scorers": m.get("scorers"),
        "thresholds": m.get("thresholds"),
        "primary_scorer": metrics.get("primary_scorer"),
        PRIMARY_METRIC: metrics.get(PRIMARY_METRIC),
        "metrics": metrics,
    }


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


@models_app.command("list")
def list_versions(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per version, every metric included."),
) -> None:
    """List the versions (newest last) with their metrics, data range and which one is current."""
    registry = _registry(settings_of(ctx))
    current = registry.current_version()
    rows = [_summary(registry, v, current) for v in _versions(registry)]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
        return
    typer.echo(f"  {'version':<24} {'created (UTC)':<20} {'data range':<45} {'scorers':<16} {'AP':>7}  holdout")
    for r in rows:
        start, end = (r["data_range"] or [None, None])[:2]
        span = f"{str(start)[:19]} .. {str(end)[:19]}"
        mark = "*" if r["current"] else " "
        typer.echo(f"{mark} {r['version']:<24} {str(r['created_at'])[:19]:<20} {span:<45} "
                   f"{','.join(r['scorers'] or []):<16} {_fmt(r[PRIMARY_METRIC]):>7}  {r['holdout_id']}")
    if current is None:
        typer.echo("(no version is current: `fraudstream models promote VERSION`)")


@models_app.command("show")
def show(
    ctx: typer.Context,
    version: str = typer.Argument(..., metavar="VERSION", help="A version (`fraudstream models list`) or 'current'."),
) -> None:
    """Print a version's manifest (metrics, data range, thresholds, files and their sha256) and its audit records."""
    registry = _registry(settings_of(ctx))
    if version == "current":
        _versions(registry)
        found = registry.current_version()
        if found is None:
            raise ModelUnavailable(f"the model registry {registry.root} has no current version; "
                                   "`fraudstream models promote VERSION`")
        version = found
    _known(registry, version)
    manifest = registry.manifest(version)
    history = [r.__dict__ for r in read_audit(registry.root) if version in (r.version, r.previous)]
    out = {"current": registry.current_version() == version, "manifest": manifest, "audit": history}
    typer.echo(json.dumps(out, indent=2, sort_keys=True, default=str))


@models_app.command("promote")
def promote(
    ctx: typer.Context,
    version: str = typer.Argument(..., metavar="VERSION", help="The version to make current."),
    force: bool = typer.Option(False, "--force", help="Promote even if it is worse than the current version."),
    actor: str | None = typer.Option(None, help="Who promotes, for the audit trail (default: $USER)."),
) -> None:
    """Make VERSION current (checked: files, feature spec, not worse than the champion unless --force); audited."""
    registry = _registry(settings_of(ctx))
    _known(registry, version)
    previous = registry.current_version()
    if previous == version:
        typer.echo(f"{version} is already current in {registry.root}; nothing changed")
        return
    _servable(registry, version)
    registry.promote(version, force=force, actor=_actor(actor), action="promote")
    typer.echo(f"promoted {version} to current (was {previous or 'none'}); audited in {audit_path(registry.root)}")


@models_app.command("rollback")
def rollback(
    ctx: typer.Context,
    to: str | None = typer.Option(None, "--to", metavar="VERSION",
                                  help="An earlier current version to go back to (default: the previous one)."),
    actor: str | None = typer.Option(None, help="Who rolls back, for the audit trail (default: $USER)."),
) -> None:
    """Make the previous current version current again (as the audit trail records it); audited."""
    registry = _registry(settings_of(ctx))
    _versions(registry)
    current = registry.current_version()
    if current is None:
        raise ModelUnavailable(f"the model registry {registry.root} has no current version to roll back from; "
                               "`fraudstream models promote VERSION`")
    history = current_history(registry.root)
    if not history or history[-1] != current:
        raise ModelError(
            f"the audit trail {audit_path(registry.root)} does not record how {current} became current, so there is "
            "no previous version to go back to; promote one by name (`fraudstream models promote VERSION --force`) "
            "or give --to VERSION"
        ) if to is None else ModelError(
            f"--to {to}: the audit trail does not record how {current} became current; promote {to} by name with "
            "`fraudstream models promote --force`"
        )
    earlier = history[:-1]
    if to is not None:
        _known(registry, to)
        if to not in earlier:
            raise InputError(f"--to {to}: it was not current before {current} (earlier current versions: "
                             f"{', '.join(earlier) or 'none'}); use `fraudstream models promote {to}` instead")
        target = to
    elif not earlier:
        raise ModelError(f"nothing to roll back to: {current} is the first current version the audit trail records "
                         "(--to takes only an earlier current one); promote another by name (`fraudstream models "
                         "promote VERSION --force`)")
    else:
        target = earlier[-1]
    _servable(registry, target)
    registry.promote(target, force=True, actor=_actor(actor), action="rollback")
    typer.echo(f"rolled back to {target} (was {current}); audited in {audit_path(registry.root)}")


def audit_records(settings: Settings) -> list[AuditRecord]:
    """The registry's audit trail (for the console)."""
    return list(read_audit(_registry(settings).root))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
