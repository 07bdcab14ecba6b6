"""A command whose extra is not installed (`pip install .` alone, the streamer image) ends with one line, exit 2."""

from __future__ import annotations

import pytest

from fraudstream.errors import ConfigError


@pytest.mark.parametrize(("module", "extra"), [("keras", "train"), ("tensorflow.python", "train"), ("faust", "faust")])
def test_a_missing_extra_is_one_configuration_line(module: str, extra: str) -> None:
    from fraudstream.boundary import translate

    error = translate(ModuleNotFoundError(f"No module named '{module}'", name=module), None)
    assert isinstance(error, ConfigError) and int(error.exit_code) == 2
    assert str(error) == (f"this command needs the [{extra}] extra ({module} is not installed): "
                          f"pip install 'fraudstream[{extra}]', or run it in the training image")


def test_any_other_missing_module_is_still_a_bug() -> None:
    from fraudstream.boundary import translate
    from fraudstream.errors import InternalError

    assert isinstance(translate(ModuleNotFoundError("x", name="msgspec"), None), InternalError)
