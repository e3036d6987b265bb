"""The 国密 primitives of JHB's envelope: SM2 signatures (SM3withSM2), SM4-CBC and key material.

SM2 comes from tongsuopy (Tongsuo, an OpenSSL fork that applies the GM/T 0009 default user ID
`1234567812345678` when computing Z); SM3 and SM4 come from `cryptography`. Signatures travel as
DER (an ASN.1 SEQUENCE of the two INTEGERs r and s), the encoding GM/T 0009 specifies.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from tongsuopy.crypto import hashes as gm_hashes
from tongsuopy.crypto import serialization as gm_serialization
from tongsuopy.crypto.asymciphers import ec

SM2_USER_ID = b"1234567812345678"
SM4_KEY_SIZE_BYTES = 16
SM4_BLOCK_SIZE_BYTES = 16


class SignatureInvalid(Exception):
    """The SM2 signature does not verify (or is not even a well-formed DER signature)."""


class DecryptionFailed(Exception):
    """The SM4 ciphertext does not decrypt under the given key (bad length or bad padding)."""


def generate_sm2_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh SM2 key pair."""
    return ec.generate_private_key(ec.SM2())


def private_key_to_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """PKCS#8 PEM, unencrypted: the simulator keeps its own key in its own SQLite file."""
    pem: bytes = key.private_bytes(
        gm_serialization.Encoding.PEM,
        gm_serialization.PrivateFormat.PKCS8,
        gm_serialization.NoEncryption(),
    )
    return pem.decode("ascii")


def private_key_from_pem(pem: str) -> ec.EllipticCurvePrivateKey:
    key = gm_serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an elliptic-curve private key")
    return key


def public_key_to_pem(key: ec.EllipticCurvePublicKey) -> str:
    """SubjectPublicKeyInfo PEM (id-ecPublicKey with the SM2 curve OID 1.2.156.10197.1.301)."""
    pem = key.public_bytes(gm_serialization.Encoding.PEM, gm_serialization.PublicFormat.SubjectPublicKeyInfo)
    return bytes(pem).decode("ascii")


def public_key_to_hex(key: ec.EllipticCurvePublicKey) -> str:
    """The uncompressed point `04‖x‖y` in hex (130 characters), the form most SM2 libraries take."""
    numbers = key.public_numbers()
    x: int = numbers.x
    y: int = numbers.y
    return "04" + x.to_bytes(32, "big").hex() + y.to_bytes(32, "big").hex()


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """Accept either a PEM public key or the hex uncompressed point (`04‖x‖y`, with or without 04)."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = gm_serialization.load_pem_public_key(stripped.encode("ascii"))
    else:
        point_hex = stripped if len(stripped) == 130 else "04" + stripped
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), bytes.fromhex(point_hex))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name.upper() != "SM2":
        raise ValueError("not an SM2 public key")
    return key


def sm2_sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """SM3withSM2 over `message` with the default user ID; returns the DER signature."""
    signature: bytes = key.sign(message, ec.ECDSA(gm_hashes.SM3()))
    return bytes(signature)


def sm2_verify(key: ec.EllipticCurvePublicKey, signature_der: bytes, message: bytes) -> None:
    """Raise `SignatureInvalid` unless `signature_der` is a valid SM3withSM2 signature."""
    try:
        key.verify(signature_der, message, ec.ECDSA(gm_hashes.SM3()))
    except Exception as exc:
        # Tongsuo raises InvalidSignature for a wrong signature but InternalError for bytes that are
        # not DER at all; both mean the same thing to the caller.
        raise SignatureInvalid(str(exc) or type(exc).__name__) from exc


def new_data_key() -> bytes:
    """A random 128-bit SM4 data key."""
    return secrets.token_bytes(SM4_KEY_SIZE_BYTES)


def new_iv() -> bytes:
    return secrets.token_bytes(SM4_BLOCK_SIZE_BYTES)


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """SM4-CBC with PKCS#7 padding."""
    padder = padding.PKCS7(SM4_BLOCK_SIZE_BYTES * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of `sm4_cbc_encrypt`; raises `DecryptionFailed` on any malformed input."""
    if len(key) != SM4_KEY_SIZE_BYTES or len(iv) != SM4_BLOCK_SIZE_BYTES:
        raise DecryptionFailed("key and iv must be 16 bytes")
    if not ciphertext or len(ciphertext) % SM4_BLOCK_SIZE_BYTES:
        raise DecryptionFailed("ciphertext is not a whole number of blocks")
    decryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(SM4_BLOCK_SIZE_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptionFailed("bad padding") from exc


@dataclass(frozen=True, slots=True)
class DataKey:
    """One SM4 data key, named by the `key_id` that travels in the envelope head."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:
        # The key itself must never reach a log line.
        return f"DataKey(key_id={self.key_id!r}, key=<redacted>)"
