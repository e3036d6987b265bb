"""Onboarding on a fake ``/_sim/partners``: our identity is made once, and a bad pack is never persisted."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from tianpay.channels.hbb import OnboardingFailed, build_hbb_channel, load_hbb_config, onboard_hbb
from tianpay.channels.hbb.onboarding import ensure_identity, hbb_directory

from .conftest import HbbPki
from .kit import Authority, pem


def _bank(hbb_pki: HbbPki, seen: list[dict[str, Any]], **overrides: Any) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/_sim/partners"
        payload = json.loads(request.content)
        seen.append(payload)
        certificate = x509.load_pem_x509_certificate(payload["certificate_pem"].encode())
        pack = {
            "bank": "HBB",
            "mer_id": "898120000000001",
            "cert_id": str(certificate.serial_number),
            "root_ca_pem": pem(hbb_pki.root.cert),
            "signing_cert_pem": pem(hbb_pki.signing_cert),
            "signing_cert_id": str(hbb_pki.signing_cert.serial_number),
            "encrypt_cert_pem": pem(hbb_pki.encryption_cert),
            "encrypt_cert_id": str(hbb_pki.encryption_cert.serial_number),
            **overrides,
        }
        return httpx.Response(200, json=pack)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_onboarding_registers_our_certificate_and_persists_what_hbb_gave(tmp_path: Path, hbb_pki: HbbPki) -> None:
    seen: list[dict[str, Any]] = []
    config = onboard_hbb(tmp_path, "http://hbb.test/", http_client=_bank(hbb_pki, seen))
    assert seen[0]["name"] == "天付支付"
    assert "PRIVATE" not in json.dumps(seen[0])
    assert config.mer_id == "898120000000001"
    assert config.base_url == "http://hbb.test"
    assert load_hbb_config(tmp_path) == config
    directory = hbb_directory(tmp_path)
    assert stat.S_IMODE((directory / "signing_key.pem").stat().st_mode) == 0o600
    build_hbb_channel(config).close()


def test_the_identity_is_made_once_and_reused(tmp_path: Path) -> None:
    first = ensure_identity(tmp_path)
    assert ensure_identity(tmp_path) == first
    assert first.cert_id.isdigit()
    assert "key_pem" in repr(first)
    assert "PRIVATE" not in repr(first)


def test_a_platform_that_never_onboarded_has_no_configuration(tmp_path: Path) -> None:
    assert load_hbb_config(tmp_path) is None


def test_a_requested_merchant_number_is_sent(tmp_path: Path, hbb_pki: HbbPki) -> None:
    seen: list[dict[str, Any]] = []
    onboard_hbb(tmp_path, "http://hbb.test", mer_id="898120000000001", http_client=_bank(hbb_pki, seen))
    assert seen[0]["partner_id"] == "898120000000001"


@pytest.mark.parametrize(
    "overrides",
    [
        {"cert_id": "1"},
        {"mer_id": ""},
        {"root_ca_pem": None},
        {"encrypt_cert_pem": "not a certificate"},
    ],
    ids=["cert id", "merchant number", "root", "encryption certificate"],
)
def test_a_pack_that_does_not_fit_is_refused_and_not_written(
    tmp_path: Path, hbb_pki: HbbPki, overrides: dict[str, Any]
) -> None:
    with pytest.raises(OnboardingFailed):
        onboard_hbb(tmp_path, "http://hbb.test", http_client=_bank(hbb_pki, [], **overrides))
    assert load_hbb_config(tmp_path) is None


def test_a_signing_certificate_outside_hbbs_root_is_refused(tmp_path: Path, hbb_pki: HbbPki) -> None:
    _, foreign = Authority.root().leaf()
    with pytest.raises(OnboardingFailed, match="chain"):
        onboard_hbb(tmp_path, "http://hbb.test", http_client=_bank(hbb_pki, [], signing_cert_pem=pem(foreign)))


def test_a_refusal_by_hbb_is_reported(tmp_path: Path) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(409, json={"error": "taken"})))
    with pytest.raises(OnboardingFailed, match="409"):
        onboard_hbb(tmp_path, "http://hbb.test", http_client=client)


def test_an_unreachable_bank_is_reported(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(OnboardingFailed, match="reached"):
        onboard_hbb(tmp_path, "http://hbb.test", http_client=httpx.Client(transport=httpx.MockTransport(refuse)))
