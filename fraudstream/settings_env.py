"""The FRAUD_* environment that rebuilds a settings tree in a child process (a worker started by a benchmark or a
test): every field that is set, secrets in clear (the child needs them), None left out."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from fraudstream.settings import ENV_PREFIX, NESTED_DELIMITER, Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """FRAUD_* variables that rebuild `settings` in a child process (secrets included, None left out)."""
    env: dict[str, str] = {}
    for section_name in type(settings).model_fields:
        section = getattr(settings, section_name)
        if not isinstance(section, BaseModel):
            env[f"{ENV_PREFIX}{section_name.upper()}"] = str(section)
            continue
        for field_name in type(section).model_fields:
            value = getattr(section, field_name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{section_name.upper()}{NESTED_DELIMITER}{field_name.upper()}"] = str(value)
    return env
