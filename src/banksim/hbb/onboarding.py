"""HBB's answer to `POST /_sim/partners`: register the platform's key, hand over the trust material.

A real bank exchanges certificates out of band; the simulator does it here, idempotently
(docs/banks/onboarding.md). The pack carries everything the platform's adapter needs to sign
requests to HBB and to verify HBB's answers.
"""

from __future__ import annotations

from typing import Any

from banksim.core.partners import PartnerConflict, PartnerKey
from banksim.hbb import wire
from banksim.hbb.gateway import PARTNER_DEFAULT_NAME, Gateway, key_id_for
from banksim.hbb.pki import SIGNING_CN


class OnboardingError(ValueError):
    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def merchant_number(sequence: int) -> str:
    """Bank-assigned merIds: 15 digits, `8981200` + an 8-digit sequence."""
    return f"8981200{sequence:08d}"


def onboard(gateway: Gateway, request: dict[str, Any]) -> dict[str, Any]:
    partner_id = request.get("partner_id")
    if partner_id is not None and (not isinstance(partner_id, str) or not wire.MER_ID.match(partner_id)):
        raise OnboardingError("partner_id must be 1–15 letters or digits, or null")
    name = request.get("name") or PARTNER_DEFAULT_NAME
    try:
        key_id, public_pem = key_id_for(request.get("public_key_pem"), request.get("certificate_pem"))
    except ValueError as error:
        raise OnboardingError(str(error)) from error
    key = PartnerKey(key_id, partner_id or "", public_pem, request.get("certificate_pem"))
    try:
        mer_id = gateway.context.partners.register(
            partner_id=partner_id, key=key, name=str(name), assign_id=merchant_number
        )
    except PartnerConflict as error:
        raise OnboardingError(str(error), status_code=409) from error
    keys = gateway.keys
    return {
        "bank": "HBB",
        "mer_id": mer_id,
        "cert_id": key_id,
        "root_ca_pem": keys.root_cert_pem,
        "signing_cert_pem": keys.signing_cert_pem,
        "signing_cert_id": keys.signing_cert_id,
        "signing_cert_cn": SIGNING_CN,
        "encrypt_cert_pem": keys.encryption_cert_pem,
        "encrypt_cert_id": keys.encryption_cert_id,
    }
