"""The one place that compiles feature kernels: numba's `njit`, typed so that mypy keeps the signatures.

Kernels are compiled on first call and cached on disk (numba's cache: `__pycache__` beside the module, or the
user-wide cache when that is read-only), so a worker pays the compile once per installed version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def kernel(fn: F) -> F:
    """Compile `fn` in nopython mode (no Python objects, no GIL)."""
    return cast(F, numba.njit(cache=True, nogil=True)(fn))
