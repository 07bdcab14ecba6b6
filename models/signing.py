"""Signatures of registry manifests: HMAC-SHA256 over the exact bytes of `manifest.json`.

The manifest lists the sha256 of every file of a version, so one signature covers them all: a file swapped for
another (with its hash updated in the manifest) breaks the signature. The signature lives beside the manifest in
`manifest.sig` (JSON: algorithm, key id, hex digest); the key id (the first 16 hex digits of sha256 of the key) only
tells a reader which key signed, it proves nothing.

Trust policy (`RegistryTrust`): with a key, every version must carry a valid signature by that key; without one,
nothing is loaded or published unless `allow_unsigned` says so (development: the embedded demo and the tests). A
bank's trainer and streamers share the key through their secret store; a key generated into the local state folder
would prove nothing to another host and sit next to the files it protects, so fraudstream never makes one up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from pydantic import SecretStr

from fraudstream.errors import ArtifactIntegrityError, ConfigError

ALGORITHM = "HMAC-SHA256"
SIGNATURE = "manifest.sig"
KEY_SETTING = "FRAUD_REGISTRY__SIGNING_KEY"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class RegistryTrust:
    """The signing key (None: unsigned) and whether unsigned versions are acceptable (development only)."""

    key: bytes | None = None
    allow_unsigned: bool = False

    @classmethod
    def of(cls, key: SecretStr | str | bytes | None, allow_unsigned: bool = False) -> RegistryTrust:
        if isinstance(key, SecretStr):
            key = key.get_secret_value()
        if isinstance(key, str):
            key = key.encode()
        if key is not None and len(key) < 16:
            raise ConfigError(f"{KEY_SETTING} is shorter than 16 bytes; use a random key of 32 bytes or more")
        return cls(key or None, allow_unsigned)

    def require_signer(self) -> None:
        """ConfigError unless versions can be published: a key, or unsigned allowed."""
        if self.key is None and not self.allow_unsigned:
            raise ConfigError(
                f"cannot publish: {KEY_SETTING} is not set, and versions must be signed; set it (the streamers need "
                "the same key), or FRAUD_REGISTRY__ALLOW_UNSIGNED=true for development"
            )

    def sign(self, manifest: bytes) -> bytes | None:
        """The contents of manifest.sig, or None when unsigned publishing is allowed (ConfigError otherwise)."""
        self.require_signer()
        if self.key is None:
            return None
        digest = hmac.new(self.key, manifest, hashlib.sha256).hexdigest()
        return json.dumps({"algorithm": ALGORITHM, "key_id": key_id(self.key), "signature": digest}).encode()

    def check(self, version: str, manifest: bytes, signature: bytes | None) -> None:
        """ArtifactIntegrityError unless the manifest bytes carry a valid signature (or unsigned is allowed)."""
        if self.key is None:
            if self.allow_unsigned:
                return
            raise ArtifactIntegrityError(
                f"model version {version} refused: {KEY_SETTING} is not set, so its manifest cannot be verified; "
                "set the key the trainer signs with (FRAUD_REGISTRY__ALLOW_UNSIGNED=true only for development)"
            )
        if signature is None:
            if self.allow_unsigned:
                return
            raise ArtifactIntegrityError(
                f"model version {version} refused: its manifest is not signed ({SIGNATURE} missing); republish it "
                f"with {KEY_SETTING} set"
            )
        try:
            data = json.loads(signature)
            algorithm, signer, digest = data["algorithm"], str(data["key_id"]), str(data["signature"])
        except (ValueError, KeyError, TypeError):
            raise ArtifactIntegrityError(
                f"model version {version} refused: {SIGNATURE} is not a signature file; republish the version"
            ) from None
        if algorithm != ALGORITHM:
            raise ArtifactIntegrityError(
                f"model version {version} refused: {SIGNATURE} uses {algorithm!r}, not {ALGORITHM}; republish it"
            )
        expected = hmac.new(self.key, manifest, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest):
            mine = key_id(self.key)
            other = "" if signer == mine else f" (it names key {signer}, this worker has {mine})"
            raise ArtifactIntegrityError(
                f"model version {version} refused: its manifest signature does not match{other}; the manifest was "
                "changed after signing or signed with another key; republish it from a trusted trainer"
            )
