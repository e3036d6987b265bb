"""ACP signMethod 01 as BANKS.md "HBB" fixes it: signing our requests, verifying HBB's messages.

Sign: drop ``signature``, sort the keys, join ``k=v`` with ``&`` (raw values), SHA-256 → lowercase
hex → RSA PKCS#1 v1.5 with SHA-256 over that hex string → base64. Verify: the message carries
HBB's signing certificate (``signPubKeyCert``); it must chain to HBB's root CA (our trust anchor),
be within validity and be named ``Huabei Bank Signing`` before its key is trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tianpay.channels.hbb.wire import SIGN_METHOD_RSA

HBB_SIGNING_CN = "Huabei Bank Signing"

Clock = Callable[[], datetime]


class SignatureRejected(Exception):
    """HBB's signature or certificate did not verify. The reason never quotes key or signature bytes."""


def signing_string(fields: Mapping[str, str]) -> str:
    """Every field but ``signature``, keys sorted by code point, joined as ``k=v&k=v`` (raw values)."""
    return "&".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "signature")


def digest_hex(fields: Mapping[str, str]) -> str:
    return hashlib.sha256(signing_string(fields).encode("utf-8")).hexdigest()


def sign(fields: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    """The base64 ``signature`` of ``fields``; the RSA input is the ASCII of the lowercase hex digest."""
    signature = key.sign(digest_hex(fields).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify_with_key(fields: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """Whether ``fields["signature"]`` is a valid signMethod 01 signature of the other fields."""
    try:
        signature = base64.b64decode(fields.get("signature", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not signature:
        return False
    try:
        public_key.verify(signature, digest_hex(fields).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def cert_id(certificate: x509.Certificate) -> str:
    """ACP's ``certId``: the certificate's serial number in decimal (research/protocols.md §2.2)."""
    return str(certificate.serial_number)


class Signer:
    """Signs our requests with the platform's private key under the ``certId`` HBB knows it by."""

    __slots__ = ("_key", "cert_id")

    def __init__(self, key: rsa.RSAPrivateKey, cert_id: str) -> None:
        if not cert_id.isdigit():
            raise ValueError("certId must be the certificate serial in decimal")
        self._key = key
        self.cert_id = cert_id

    def __repr__(self) -> str:
        return f"Signer(cert_id={self.cert_id!r})"

    def signed(self, fields: Mapping[str, str]) -> dict[str, str]:
        """``fields`` with ``certId`` and ``signature``; ``certId`` is set first because it is signed."""
        message = {**fields, "certId": self.cert_id}
        message.pop("signature", None)
        message["signature"] = sign(message, self._key)
        return message


class HbbVerifier:
    """Verifies HBB's answers and notifications against HBB's root CA (the adapter's trust anchor)."""

    __slots__ = ("_clock", "_expected_cn", "_roots")

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        *,
        clock: Clock | None = None,
        expected_cn: str = HBB_SIGNING_CN,
    ) -> None:
        if not roots:
            raise ValueError("at least one HBB root certificate is needed")
        self._roots = tuple(roots)
        self._clock = clock or _utc_now
        self._expected_cn = expected_cn

    def verify(self, fields: Mapping[str, str]) -> x509.Certificate:
        """Returns HBB's signing certificate once the whole message verifies; raises SignatureRejected."""
        if fields.get("signMethod") != SIGN_METHOD_RSA:
            raise SignatureRejected("signMethod is not 01")
        if not fields.get("signature"):
            raise SignatureRejected("the message is not signed")
        certificate = self._certificate(fields.get("signPubKeyCert", ""))
        self._check_certificate(certificate)
        presented_id = fields.get("certId")
        if presented_id and presented_id != cert_id(certificate):
            raise SignatureRejected("certId does not name the certificate sent with the message")
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureRejected("HBB's signing certificate does not hold an RSA key")
        if not verify_with_key(fields, public_key):
            raise SignatureRejected("the signature does not verify")
        return certificate

    def _certificate(self, pem: str) -> x509.Certificate:
        if not pem:
            raise SignatureRejected("signPubKeyCert is missing")
        try:
            return x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as error:
            raise SignatureRejected("signPubKeyCert is not a PEM certificate") from error

    def _check_certificate(self, certificate: x509.Certificate) -> None:
        now = self._clock()
        root = self._issuer(certificate)
        for checked in (certificate, root):
            if not certificate_is_current(checked, now):
                raise SignatureRejected("a certificate in HBB's chain is outside its validity")
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [attribute.value for attribute in names] != [self._expected_cn]:
            raise SignatureRejected("the certificate is not HBB's signing certificate (CN)")
        if _is_ca(certificate):
            raise SignatureRejected("a CA certificate cannot sign HBB's messages")
        if not _may_sign(certificate):
            raise SignatureRejected("the certificate's key usage does not allow signing")

    def _issuer(self, certificate: x509.Certificate) -> x509.Certificate:
        for root in self._roots:
            try:
                certificate.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return root
        raise SignatureRejected("the certificate does not chain to HBB's root CA")


def certificate_is_current(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def load_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Loads the platform's RSA signing key; the error never repeats the key material."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError("the HBB signing key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the HBB signing key is not an RSA key")
    return key


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _may_sign(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.digital_signature


def _utc_now() -> datetime:
    return datetime.now(UTC)
