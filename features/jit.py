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


def numeric_kernel(fn: F) -> F:
    """Like `kernel`, with NumPy's float semantics (a division by zero gives inf or nan instead of raising), which
    spares arithmetic-heavy loops a zero check per division."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


def inline_kernel(fn: F) -> F:
    """Like `numeric_kernel`, and inlined into the kernels that call it (numba IR inlining): a small helper called
    per tree node would otherwise pay a call that passes each array argument as a struct."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")(fn))


def warm() -> float:
    """Compile every feature kernel now (or load it from numba's cache); returns the seconds it took.

    Run by the setup script, so a worker's first batch never waits for the compiler.
    """
    import time

    import numpy as np

    from features.config import FeatureConfig
    from features.merchant_fold import fold_merchant_batch
    from features.user_fold import UserEvents, fold_user_batch

    started = time.perf_counter()
    one = np.ones(1, dtype=np.int64)
    events = UserEvents(one * 0, one * 1_700_000_000, one * 100, np.ones(1), one, -one, -one, one, one,
                        np.ones(1, dtype=bool))  # fmt: skip
    folded = fold_user_batch([b""], events, FeatureConfig())
    fold_merchant_batch([[b""]], [[b""]], one * 0, one * 0, events.ts, folded.late, FeatureConfig())
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"feature kernels ready in {warm():.1f} s")
