"""Where the replay gets fold k's model: trained inline on demand, or by a forked process that trains the folds in
order while the replay runs (the replay only waits when it reaches a fold whose model is not ready yet).

The child is forked before anything in this process loads TensorFlow or opens a Redis or Kafka connection; it
publishes each fold to the private registry and leaves a small result file; the parent loads the verified version.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from backtest.folds import FoldModel, FoldTrainer
from backtest.windows import FoldWindow
from fraudstream import errors
from fraudstream.errors import ModelError


class FoldSource(Protocol):
    def get(self, k: int) -> FoldModel: ...

    def close(self) -> None: ...


class InlineFolds:
    """Trains fold k when first asked for it, in this process."""

    def __init__(self, trainer: FoldTrainer, windows: list[FoldWindow]) -> None:
        self.trainer, self.windows = trainer, windows
        self._done: dict[int, FoldModel] = {}

    def get(self, k: int) -> FoldModel:
        if k not in self._done:
            fold = self.trainer.train(self.windows[k])
            fold.model = self.trainer.registry.load(fold.version)
            self._done[k] = fold
        return self._done[k]

    def close(self) -> None:
        return None


def _write(folder: Path, name: str, data: dict[str, Any]) -> None:
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(data, default=float))
    tmp.replace(folder / name)


def _train_all(trainer: FoldTrainer, windows: list[FoldWindow], folder: Path) -> None:
    """The child: train every fold in order, leaving fold-<k>.json (+ offline scores) after each."""
    try:
        for w in windows:
            fold = trainer.train(w)
            fold.offline_scores.rename("score").rename_axis("transaction_id").reset_index().to_parquet(
                folder / f"fold-{w.index}.parquet", index=False
            )
            result = {
                "version": fold.version,
                "threshold": fold.threshold,
                "train_rows": fold.train_rows,
                "train_frauds": fold.train_frauds,
                "fit_seconds": fold.fit_seconds,
                "offline_metrics": fold.offline_metrics,
            }
            _write(folder, f"fold-{w.index}.json", result)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _write(
            folder, "error.json", {"class": type(exc).__name__, "message": str(exc), "trace": traceback.format_exc()}
        )
        raise SystemExit(1) from None


class ForkedFolds:
    """Trains every fold in a forked child process; `get(k)` waits for fold k's result."""

    def __init__(self, trainer: FoldTrainer, windows: list[FoldWindow], folder: Path) -> None:
        self.trainer, self.windows, self.folder = trainer, windows, folder
        folder.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("fork")
        self.process = context.Process(target=_train_all, args=(trainer, windows, folder), name="backtest-training")
        self.process.start()
        self._done: dict[int, FoldModel] = {}

    def get(self, k: int) -> FoldModel:
        if k in self._done:
            return self._done[k]
        result = self.folder / f"fold-{k}.json"
        while not result.exists():
            alive = self.process.is_alive()
            if result.exists():
                break
            self._raise_if_failed(alive)
            time.sleep(0.2)
        data = json.loads(result.read_text())
        offline = pd.read_parquet(self.folder / f"fold-{k}.parquet")
        fold = FoldModel(
            self.windows[k],
            data["version"],
            self.trainer.registry.load(data["version"]),
            float(data["threshold"]),
            int(data["train_rows"]),
            int(data["train_frauds"]),
            float(data["fit_seconds"]),
            pd.Series(offline["score"].to_numpy(), index=offline["transaction_id"].to_numpy()),
            data["offline_metrics"],
        )
        self._done[k] = fold
        return fold

    def _raise_if_failed(self, alive: bool) -> None:
        error = self.folder / "error.json"
        if error.exists():
            info = json.loads(error.read_text())
            cls = getattr(errors, info["class"], None)
            kind = cls if isinstance(cls, type) and issubclass(cls, errors.FraudstreamError) else ModelError
            raise kind(info["message"] if kind is not ModelError else f"fold training failed: {info['message']}")
        if not alive:
            raise ModelError(f"the fold training process ended (exit code {self.process.exitcode}) without a result")

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=30)
