"""Merchant sign-up and key rotation through the services, on both databases, plus the vault."""

from __future__ import annotations

import base64
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.adapters.keys import FileKeyIssuer, load_or_create_platform_key
from tianpay.adapters.vault import AesGcmVault
from tianpay.domain.ledger import merchant_available, merchant_pending
from tianpay.domain.merchant import PAYMENT_METHODS, FeePlan, InvalidPublicKey, KeyAlgorithm
from tianpay.domain.money import Money
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.authentication import find_verification_key, remember_signature
from tianpay.services.merchants import (
    InvalidMerchant,
    KeyRequest,
    KeyTools,
    NewMerchant,
    create_merchant,
    merchant_balance,
    rotate_key,
)


@pytest.fixture
def tools(tmp_path: Path, clock: SettableClock) -> KeyTools:
    return KeyTools(UlidGenerator(), clock, FileKeyIssuer(tmp_path / "merchants"),
                    AesGcmVault.from_key_file(tmp_path / "keys" / "vault.key"))


def _public_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_new_merchant_has_accounts_a_fee_plan_and_a_generated_rsa_key(
    uow_factory: UnitOfWorkFactory, tools: KeyTools
) -> None:
    created = create_merchant(uow_factory, tools, NewMerchant("Tea shop", fee_rate_bps=38))
    path = created.key.private_key_path
    assert path is not None
    assert path.name == f"{created.key.key_id}.pem"
    assert path.parent.name == created.merchant_id
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert created.webhook_secret.startswith("whsec_")
    assert len(base64.b64decode(created.webhook_secret.removeprefix("whsec_"))) == 24
    with uow_factory() as uow:
        merchant = uow.merchants.get(created.merchant_id)
        (key,) = uow.merchants.keys_of(created.merchant_id)
        plan = uow.merchants.fee_plan(created.merchant_id)
        balances = uow.ledger.balances(
            [merchant_pending(created.merchant_id).code, merchant_available(created.merchant_id).code]
        )
    assert merchant is not None
    assert merchant.name == "Tea shop"
    assert merchant.is_active
    assert key.algorithm is KeyAlgorithm.RSA_V1_5_SHA256
    assert key.public_key_pem == _public_pem(private).decode()
    assert key.secret_ciphertext is None
    assert plan is not None
    assert [r.method for r in plan.rates] == list(PAYMENT_METHODS)
    assert plan.fee("wallet", Money.cny(10_000)) == Money.cny(38)
    assert set(balances.values()) == {Money.cny(0)}
    assert merchant_balance(uow_factory, created.merchant_id).pending == Money.cny(0)


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (lambda: ed25519.Ed25519PrivateKey.generate(), KeyAlgorithm.ED25519),
        (lambda: ec.generate_private_key(ec.SECP256R1()), KeyAlgorithm.ECDSA_P256_SHA256),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), KeyAlgorithm.RSA_V1_5_SHA256),
    ],
)
def test_a_merchant_may_bring_its_own_public_key(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, make: object, algorithm: KeyAlgorithm
) -> None:
    assert callable(make)
    created = create_merchant(uow_factory, tools, NewMerchant("Own key", KeyRequest(_public_pem(make()))))
    assert created.key.private_key_path is None
    assert created.key.algorithm is algorithm


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    ],
)
def test_weak_or_unsupported_public_keys_are_refused(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, make: object
) -> None:
    assert callable(make)
    with pytest.raises(InvalidPublicKey):
        create_merchant(uow_factory, tools, NewMerchant("Weak", KeyRequest(_public_pem(make()))))
    with pytest.raises(InvalidPublicKey):
        create_merchant(uow_factory, tools, NewMerchant("Junk", KeyRequest(b"not a key")))


