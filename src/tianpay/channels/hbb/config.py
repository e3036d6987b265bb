"""What the HBB adapter needs to know about the platform's contract with HBB, as one frozen value.

It comes from onboarding (``onboarding.py``): HBB's address, the merchant number HBB gave us, our
signing key and certificate, and HBB's root CA (the trust anchor for every answer and notification)
and encryption certificate. The private key never appears in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tianpay.channels.hbb import signing


@dataclass(frozen=True, slots=True)
class HbbConfig:
    base_url: str
    mer_id: str
    signing_key_pem: str = field(repr=False)
    hbb_root_ca_pem: str
    hbb_encryption_cert_pem: str
    # Our signing certificate as HBB registered it; its serial is the ``certId`` we sign under.
    # A platform registered by bare public key instead gives the ``certId`` HBB assigned.
    signing_cert_pem: str | None = None
    cert_id: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("HBB's base_url must be an http(s) URL")
        if not self.mer_id:
            raise ValueError("mer_id is required")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.signing_cert_pem is None and self.cert_id is None:
            raise ValueError("give the signing certificate or the certId HBB knows the key by")

    @property
    def resolved_cert_id(self) -> str:
        """The ``certId`` to sign under: the certificate's serial, or the one given explicitly."""
        from_cert = signing.cert_id(signing.load_certificate(self.signing_cert_pem)) if self.signing_cert_pem else None
        if from_cert is not None and self.cert_id is not None and from_cert != self.cert_id:
            raise ValueError("cert_id does not match the signing certificate's serial")
        resolved = from_cert or self.cert_id
        assert resolved is not None
        return resolved

    @property
    def gateway_url(self) -> str:
        return self.base_url.rstrip("/")
