"""Cached outputs sealed with AES-256-GCM when user ids are HMAC-hashed, so no raw user id rests in Redis.

The store caches each record's output messages (scores, alerts, dead letters: every one names the user, a dead
letter carries the original bytes) to re-emit identical bytes on a replay, so they must come back as they were:
hashing would lose them, so they are encrypted. The key is derived from FRAUD_STREAMER__USER_ID_HMAC_KEY
(HMAC-SHA256 of a fixed label: one secret to manage, and the user-id hashes and this key never coincide); the
associated data is the hash key and the offset, so a sealed value moved to another offset or partition does not
open. Stored form: 12-byte random nonce + ciphertext + 16-byte tag (28 bytes more per record).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fraudstream.errors import StateStoreError

_LABEL = b"fraudstream output cache v1"
NONCE_BYTES = 12


class OutputSeal:
    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hmac.new(secret, _LABEL, hashlib.sha256).digest())

    def seal_all(self, hash_key: str, outputs: dict[int, bytes]) -> dict[int, bytes]:
        """Each output sealed for its hash key and offset (one random draw for the whole batch)."""
        nonces = os.urandom(NONCE_BYTES * len(outputs))
        sealed = {}
        for i, (offset, value) in enumerate(outputs.items()):
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            sealed[offset] = nonce + self._aead.encrypt(nonce, value, f"{hash_key}:{offset}".encode())
        return sealed

    def open(self, hash_key: str, offset: int, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{hash_key}:{offset}".encode())
        except (InvalidTag, ValueError):
            raise StateStoreError(
                f"cached output {hash_key}[{offset}] does not open with this FRAUD_STREAMER__USER_ID_HMAC_KEY "
                "(changed key, or tampered); give every worker the same key"
            ) from None
