"""Keys, constants and small fakes the SDK tests share (kept out of conftest so tests can import them)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from http_message_signatures import algorithms

from tianpay_sdk import TianpayClient

MERCHANT_ID = "M100001"


@dataclass(frozen=True)
class MerchantKey:
    key_id: str
    algorithm: type[algorithms.HTTPSignatureAlgorithm]
    private_key: Any
    public_key: Any

    @property
    def client_algorithm(self) -> str | None:
        return "hmac-sha256" if self.algorithm is algorithms.HMAC_SHA256 else None


def make_keys() -> dict[str, MerchantKey]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    secret = os.urandom(32)
    keys = [
        MerchantKey("key-rsa", algorithms.RSA_V1_5_SHA256, rsa_key, rsa_key.public_key()),
        MerchantKey("key-p256", algorithms.ECDSA_P256_SHA256, p256_key, p256_key.public_key()),
        MerchantKey("key-ed25519", algorithms.ED25519, ed_key, ed_key.public_key()),
        MerchantKey("key-hmac", algorithms.HMAC_SHA256, secret, secret),
    ]
    return {key.algorithm.algorithm_id: key for key in keys}


ALGORITHM_IDS = ("rsa-v1_5-sha256", "ecdsa-p256-sha256", "ed25519", "hmac-sha256")


class Sleeps(list[float]):
    """Records back-off waits instead of sleeping, so retry tests run fast and can read them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


ClientFactory = Callable[..., TianpayClient]
