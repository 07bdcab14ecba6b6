"""Model registry: publish/load round trip, integrity refusal before unpickling, promotion and refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fraudstream.errors import ArtifactIntegrityError, ModelError, PromotionRefused
from models.bundle import ModelBundle
from models.preprocess import Preprocessor
from models.registry import ModelRegistry

NAMES = ("a", "b", "c", "unused")
SPEC = "spec-hash-for-tests"


class ExplodesWhenUnpickled:
    """A stand-in model whose unpickling raises: proves the registry never unpickles a refused file."""

    def __init__(self) -> None:
        self.payload = 1  # non-empty state, so pickle calls __setstate__

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.zeros(len(X)), np.ones(len(X))])

    def __setstate__(self, state: Any) -> None:
        raise RuntimeError("unpickled!")


def _bundle(stack: Any = None) -> ModelBundle:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0.8).astype(int)
    pre = Preprocessor.fit(X)
    model = stack if stack is not None else LogisticRegression().fit(pre.transform(X), y)
    return ModelBundle(
        input_names=NAMES,
        used_features=NAMES[:3],
        preprocessor=pre,
        mlp=None,
        stack=model,
        thresholds={"stack": 0.3},
        feature_spec_hash=SPEC,
        contribution_weights=np.array([0.5, 0.3, 0.2]),
    )


def _publish(reg: ModelRegistry, ap: float, holdout: str = "h1", **kw: Any) -> str:
    return reg.publish(_bundle(), metrics={"average_precision": ap}, holdout_id=holdout,
                       data_range=("2018-01-01", "2018-01-07"), seed=0, **kw)


def test_publish_then_load_scores_like_the_trained_model(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    bundle = _bundle()
    version = reg.publish(bundle, metrics={"average_precision": 0.4}, holdout_id="h", data_range=("a", "b"), seed=3)
    assert reg.current_version() == version and reg.versions() == [version]
    manifest = reg.manifest(version)
    assert manifest["feature_spec_hash"] == SPEC and manifest["seed"] == 3 and manifest["thresholds"] == {"stack": 0.3}
    assert set(manifest["files"]) == {"preprocessor.json", "stack.skops"}
    loaded = reg.load(expected_spec_hash=SPEC)
    X = np.random.default_rng(1).normal(size=(50, 4))
    expected = bundle.stack.predict_proba(bundle.preprocessor.transform(X[:, :3]))[:, 1]
    np.testing.assert_allclose(loaded.score(X, "stack"), expected)
    contributions = loaded.contributions(X)
    assert contributions.shape == (50, 4) and np.all(contributions[:, 3] == 0)
    with pytest.raises(ModelError, match="has no MLP"):
        loaded.score(X, "mlp")


def test_flipped_byte_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    version = _publish(reg, 0.1)
    reg.load(version, expected_spec_hash=SPEC)  # untouched: loads
    path = tmp_path / "versions" / version / "stack.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256"):
        reg.load(version, expected_spec_hash=SPEC)


def test_a_stack_of_a_type_outside_the_trusted_libraries_is_never_built(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    version = reg.publish(_bundle(stack=ExplodesWhenUnpickled()), metrics={"average_precision": 0.1},
                          holdout_id="h", data_range=("a", "b"), seed=0)
    with pytest.raises(ArtifactIntegrityError, match="names types outside"):
        reg.load(version, expected_spec_hash=SPEC)


def test_missing_file_and_spec_mismatch_are_refused(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    version = _publish(reg, 0.5)
    with pytest.raises(ModelError, match="retrain the model"):
        reg.load(version, expected_spec_hash="another-spec")
    (tmp_path / "versions" / version / "preprocessor.json").unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        reg.load(version, expected_spec_hash=SPEC)


def test_worse_challenger_is_refused_but_stays_published(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    champion = _publish(reg, 0.60)
    with pytest.raises(PromotionRefused, match="worse than champion"):
        _publish(reg, 0.55)
    assert reg.current_version() == champion and len(reg.versions()) == 2
    equal = _publish(reg, 0.60)  # not worse: promoted
    assert reg.current_version() == equal
    forced = _publish(reg, 0.10, force=True)
    assert reg.current_version() == forced


def test_other_holdout_cannot_be_compared(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    champion = _publish(reg, 0.60, holdout="h1")
    with pytest.raises(PromotionRefused, match="same holdout"):
        _publish(reg, 0.90, holdout="h2")
    assert reg.current_version() == champion
    assert (tmp_path / "current").read_text().strip() == champion
    assert json.loads((tmp_path / "versions" / champion / "manifest.json").read_text())["holdout_id"] == "h1"


def test_empty_registry_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="fraudstream train"):
        ModelRegistry(tmp_path, allow_unsigned=True).load(expected_spec_hash=SPEC)
