"""An empty secret (what compose passes for `${KEY:-}` when KEY is unset) is refused with one line, never used."""

from __future__ import annotations

import pytest

from fraudstream.cli import run
from fraudstream.errors import ConfigError
from fraudstream.settings import build_settings


@pytest.mark.parametrize(
    "name",
    [
        "FRAUD_STREAMER__USER_ID_HMAC_KEY",
        "FRAUD_REDIS__URL",
        "FRAUD_KAFKA__SASL_PASSWORD",
        "FRAUD_KAFKA__SSL_KEY_PASSWORD",
    ],
)
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_secret_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid setting {name}: is set but empty"):
        build_settings(environ={name: value})


def test_unset_and_real_secrets_still_work() -> None:
    assert build_settings(environ={}).streamer.user_id_hmac_key is None
    key = build_settings(environ={"FRAUD_STREAMER__USER_ID_HMAC_KEY": "k" * 32}).streamer.user_id_hmac_key
    assert key is not None and key.get_secret_value() == "k" * 32


def test_an_empty_plain_setting_is_not_a_secret_error() -> None:
    # an empty non-secret is left to its own validation (here: a plain string that may be empty)
    assert build_settings(environ={"FRAUD_KAFKA__CLIENT_ID": ""}).kafka.client_id == ""


def test_the_command_line_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUD_STREAMER__USER_ID_HMAC_KEY", "")
    assert run(["config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fraudstream: error: invalid setting FRAUD_STREAMER__USER_ID_HMAC_KEY: is set but empty; "
                   "give it a value, or unset the variable to leave it off"]
