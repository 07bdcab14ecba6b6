"""Signed registry: a version whose manifest is unsigned, mis-signed or tampered with, or whose file was swapped
(hash updated in the manifest), is refused with one line before any file is parsed or unpickled; `fraudstream
stream` refuses it at start-up with one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudstream.errors import ArtifactIntegrityError, ConfigError, ExitCode
from models.registry import MANIFEST, ModelRegistry, sha256_file
from models.signing import SIGNATURE, RegistryTrust
from tests.streamer_support import publish_tiny_model

KEY = "k" * 32
REPO = Path(__file__).resolve().parents[2]


class RunsOnUnpickle:
    """A pickle payload that leaves a marker file when unpickled (the attack: a command run at load)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


def _signed(tmp_path: Path) -> tuple[ModelRegistry, str, Path]:
    version = publish_tiny_model(tmp_path, signing_key=KEY)
    return ModelRegistry(tmp_path, trust=RegistryTrust.of(KEY)), version, tmp_path / "versions" / version


def _swap_in_pickle(folder: Path, marker: Path, *, resign_with: str | None = None) -> None:
    """Replace the stack by a malicious pickle and update its hash in the manifest (as an attacker would)."""
    (folder / "stack.skops").unlink()
    with (folder / "stack.pkl").open("wb") as handle:
        pickle.dump(RunsOnUnpickle(marker), handle)
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["files"]["stack.skops"]
    manifest["files"]["stack.pkl"] = sha256_file(folder / "stack.pkl")
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (folder / MANIFEST).write_bytes(data)
    if resign_with is not None:
        signature = RegistryTrust.of(resign_with).sign(data)
        assert signature is not None
        (folder / SIGNATURE).write_bytes(signature)


def test_signed_version_round_trips_with_its_key(tmp_path: Path) -> None:
    reg, version, folder = _signed(tmp_path)
    assert (folder / SIGNATURE).is_file() and (folder / "stack.skops").is_file()
    assert not (folder / "stack.pkl").exists()
    model = reg.load(version)
    assert model.version == version
    assert model.score(np.zeros((3, len(model.feature_names))), "stack").shape == (3,)


def test_no_key_refuses_to_publish_and_to_load_unless_unsigned_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FRAUD_REGISTRY__SIGNING_KEY is not set"):
        ModelRegistry(tmp_path / "a").publish(_bundle(), metrics={"average_precision": 1.0}, holdout_id="h",
                                              data_range=("a", "b"), seed=0)
    assert not (tmp_path / "a" / "versions").exists(), "files were written for an unsigned version"
    version = publish_tiny_model(tmp_path / "b")  # allowed unsigned: no signature file
    assert not (tmp_path / "b" / "versions" / version / SIGNATURE).exists()
    with pytest.raises(ArtifactIntegrityError, match="FRAUD_REGISTRY__SIGNING_KEY is not set"):
        ModelRegistry(tmp_path / "b").load(version)
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        ModelRegistry(tmp_path / "b", trust=RegistryTrust.of(KEY)).load(version)
    assert ModelRegistry(tmp_path / "b", allow_unsigned=True).load(version).version == version


def _bundle() -> Any:
    from features.spec import FEATURE_NAMES, feature_spec_hash
    from models.bundle import ModelBundle
    from models.preprocess import Preprocessor

    class Constant:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.column_stack([np.ones(len(X)), np.zeros(len(X))])

    return ModelBundle(input_names=FEATURE_NAMES, used_features=FEATURE_NAMES[:2],
                       preprocessor=Preprocessor.fit(np.zeros((4, 2))), mlp=None, stack=Constant(),
                       thresholds={"stack": 0.5}, feature_spec_hash=feature_spec_hash())


def test_tampered_manifest_is_refused(tmp_path: Path) -> None:
    reg, version, folder = _signed(tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["thresholds"]["stack"] = 0.999  # silence every alert
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    with pytest.raises(ArtifactIntegrityError, match="signature does not match") as info:
        reg.load(version)
    assert "\n" not in str(info.value)


def test_other_key_and_removed_signature_are_refused(tmp_path: Path) -> None:
    reg, version, folder = _signed(tmp_path)
    with pytest.raises(ArtifactIntegrityError, match="names key"):
        ModelRegistry(tmp_path, trust=RegistryTrust.of("another key of 32 bytes at least!")).load(version)
    (folder / SIGNATURE).write_text("not json")
    with pytest.raises(ArtifactIntegrityError, match="not a signature file"):
        reg.load(version)
    (folder / SIGNATURE).unlink()
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        reg.load(version)


def test_swapped_model_with_updated_hash_is_refused_before_unpickling(tmp_path: Path) -> None:
    reg, version, folder = _signed(tmp_path)
    marker = tmp_path / "pwned"
    _swap_in_pickle(folder, marker)
    with pytest.raises(ArtifactIntegrityError, match="signature does not match"):
        reg.load(version)
    assert not marker.exists(), "the malicious pickle ran"


def test_a_legacy_pickle_signed_by_the_trainer_still_loads_after_the_check(tmp_path: Path) -> None:
    """The control: the same pickle, signed with the right key, is unpickled (so the refusal above is the
    signature's doing, not an accident of the file)."""
    reg, version, folder = _signed(tmp_path)
    marker = tmp_path / "pwned"
    _swap_in_pickle(folder, marker, resign_with=KEY)
    reg.load(version)
    assert marker.exists()


def test_short_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        RegistryTrust.of("short")


def _stream(registry: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    environ.update({"FRAUD_REGISTRY__PATH": str(registry), "FRAUD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
                    "FRAUD_REDIS__URL": "redis://127.0.0.1:9/0", **env})
    return subprocess.run([sys.executable, "-m", "fraudstream", "stream", "--idle-exit", "1"], cwd=REPO,
                          env=environ, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("attack", ["tampered-manifest", "swapped-model"])
def test_stream_refuses_a_tampered_version_at_start_with_one_line(tmp_path: Path, attack: str) -> None:
    _, _, folder = _signed(tmp_path)
    marker = tmp_path / "pwned"
    if attack == "tampered-manifest":
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest["thresholds"]["stack"] = 0.999
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    else:
        _swap_in_pickle(folder, marker)
    result = _stream(tmp_path, FRAUD_REGISTRY__SIGNING_KEY=KEY)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == ExitCode.DATA, result.stderr
    assert len(lines) == 1 and "signature does not match" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()


def test_stream_refuses_an_unsigned_version_without_a_key(tmp_path: Path) -> None:
    publish_tiny_model(tmp_path)
    result = _stream(tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == ExitCode.DATA and len(lines) == 1, result.stderr
    assert "FRAUD_REGISTRY__SIGNING_KEY is not set" in lines[0]
