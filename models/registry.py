"""The model registry: a folder of immutable versions with signed sha256 manifests and an atomic `current`.

Layout: <root>/versions/<version>/{manifest.json, manifest.sig, preprocessor.json, mlp.keras, mlp_weights.npz,
stack.skops, stack_forest.npz when the stack is a forest} and <root>/current (one line: the version). Loading a
version, in this order: the manifest's HMAC-SHA256 signature (models/signing.py: the key from
FRAUD_REGISTRY__SIGNING_KEY), then every file's sha256 against the signed manifest, and only then is any file
parsed. The stack is stored with skops (no pickle: only the scikit-learn, NumPy, SciPy and fraudstream model types
it names are built); a version published before that holds stack.pkl, unpickled only once its signature and hash
have been checked. A forest in the stack slot is loaded from stack_forest.npz (its flat node arrays) instead,
without scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudstream.clock import Clock, SystemClock
from fraudstream.errors import ArtifactIntegrityError, ModelError, PromotionRefused
from models.audit import Action, append_audit
from models.loaded import LoadedModel, MLPWeights
from models.preprocess import Preprocessor
from models.signing import SIGNATURE, RegistryTrust

if TYPE_CHECKING:
    from fraudstream.settings import Settings

if TYPE_CHECKING:  # models.bundle imports models.mlp and scikit-learn: publishing needs them, loading does not
    from models.bundle import ModelBundle

PRIMARY_METRIC = "average_precision"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
#: The parts of a version each scorer needs (`load(..., scorers=...)` reads only these).
SCORER_PARTS = {"mlp": ("mlp",), "stack": ("stack",), "blend": ("mlp", "stack")}
#: A forest in the stack slot, flattened at publish (models/tree_kernels.FlatForest): workers load it and never the
#: scikit-learn object, so a blend or stack worker imports no scikit-learn (~190 MiB of its RSS).
FOREST_FILE = "stack_forest.npz"
#: The top-level modules whose types a stored stack may name (skops builds nothing else).
SKOPS_TRUSTED_MODULES = frozenset({"sklearn", "numpy", "scipy", "imblearn", "models"})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def running_feature_spec_hash() -> str:
    """The feature spec hash of the code that is running (features.spec)."""
    from features.spec import feature_spec_hash

    return str(feature_spec_hash())


def _library_versions() -> dict[str, str]:
    import sklearn

    versions = {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__}
    try:
        from models.quiet_import import import_quietly

        keras = import_quietly("keras")
        versions["keras"] = keras.__version__
        versions["keras_backend"] = keras.backend.backend()
    except ImportError:  # pragma: no cover - keras is a dependency
        pass
    return versions


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelRegistry:
    """Publishes, promotes and loads model versions under one root folder."""

    def __init__(
        self,
        root: Path,
        clock: Clock | None = None,
        *,
        trust: RegistryTrust | None = None,
        allow_unsigned: bool = False,
    ) -> None:
        """trust: the signing key and policy (default: no key, so nothing unsigned loads unless allow_unsigned)."""
        self.root = Path(root)
        self.clock = clock or SystemClock()
        self.trust = trust or RegistryTrust(None, allow_unsigned)

    @classmethod
    def from_settings(cls, settings: Settings, root: Path | None = None, clock: Clock | None = None) -> ModelRegistry:
        """The registry of the settings (or `root`), with the settings' signing key and unsigned policy."""
        cfg = settings.registry
        trust = RegistryTrust.of(cfg.signing_key, cfg.allow_unsigned)
        return cls(root if root is not None else cfg.path, clock, trust=trust)

    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[str]:
        if not self._versions_dir.is_dir():
            return []
        return sorted(p.name for p in self._versions_dir.iterdir() if (p / MANIFEST).is_file())

    def current_version(self) -> str | None:
        pointer = self.root / "current"
        if not pointer.is_file():
            return None
        version = pointer.read_text().strip()
        return version or None

    def manifest(self, version: str) -> dict[str, Any]:
        path = self._versions_dir / version / MANIFEST
        if not path.is_file():
            known = ", ".join(self.versions()) or "none"
            raise ModelError(f"model version '{version}' not found in {self.root} (known: {known})")
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactIntegrityError(f"manifest of version '{version}' is not valid JSON ({exc.msg})") from None
        return data

    # ------------------------------------------------------------------ publishing
    def publish(
        self,
        bundle: ModelBundle,
        *,
        metrics: dict[str, Any],
        holdout_id: str,
        data_range: tuple[str, str],
        seed: int,
        promote: bool = True,
        force: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Write a new version; make it current if not worse than the champion (or forced). Returns the version."""
        if PRIMARY_METRIC not in metrics:
            raise ModelError(f"metrics must include '{PRIMARY_METRIC}' (the promotion metric)")
        self.trust.require_signer()  # before any file is written
        created = self.clock.now()
        version = f"{created:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        self._versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._versions_dir, prefix=f".{version}."))
        files = self._write_files(bundle, staging)
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "created_at": created.isoformat(),
            "feature_spec_hash": bundle.feature_spec_hash,
            "input_names": list(bundle.input_names),
            "feature_names": list(bundle.used_features),
            "scorers": [s for s, m in (("mlp", bundle.mlp), ("stack", bundle.stack)) if m is not None]
            + (["blend"] if bundle.mlp is not None and bundle.stack is not None else []),
            "mlp_output": bundle.mlp.output if bundle.mlp is not None else None,
            "mlp_activation": bundle.mlp.activation if bundle.mlp is not None else None,
            "thresholds": {k: float(v) for k, v in bundle.thresholds.items()},
            "contribution_weights": [float(w) for w in bundle.contribution_weights],
            "blend_mlp_weight": bundle.blend_mlp_weight,
            **({"policy": bundle.policy} if bundle.policy is not None else {}),
            **({"drift_reference": bundle.drift_reference} if bundle.drift_reference is not None else {}),
            "metrics": metrics,
            "holdout_id": holdout_id,
            "data_range": list(data_range),
            "seed": seed,
            "libraries": _library_versions(),
            "files": {name: sha256_file(staging / name) for name in files},
            **({"extra": extra} if extra else {}),
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        signature = self.trust.sign(manifest_bytes)
        (staging / MANIFEST).write_bytes(manifest_bytes)
        if signature is not None:
            (staging / SIGNATURE).write_bytes(signature)
        os.replace(staging, self._versions_dir / version)
        if promote:
            self.promote(version, force=force, action="publish")
        return version

    @staticmethod
    def _write_files(bundle: ModelBundle, folder: Path) -> list[str]:
        files = ["preprocessor.json"]
        (folder / "preprocessor.json").write_text(bundle.preprocessor.to_json())
        if bundle.mlp is not None:
            bundle.mlp.save_keras(folder / "mlp.keras")
            np.savez(folder / "mlp_weights.npz", *bundle.mlp.weights_)
            files += ["mlp.keras", "mlp_weights.npz"]
        if bundle.stack is not None:
            import skops.io

            from models.tree_kernels import FlatForest

            skops.io.dump(bundle.stack, folder / "stack.skops")
            files.append("stack.skops")
            if FlatForest.supports(bundle.stack):  # what workers load: the node arrays, without scikit-learn
                FlatForest.of(bundle.stack).save(folder / FOREST_FILE)
                files.append(FOREST_FILE)
        return files

    def promote(
        self, version: str, *, force: bool = False, actor: str = "fraudstream", action: Action = "promote"
    ) -> None:
        """Point `current` at `version` if it is not worse than the champion on the same holdout, or if forced.

        Every move of `current` is appended to the audit trail (models/audit.py: who, what, when, from which)."""
        challenger = self.manifest(version)
        champion_version = self.current_version()
        if champion_version is not None and champion_version != version and not force:
            champion = self.manifest(champion_version)
            if champion.get("holdout_id") != challenger.get("holdout_id"):
                raise PromotionRefused(
                    f"version {version} was evaluated on holdout '{challenger.get('holdout_id')}' but the champion "
                    f"{champion_version} on '{champion.get('holdout_id')}'; evaluate on the same holdout or use --force"
                )
            new, old = float(challenger["metrics"][PRIMARY_METRIC]), float(champion["metrics"][PRIMARY_METRIC])
            if new < old:
                raise PromotionRefused(
                    f"version {version} is worse than champion {champion_version} on holdout "
                    f"'{challenger.get('holdout_id')}' ({PRIMARY_METRIC} {new:.4f} < {old:.4f}); it stays published "
                    "but not current (use --force to promote anyway)"
                )
        _atomic_write(self.root / "current", version + "\n")
        if champion_version != version:
            append_audit(self.root, action=action, actor=actor, version=version, previous=champion_version,
                         forced=force, at=self.clock.now())

    # ------------------------------------------------------------------ loading
    def verify(self, version: str) -> dict[str, Any]:
        """Check the manifest's signature, then the sha256 of every file it lists; returns the manifest.

        Nothing but manifest.json and manifest.sig is read before the signature holds."""
        folder = self._versions_dir / version
        manifest_path, signature_path = folder / MANIFEST, folder / SIGNATURE
        if not manifest_path.is_file():
            self.manifest(version)  # raises: not found, with the known versions
        manifest_bytes = manifest_path.read_bytes()
        signature = signature_path.read_bytes() if signature_path.is_file() else None
        self.trust.check(version, manifest_bytes, signature)
        manifest = self.manifest(version)
        if manifest.get("version", version) != version:
            raise ArtifactIntegrityError(
                f"model version {version} refused: its signed manifest is for version {manifest.get('version')}"
            )
        for name, expected in dict(manifest.get("files", {})).items():
            path = folder / name
            if not path.is_file():
                raise ArtifactIntegrityError(f"model version {version}: file {name} is missing; republish the model")
            if sha256_file(path) != expected:
                raise ArtifactIntegrityError(
                    f"model version {version}: {name} does not match its sha256 in the manifest; refusing to load it"
                )
        return manifest

    def load(
        self,
        version: str | None = None,
        *,
        device: str = "cpu",
        expected_spec_hash: str | None = None,
        scorers: Iterable[str] | None = None,
        gpu_min_batch: int = 1,
    ) -> LoadedModel:
        """Verify, then load a version (default: current).

        device: cpu (NumPy on the exported weights; auto means the same here) | cuda (the MLP's ONNX graph on
        onnxruntime-gpu for calls of gpu_min_batch rows or more, NumPy below) | onnx-cpu (that graph on onnxruntime's
        CPU provider: the bench and tests). scorers: load only the parts these scorers need (default: everything),
        so a worker that scores with the MLP never unpickles stack.pkl and never imports scikit-learn (nor pandas
        through it).
        Every file's hash is checked either way.
        """
        version = version or self.current_version()
        if version is None:
            raise ModelError(f"no current model in registry {self.root}; run `fraudstream train` first")
        manifest = self.verify(version)  # nothing below runs unless every hash matched
        running = expected_spec_hash if expected_spec_hash is not None else running_feature_spec_hash()
        if manifest["feature_spec_hash"] != running:
            raise ModelError(
                f"model version {version} was trained for feature spec {manifest['feature_spec_hash'][:12]} but the "
                f"running code has {running[:12]}; retrain the model with this code"
            )
        parts = {"mlp", "stack"} if scorers is None else self._parts_for(version, scorers)
        folder = self._versions_dir / version
        preprocessor = Preprocessor.from_json((folder / "preprocessor.json").read_text())
        weights = None
        if "mlp" in parts and "mlp_weights.npz" in manifest["files"]:
            with np.load(folder / "mlp_weights.npz", allow_pickle=False) as npz:
                weights = MLPWeights(
                    [npz[f"arr_{i}"] for i in range(len(npz.files))],
                    manifest["mlp_output"],
                    manifest["mlp_activation"],
                )
        stack: Any = None
        if "stack" in parts and FOREST_FILE in manifest["files"]:  # a forest: its node arrays, no scikit-learn
            from models.tree_kernels import FlatForest

            try:
                stack = FlatForest.load(folder / FOREST_FILE)
            except (ValueError, KeyError, OSError) as exc:
                raise ModelError(
                    f"model version {version}: {FOREST_FILE} cannot be read ({exc}); republish the model"
                ) from exc
        elif "stack" in parts and "stack.skops" in manifest["files"]:
            stack = _load_skops(version, folder / "stack.skops")
        elif "stack" in parts and "stack.pkl" in manifest["files"]:  # published before skops
            with (folder / "stack.pkl").open("rb") as handle:
                stack = pickle.load(handle)  # only after its signature and hash were verified above
        return LoadedModel(
            version=version,
            input_names=tuple(manifest["input_names"]),
            used_features=tuple(manifest["feature_names"]),
            thresholds=dict(manifest["thresholds"]),
            preprocessor=preprocessor,
            mlp_weights=weights,
            stack=stack,
            contribution_weights=np.asarray(manifest["contribution_weights"], dtype=np.float64),
            device=device,
            gpu_min_batch=gpu_min_batch,
            manifest=manifest,
        )

    @staticmethod
    def _parts_for(version: str, scorers: Iterable[str]) -> set[str]:
        parts: set[str] = set()
        for name in scorers:
            if name not in SCORER_PARTS:
                raise ModelError(f"unknown scorer '{name}'; use mlp, stack or blend")
            parts.update(SCORER_PARTS[name])
        if not parts:
            raise ModelError(f"loading model version {version} for no scorer at all; name mlp, stack or blend")
        return parts


def _load_skops(version: str, path: Path) -> Any:
    """The stack from its skops file, building only types of the trusted libraries (skops never unpickles)."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if t.split(".", 1)[0] not in SKOPS_TRUSTED_MODULES]
        if foreign:
            raise ArtifactIntegrityError(
                f"model version {version}: stack.skops names types outside scikit-learn/NumPy/SciPy/fraudstream "
                f"({', '.join(sorted(foreign)[:3])}); refusing to load it"
            )
        return skops.io.load(path, trusted=untrusted)
    except ArtifactIntegrityError:
        raise
    except Exception as exc:  # noqa: BLE001 - any skops failure is a corrupt artifact, said in one line
        raise ArtifactIntegrityError(
            f"model version {version}: stack.skops cannot be read ({type(exc).__name__}: {exc}); republish the model"
        ) from None
