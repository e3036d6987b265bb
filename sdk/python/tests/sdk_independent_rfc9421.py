"""A deliberately small RFC 9421 / RFC 9530 verifier written from the RFCs, sharing no code with the SDK.

`requests-http-signature` is built on `http-message-signatures`, the very library the SDK signs
with, so it cannot catch a misuse of that library that both sides share. This one rebuilds the
signature base by hand (RFC 9421 §2.5) and checks the signature with `cryptography` directly.
It handles only what the Tianpay contract uses: one signature, plain field and derived components.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils


@dataclass(frozen=True)
class Checked:
    label: str
    components: list[str]
    params: dict[str, str | int]


def _field(headers: dict[str, str], name: str) -> str:
    matches = [value for key, value in headers.items() if key.lower() == name]
    assert len(matches) == 1, f"expected exactly one {name} field"
    return matches[0].strip()


def verify(method: str, url: str, headers: dict[str, str], body: bytes, key: object, alg: str) -> Checked:
    label, _, inner = _field(headers, "signature-input").partition("=")
    match = re.fullmatch(r"\((.*)\)((?:;[a-z]+=(?:\"[^\"]*\"|\d+))*)", inner)
    assert match, f"Signature-Input is not one inner list: {inner}"
    components = re.findall(r'"([^"]+)"', match.group(1))
    params: dict[str, str | int] = {
        name: value.strip('"') if value.startswith('"') else int(value)
        for name, value in re.findall(r";([a-z]+)=(\"[^\"]*\"|\d+)", match.group(2))
    }
    derived = {"@method": method, "@target-uri": url}
    lines = [f'"{c}": {derived[c] if c.startswith("@") else _field(headers, c)}' for c in components]
    lines.append(f'"@signature-params": {inner}')
    base = "\n".join(lines).encode("ascii")

    sig_label, _, sig_value = _field(headers, "signature").partition("=")
    assert sig_label == label
    assert sig_value.startswith(":")
    assert sig_value.endswith(":")
    _check_signature(base64.b64decode(sig_value[1:-1]), base, key, alg)
    if "content-digest" in components:
        expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert _field(headers, "content-digest") == f"sha-256=:{expected}:"
    return Checked(label, components, params)


def _check_signature(signature: bytes, base: bytes, key: object, alg: str) -> None:
    if alg == "hmac-sha256":
        assert isinstance(key, bytes)
        assert hmac.compare_digest(hmac.new(key, base, hashlib.sha256).digest(), signature)
    elif alg == "rsa-v1_5-sha256":
        key.verify(signature, base, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
    elif alg == "ecdsa-p256-sha256":
        # RFC 9421 §3.3.4: the signature is r || s, 32 bytes each, not DER.
        assert len(signature) == 64
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        der = utils.encode_dss_signature(r, s)
        key.verify(der, base, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    elif alg == "ed25519":
        key.verify(signature, base)  # type: ignore[attr-defined]
    else:
        raise AssertionError(f"unknown algorithm {alg}")
