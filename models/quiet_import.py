"""Import TensorFlow/Keras without their known start-up noise on stderr.

TensorFlow's C++ side prints, at import and before TF_CPP_MIN_LOG_LEVEL applies, "oneDNN custom operations are
on..." (once per loaded library) and absl's "All log messages before absl::InitializeLog() ..." line. They say
nothing actionable to a user, so the import runs with file descriptor 2 sent to a temporary file; every other line
it printed is written back to stderr unchanged.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from types import ModuleType

#: Substrings of the stderr lines that are dropped.
KNOWN_NOISE = (
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
)


def import_quietly(name: str) -> ModuleType:
    """importlib.import_module(name), with the known noise removed from what it prints on stderr."""
    if name in sys.modules:
        return sys.modules[name]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            module = importlib.import_module(name)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(noise in line for noise in KNOWN_NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    return module
