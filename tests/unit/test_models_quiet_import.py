"""TensorFlow's known start-up lines are dropped from stderr at import; anything else it prints stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.quiet_import import import_quietly

NOISY = '''import os
os.write(2, b"I0000 00:00:1.1  123 port.cc:153] oneDNN custom operations are on. You may see slightly different\\n")
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"E0000 something that matters\\n")
VALUE = 42
'''


def test_known_noise_is_dropped_and_other_lines_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "noisy_module_for_test.py").write_text(NOISY)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = import_quietly("noisy_module_for_test")
    assert module.VALUE == 42
    err = capfd.readouterr().err
    assert "E0000 something that matters" in err
    assert "oneDNN" not in err and "InitializeLog" not in err
    assert import_quietly("noisy_module_for_test") is module  # imported once

