"""ModelHolder: the model in use, loaded once and reloaded in a background thread when the registry's `current` moves.

The swap is one attribute assignment (atomic in CPython); the core reads `.model` once per batch, so a batch
never waits for a load and never mixes two versions. Loading never imports TensorFlow or Keras (the MLP is served
from its exported weights: NumPy, or their ONNX graph on CUDA for device "cuda"); with `scorers=("mlp",)` it does
not unpickle the stack either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fraudstream.errors import FraudstreamError

if TYPE_CHECKING:
    from models.registry import ModelRegistry
    from streamer.core import ScoringModel
    from streamer.metrics import StreamMetrics

log = logging.getLogger(__name__)


class ModelHolder:
    """Holds the current LoadedModel; `start()` begins polling the registry every `reload_poll_s` seconds."""

    def __init__(
        self,
        registry: ModelRegistry | None,
        *,
        reload_poll_s: float = 5.0,
        device: str = "cpu",
        gpu_min_batch: int = 1,
        metrics: StreamMetrics | None = None,
        model: ScoringModel | None = None,
        scorers: Iterable[str] | None = None,
        accept: Callable[[Any], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.reload_poll_s = reload_poll_s
        self.device = device
        self.gpu_min_batch = gpu_min_batch
        self.scorers = tuple(scorers) if scorers is not None else None
        #: called on every model before it is used (the runtime checks its scoring policy against the settings);
        #: raising a FraudstreamError refuses it: at start that is the error, on a reload the old model stays
        self.accept = accept
        self.metrics = metrics
        self.reloads = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if model is None:
            if registry is None:
                raise ValueError("ModelHolder needs a registry or a model")
            model = self._load(None)
        if accept is not None:
            accept(model)
        self._model: ScoringModel = model
        self._announce(model)

    @classmethod
    def fixed(cls, model: ScoringModel) -> ModelHolder:
        """A holder that never reloads (tests, backtests of one version)."""
        return cls(None, model=model)

    @property
    def model(self) -> ScoringModel:
        return self._model

    @property
    def version(self) -> str:
        return self._model.version

    def _load(self, version: str | None) -> ScoringModel:
        assert self.registry is not None
        model: Any = self.registry.load(version, device=self.device, scorers=self.scorers,
                                        gpu_min_batch=self.gpu_min_batch)
        return model  # type: ignore[no-any-return]

    def _announce(self, model: ScoringModel) -> None:
        device = str(getattr(model, "device", "CPU"))
        log.info("model %s in use (MLP device %s)", model.version, device, extra={"model_version": model.version})
        if self.metrics is not None:
            self.metrics.set_model_version(model.version, device)

    def check_once(self) -> bool:
        """Load and swap if the registry's current version changed; True if swapped. Errors keep the old model."""
        if self.registry is None:
            return False
        try:
            current = self.registry.current_version()
            if current is None or current == self._model.version:
                return False
            model = self._load(current)
            if self.accept is not None:
                self.accept(model)
        except FraudstreamError as exc:
            self.last_error = str(exc)
            log.error("model reload failed, keeping %s: %s", self._model.version, exc)
            return False
        self._model = model
        self.reloads += 1
        self._announce(model)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.reload_poll_s):
            self.check_once()

    def start(self) -> ModelHolder:
        if self.registry is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-reload", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