def test_an_hmac_secret_is_stored_sealed_and_opens_for_verification(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, clock: SettableClock
) -> None:
    created = create_merchant(uow_factory, tools, NewMerchant("HMAC shop", KeyRequest(use_hmac=True)))
    secret = created.key.hmac_secret
    assert secret is not None
    assert len(secret) == 32
    with uow_factory() as uow:
        (key,) = uow.merchants.keys_of(created.merchant_id)
    assert key.public_key_pem is None
    assert key.secret_ciphertext is not None
    assert secret.hex() not in key.secret_ciphertext
    assert secret not in key.secret_ciphertext.encode()
    found = find_verification_key(uow_factory, tools.vault, key.key_id, clock.now())
    assert found is not None
    assert found.material == secret
    assert found.merchant_id == created.merchant_id


def test_merchant_input_is_checked(uow_factory: UnitOfWorkFactory, tools: KeyTools) -> None:
    with pytest.raises(InvalidMerchant):
        create_merchant(uow_factory, tools, NewMerchant("  "))
    with pytest.raises(InvalidMerchant):
        create_merchant(uow_factory, tools, NewMerchant("x", webhook_url="ftp://example.com"))
    with pytest.raises(InvalidMerchant):
        KeyRequest(public_key_pem=b"x", use_hmac=True)


def test_during_a_rotation_both_keys_are_valid_then_only_the_new_one(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, clock: SettableClock
) -> None:
    created = create_merchant(uow_factory, tools, NewMerchant("Rotating"))
    old_key = created.key.key_id
    rotation = rotate_key(uow_factory, tools, created.merchant_id, KeyRequest(use_hmac=True),
                          overlap=timedelta(hours=1))
    new_key = rotation.new_key.key_id
    assert [k for k, _ in rotation.retiring] == [old_key]
    for moment in (clock.now(), clock.now() + timedelta(minutes=59)):
        assert find_verification_key(uow_factory, tools.vault, old_key, moment) is not None
        assert find_verification_key(uow_factory, tools.vault, new_key, moment) is not None
    later = clock.now() + timedelta(hours=1)
    assert find_verification_key(uow_factory, tools.vault, old_key, later) is None
    assert find_verification_key(uow_factory, tools.vault, new_key, later) is not None


def test_a_fingerprint_is_accepted_once(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> None:
    expires = clock.now() + timedelta(minutes=5)
    assert remember_signature(uow_factory, ["b:1", "n:1"], expires)
    assert not remember_signature(uow_factory, ["b:2", "n:1"], expires)
    # Nothing of a refused call is kept: its new fingerprint is still free.
    assert remember_signature(uow_factory, ["b:2"], expires)
    assert remember_signature(uow_factory, ["b:3"], expires, purge_before=expires + timedelta(seconds=1))
    assert remember_signature(uow_factory, ["b:1", "n:1"], expires + timedelta(minutes=5))


def test_fee_plans_round_half_up_with_a_minimum() -> None:
    plan = FeePlan.flat("mch_A", rate_bps=60, minimum_minor=10)
    assert plan.fee("quick_pay", Money.cny(1_000)) == Money.cny(10)
    assert plan.fee("quick_pay", Money.cny(2_575)) == Money.cny(15)
    assert plan.fee("quick_pay", Money.cny(2_584)) == Money.cny(16)


def test_the_vault_binds_ciphertexts_to_their_context(tmp_path: Path) -> None:
    vault = AesGcmVault.from_key_file(tmp_path / "vault.key")
    sealed = vault.seal(b"s3cret", context="key_1")
    assert vault.open(sealed, context="key_1") == b"s3cret"
    with pytest.raises(ValueError, match="does not open"):
        vault.open(sealed, context="key_2")
    assert AesGcmVault.from_key_file(tmp_path / "vault.key").open(sealed, context="key_1") == b"s3cret"
    with pytest.raises(ValueError, match="another vault key"):
        AesGcmVault(os.urandom(32)).open(sealed, context="key_1")
    assert stat.S_IMODE(os.stat(tmp_path / "vault.key").st_mode) == 0o600


def test_the_platform_key_is_created_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create_platform_key(tmp_path / "keys")
    again = load_or_create_platform_key(tmp_path / "keys")
    assert first.key_id == again.key_id
    assert first.key_id.startswith("platform_")
    assert first.public_key_pem == again.public_key_pem
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "platform_ed25519.pem").st_mode) == 0o600
