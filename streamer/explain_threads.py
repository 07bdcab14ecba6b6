"""A batch's alert attributions split over threads: the compiled TreeSHAP kernels (models/tree_kernels.py) and the
MLP's NumPy passes release the GIL, so the alerted rows of one batch are explained on several cores at once.

Rows are independent: the split changes no value of the tree part, and the MLP's only by the last-ulp sums of a
matrix product of another height. Chunks are contiguous and concatenated back in order.

>>> import numpy as np
>>> from models.attribution import Attribution
>>> class Half:  # a model whose attribution of a row is half of it, base 0
...     def attributions(self, X, scorer, weight, method):
...         return Attribution(X / 2, np.zeros(len(X)), "probability", "half")
>>> threads = ExplainThreads(2, min_rows_per_thread=2)
>>> X = np.arange(12.0).reshape(6, 2)
>>> att = threads.attributions(Half(), X, "stack", 0.5, "deeplift")
>>> bool(np.array_equal(att.values, X / 2)), att.method, threads.last_chunks
(True, 'half', 2)
>>> threads.close()
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from models.attribution import Attribution

#: fewer alerted rows than this per thread are explained on the calling thread alone (a hand-off costs ~50 µs; the
#: block kernel walks 32 rows per tree visit)
MIN_ROWS_PER_THREAD = 32


class ExplainThreads:
    """Explains on the calling thread and `threads - 1` helpers (threads=1: the calling thread only)."""

    def __init__(self, threads: int, min_rows_per_thread: int = MIN_ROWS_PER_THREAD) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self.min_rows = min_rows_per_thread
        self.last_chunks = 0
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="explain") if threads > 1 else None

    def attributions(self, model: Any, X: np.ndarray, scorer: str, weight: float, method: str) -> Attribution:
        chunks = max(1, min(self.threads, len(X) // self.min_rows))
        self.last_chunks = chunks
        if chunks == 1 or self._pool is None:
            return model.attributions(X, scorer, weight, method)  # type: ignore[no-any-return]
        parts = np.array_split(X, chunks)
        helpers = [self._pool.submit(model.attributions, part, scorer, weight, method) for part in parts[1:]]
        done = [model.attributions(parts[0], scorer, weight, method), *(h.result() for h in helpers)]
        first = done[0]
        return Attribution(
            np.concatenate([a.values for a in done]),
            np.concatenate([np.asarray(a.base) for a in done]),
            first.space,
            first.method,
            max(a.residual for a in done),
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
