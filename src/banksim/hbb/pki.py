"""HBB's own keys and certificates: a root CA, a signing certificate and an encryption certificate.

Made with `cryptography.x509` at the bank's first start and kept as PEM files under
`<data-dir>/banks/hbb/pki/`, so the trust anchor handed to the platform at onboarding stays
valid across restarts. The chain is root CA → leaf (no intermediate); the signing leaf's CN is
`Huabei Bank Signing`, which the platform's adapter checks (BANKS.md "HBB").
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SIGNING_CN = "Huabei Bank Signing"
ENCRYPTION_CN = "Huabei Bank Encryption"
ROOT_CN = "Huabei Bank Root CA"
ORGANISATION = "华北银行 Huabei Bank (simulated)"
VALIDITY = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class HbbKeys:
    root_cert: x509.Certificate
    signing_key: rsa.RSAPrivateKey
    signing_cert: x509.Certificate
    encryption_key: rsa.RSAPrivateKey
    encryption_cert: x509.Certificate

    @property
    def signing_cert_id(self) -> str:
        """ACP's certId: the certificate serial number in decimal."""
        return str(self.signing_cert.serial_number)

    @property
    def encryption_cert_id(self) -> str:
        return str(self.encryption_cert.serial_number)

    @property
    def signing_cert_pem(self) -> str:
        return _cert_pem(self.signing_cert)

    @property
    def root_cert_pem(self) -> str:
        return _cert_pem(self.root_cert)

    @property
    def encryption_cert_pem(self) -> str:
        return _cert_pem(self.encryption_cert)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Undo the platform's RSA PKCS#1 v1.5 encryption of `accNo`/`customerInfo` (bind, later)."""
        return self.encryption_key.decrypt(ciphertext, padding.PKCS1v15())


def load_or_create(directory: Path) -> HbbKeys:
    if not (directory / "root_cert.pem").exists():
        _create(directory)
    return HbbKeys(
        root_cert=_load_cert(directory / "root_cert.pem"),
        signing_key=_load_key(directory / "signing_key.pem"),
        signing_cert=_load_cert(directory / "signing_cert.pem"),
        encryption_key=_load_key(directory / "encryption_key.pem"),
        encryption_cert=_load_cert(directory / "encryption_cert.pem"),
    )


def _create(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    root_key = _new_key()
    root_name = _name(ROOT_CN)
    root = (
        _builder(root_name, root_name, root_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    signing_key = _new_key()
    signing = _leaf(SIGNING_CN, signing_key, root_key, root_name, _usage(digital_signature=True))
    encryption_key = _new_key()
    encryption = _leaf(ENCRYPTION_CN, encryption_key, root_key, root_name, _usage(key_encipherment=True))
    # The root key is kept too: a later issue may rotate the leaves under the same anchor.
    _write_key(directory / "root_key.pem", root_key)
    _write_key(directory / "signing_key.pem", signing_key)
    _write_key(directory / "encryption_key.pem", encryption_key)
    (directory / "signing_cert.pem").write_text(_cert_pem(signing), encoding="ascii")
    (directory / "encryption_cert.pem").write_text(_cert_pem(encryption), encoding="ascii")
    # The root certificate is written last: its presence marks a complete set.
    (directory / "root_cert.pem").write_text(_cert_pem(root), encoding="ascii")


def _leaf(
    common_name: str,
    key: rsa.RSAPrivateKey,
    issuer_key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    usage: x509.KeyUsage,
) -> x509.Certificate:
    return (
        _builder(_name(common_name), issuer, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    # Serials are kept to 40 bits so certIds read like the bank's (11–13 decimal digits).
    serial = secrets.randbits(40) | (1 << 39)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + VALIDITY)
    )


def _usage(
    *, cert_sign: bool = False, digital_signature: bool = False, key_encipherment: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=key_encipherment,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} does not hold an RSA key")
    return key
