"""Fixtures for the HBB adapter's unit tests: a fake HBB PKI, our own key, and a channel on a fake transport.

Keys are made once per session (RSA key generation is the slow part); each test gets a channel whose
HTTP transport is a function, so tests decide exactly what "HBB" answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tianpay.channels.hbb import HbbChannel, HbbConfig, build_hbb_channel
from tianpay.domain.money import Money
from tianpay.ports.channels import OnlineBankingOrder, RefundOrder

from .kit import NOW, Authority, key_pem, new_key, pem

MER_ID = "898120000000001"
BASE_URL = "http://hbb.test"
ATTEMPT_ID = "att_01JD3Q7W2M9X4N5P6R7S8T9V0A"
REFUND_ID = "rfd_01JD3Q8A1B2C3D4E5F6G7H8J9K"
QUERY_ID = "261127100000000000001"


@dataclass(frozen=True)
class HbbPki:
    root: Authority
    signing_key: rsa.RSAPrivateKey
    signing_cert: x509.Certificate
    encryption_cert: x509.Certificate


@dataclass(frozen=True)
class Platform:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate


@pytest.fixture(scope="session")
def hbb_pki() -> HbbPki:
    root = Authority.root()
    signing_key, signing_cert = root.leaf()
    _, encryption_cert = root.leaf("Huabei Bank Encryption", serial=68759663126)
    return HbbPki(root, signing_key, signing_cert, encryption_cert)


@pytest.fixture(scope="session")
def platform() -> Platform:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tianpay HBB Signing")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4611686018427387905)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return Platform(key, cert)


@pytest.fixture
def config(hbb_pki: HbbPki, platform: Platform) -> HbbConfig:
    return HbbConfig(
        base_url=BASE_URL,
        mer_id=MER_ID,
        signing_key_pem=key_pem(platform.key),
        hbb_root_ca_pem=pem(hbb_pki.root.cert),
        hbb_encryption_cert_pem=pem(hbb_pki.encryption_cert),
        signing_cert_pem=pem(platform.cert),
        timeout_s=2.0,
    )


Handler = Callable[[httpx.Request], httpx.Response]
ChannelFactory = Callable[[Handler], HbbChannel]


@pytest.fixture
def channel_with(config: HbbConfig) -> Iterator[ChannelFactory]:
    """Builds a channel whose HTTP exchanges go to ``handler`` instead of the network."""
    channels: list[HbbChannel] = []

    def factory(handler: Handler) -> HbbChannel:
        http = httpx.Client(transport=httpx.MockTransport(handler))
        channel = build_hbb_channel(config, http_client=http, clock=lambda: NOW)
        channels.append(channel)
        return channel

    yield factory
    for channel in channels:
        channel.close()


@pytest.fixture
def order() -> OnlineBankingOrder:
    created = datetime(2026, 11, 27, 2, 30, 0, tzinfo=UTC)
    return OnlineBankingOrder(
        attempt_id=ATTEMPT_ID,
        amount=Money.cny(12345),
        subject="保温杯",
        merchant_name="津门好物商城",
        created_at=created,
        expires_at=created + timedelta(minutes=15),
        notify_url="http://tianpay.test/channels/hbb/notify",
        return_url="http://tianpay.test/cashier/return?attempt=1&x=2",
    )


@pytest.fixture
def refund_order() -> RefundOrder:
    return RefundOrder(
        refund_id=REFUND_ID,
        payment_attempt_id=ATTEMPT_ID,
        payment_bank_reference=QUERY_ID,
        payment_created_at=datetime(2026, 11, 27, 2, 30, 0, tzinfo=UTC),
        amount=Money.cny(2000),
        created_at=datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC),
        notify_url="http://tianpay.test/channels/hbb/notify",
    )
