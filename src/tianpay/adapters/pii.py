"""Personal numbers at rest: AES-256-GCM through the vault, fingerprints by keyed HMAC-SHA256.

The fingerprint key is derived from the vault key (HKDF, its own label), so one configured secret
protects both, and a database dump without the key neither opens a number nor lets anyone test a
guessed ID number against a fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac

from tianpay.adapters.vault import AesGcmVault

_FINGERPRINT_LABEL = "tianpay pii fingerprint v1"


class VaultPiiCipher:
    def __init__(self, vault: AesGcmVault) -> None:
        self._vault = vault
        self._fingerprint_key = vault.derive_key(_FINGERPRINT_LABEL)

    def encrypt(self, kind: str, value: str, fingerprint: str) -> str:
        return self._vault.seal(value.encode(), context=_context(kind, fingerprint))

    def decrypt(self, kind: str, ciphertext: str, fingerprint: str) -> str:
        return self._vault.open(ciphertext, context=_context(kind, fingerprint)).decode()

    def fingerprint(self, kind: str, value: str) -> str:
        return hmac.new(self._fingerprint_key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()


def _context(kind: str, fingerprint: str) -> str:
    # Binding the ciphertext to its fingerprint means a ciphertext copied onto another member's row
    # does not open there.
    return f"pii:{kind}:{fingerprint}"
