"""Revoking a direct-debit mandate, over plain HTTP against a real platform server and JHB's simulator,
on both databases: the payer's wallet lists the mandates (merchant, purpose, limits, masked card,
status) and revokes one after a confirmation step (CSRF-protected), revoked on the platform first and
then at the bank; the payer revoking in JHB's app reaches the platform as a signed
``mandate.revoke.notify``, applied once; a forged notice changes nothing. Each revocation queues one
``mandate.revoked`` webhook.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.bindings.conftest import ZHANG_WEI, bank_sms_code
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway.conftest import (
    JHB_CARD,
    MERCHANT_NAME,
    BankWorld,
    add_merchant,
    bank_world,
    form_ending,
    gateway_settings_for,
    onboarded_dir,
    wait_until,
)
from tests.wallet.test_wallet_pages import Platform, live_wallet_platform
from tianpay.adapters.db.tables import events
from tianpay.domain.mandate import Mandate, MandateStatus, business_date
from tianpay.domain.money import Money
from tianpay.ports.channels import DebitOrder, Outcome
from tianpay.services import mandate_records, mandates, members

pytestmark = pytest.mark.e2e
__all__ = ["bank_world", "onboarded_dir"]
MERCHANT = "mch_WMANDATE"


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, database_factory: _DatabaseFactory, onboarded_dir: Path
             ) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    with live_wallet_platform(database_url, onboarded_dir) as platform:
        yield platform


@pytest.fixture(scope="module")
def payer(platform: Platform) -> str:
    add_merchant(platform.container.uow, platform.clock, MERCHANT)
    registration = members.ImplicitRegistration(MERCHANT, "payer-wm", ZHANG_WEI.name, ZHANG_WEI.id_number,
                                                ZHANG_WEI.phone)
    return members.register_for_merchant(platform.container.uow, platform.container.member_tools,
                                         registration).member.id


@pytest.fixture
def browser(platform: Platform, payer: str) -> Iterator[httpx.Client]:
    """The payer's browser, signed in (the sign-in pages themselves are test_wallet_pages' story)."""
    token = members.start_session(platform.container.uow, platform.container.member_tools, payer)
    with httpx.Client(base_url=platform.base_url, timeout=15.0, follow_redirects=True) as client:
        client.cookies.set("tp_wallet_session", token)
        yield client


def sign_mandate(platform: Platform, bank_world: BankWorld, member_id: str, purpose: str) -> Mandate:
    container = platform.container
    request = mandates.MandateRequest(
        member_id=member_id, merchant_mandate_no=f"M-{container.ids.new('x')}", max_per_debit=Money.cny(20_000),
        max_per_month=Money.cny(30_000), valid_until=business_date(platform.clock.now()) + timedelta(days=365),
        purpose=purpose, card_number=JHB_CARD, name=ZHANG_WEI.name, id_number=ZHANG_WEI.id_number,
        phone=ZHANG_WEI.phone,
    )
    applied = mandates.create_mandate(container.uow, container.clock, container.ids, container.channels,
                                      container.member_tools.cipher, request, merchant_id=MERCHANT,
                                      settings=gateway_settings_for(platform.base_url))
    code = bank_sms_code(bank_world, "JHB", ZHANG_WEI.phone)
    return mandates.confirm_mandate(container.uow, container.clock, container.channels,
                                    container.member_tools.cipher, applied.id, code, merchant_id=MERCHANT)


def bank_mandate_no(platform: Platform, mandate: Mandate) -> str:
    assert mandate.bank_ref_sealed is not None
    return platform.container.member_tools.cipher.decrypt(mandates.PII_MANDATE_BANK_REF, mandate.bank_ref_sealed,
                                                          mandate.id)


def status_of(platform: Platform, mandate_id: str) -> MandateStatus:
    return mandates.get_mandate(platform.container.uow, mandate_id, merchant_id=MERCHANT).status


def revoked_webhooks(platform: Platform, mandate_id: str) -> int:
    with platform.container.uow() as uow:
        payloads = uow._connection.execute(  # type: ignore[attr-defined]
            select(events.c.payload).where(events.c.merchant_id == MERCHANT, events.c.type == "mandate.revoked")
        ).scalars().all()
    return sum(1 for payload in payloads if mandate_id in str(payload))


def bank_refuses_debits(platform: Platform, mandate: Mandate) -> bool:
    """The bank's own check: a debit on the mandate is 1071 once JHB has revoked it."""
    order = DebitOrder(attempt_id=f"P{uuid.uuid4().hex[:24]}", amount=Money.cny(100), subject="探测",
                       created_at=datetime.now(UTC), notify_url=f"{platform.base_url}/channels/JHB/notify",
                       bank_mandate_no=bank_mandate_no(platform, mandate))
    result = platform.container.channels.direct_debit("JHB").debit(order)
    return result.outcome is Outcome.FAILED and result.bank_code == "1071"


def test_the_payer_lists_and_revokes_a_mandate_in_the_wallet(
    platform: Platform, bank_world: BankWorld, payer: str, browser: httpx.Client,
) -> None:
    mandate = sign_mandate(platform, bank_world, payer, "utility:electricity")

    page = browser.get("/wallet/mandates")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    item = page.text[page.text.index(f'data-mandate="{mandate.id}"'):]
    assert MERCHANT_NAME in item
    assert "电费" in item
    assert "¥200.00" in item
    assert "¥300.00" in item
    assert "生效中" in item
    assert mandate.card_masked in item
    assert JHB_CARD not in page.text
    assert ZHANG_WEI.id_number not in page.text

    # No CSRF token, no revocation; and the list's button only leads to a confirmation page.
    assert browser.post(f"/wallet/mandates/{mandate.id}/revoke", data={"confirm": "yes"}).status_code == 403
    confirm_page = browser.get(f"/wallet/mandates/{mandate.id}/revoke")
    form = form_ending(confirm_page, f"/wallet/mandates/{mandate.id}/revoke")
    assert status_of(platform, mandate.id) is MandateStatus.ACTIVE

    done = browser.post(form.action, data=form.fields)
    assert done.url.path == "/wallet/mandates"
    assert status_of(platform, mandate.id) is MandateStatus.REVOKED
    assert "已解约" in done.text
    assert revoked_webhooks(platform, mandate.id) == 1
    assert bank_refuses_debits(platform, mandate)

    # Again (a double submit): nothing changes, nothing is sent twice.
    again = browser.post(form.action, data=form.fields)
    assert again.status_code == 200
    assert revoked_webhooks(platform, mandate.id) == 1


def test_another_members_mandate_cannot_be_revoked_from_the_wallet(
    platform: Platform, bank_world: BankWorld, payer: str, browser: httpx.Client,
) -> None:
    mandate = sign_mandate(platform, bank_world, payer, "utility:water")
    other = members.register_for_merchant(
        platform.container.uow, platform.container.member_tools,
        members.ImplicitRegistration(MERCHANT, "payer-other", "李娜", "120110197801010039", "13800138003"),
    ).member.id
    stranger_token = members.start_session(platform.container.uow, platform.container.member_tools, other)
    with httpx.Client(base_url=platform.base_url, timeout=15.0, follow_redirects=True) as stranger:
        stranger.cookies.set("tp_wallet_session", stranger_token)
        assert mandate.id not in stranger.get("/wallet/mandates").text
        own_form = form_ending(stranger.get("/wallet/mandates"), "/wallet/logout")
        refused = stranger.post(f"/wallet/mandates/{mandate.id}/revoke",
                                data={"csrf_token": own_form.fields["csrf_token"], "confirm": "yes"})
        assert refused.status_code == 404
    assert status_of(platform, mandate.id) is MandateStatus.ACTIVE
    mandates.revoke_mandate(platform.container.uow, platform.container.clock, platform.container.channels,
                            platform.container.member_tools.cipher, mandate.id, merchant_id=MERCHANT)


def test_the_payer_revoking_at_the_bank_reaches_the_platform_once(
    platform: Platform, bank_world: BankWorld, payer: str, browser: httpx.Client,
) -> None:
    mandate = sign_mandate(platform, bank_world, payer, "utility:gas")
    bank_no = bank_mandate_no(platform, mandate)

    revoked_at_bank = httpx.post(f"{bank_world.urls['JHB']}/_sim/mandates/{bank_no}/revoke", timeout=10)
    assert revoked_at_bank.status_code == 200
    assert revoked_at_bank.json()["status"] == "REVOKED"
    wait_until(lambda: status_of(platform, mandate.id) is MandateStatus.REVOKED, what="mandate.revoke.notify applied")
    assert revoked_webhooks(platform, mandate.id) == 1
    assert "已解约" in browser.get("/wallet/mandates").text

    # The payer revokes again in the app: the bank sends nothing new, the platform changes nothing.
    assert httpx.post(f"{bank_world.urls['JHB']}/_sim/mandates/{bank_no}/revoke", timeout=10).status_code == 200
    # A copy of the notice applied again (JHB retries until acknowledged) is acknowledged, no second webhook.
    assert mandate_records.apply_bank_revocation(platform.container.uow, platform.container.clock, "JHB", mandate.id)
    assert revoked_webhooks(platform, mandate.id) == 1
    assert httpx.post(f"{bank_world.urls['JHB']}/_sim/mandates/JHM-none/revoke", timeout=10).status_code == 404


def test_a_forged_revocation_notice_changes_nothing(
    platform: Platform, bank_world: BankWorld, payer: str,
) -> None:
    mandate = sign_mandate(platform, bank_world, payer, "utility:electricity")
    container = platform.container
    partner_id = container.channels.direct_debit("JHB")._config.partner_id  # type: ignore[attr-defined]
    forged = {
        "head": {"version": "2.0", "partner_id": partner_id, "service": "mandate.revoke.notify", "req_no": "NRX",
                 "req_time": "20250101120000", "key_id": "k1"},
        "iv": "AAAAAAAAAAAAAAAAAAAAAA==", "body": "AAAAAAAAAAAAAAAAAAAAAA==", "sign": "MEUCIQ==",
    }
    answer = httpx.post(f"{platform.base_url}/channels/JHB/notify", json=forged, timeout=10)
    assert answer.status_code != 200
    assert status_of(platform, mandate.id) is MandateStatus.ACTIVE
    assert revoked_webhooks(platform, mandate.id) == 0
    # A bank that is not the mandate's is refused even when it verifies (here: applied directly).
    assert not mandate_records.apply_bank_revocation(container.uow, container.clock, "HBB", mandate.id)
    assert status_of(platform, mandate.id) is MandateStatus.ACTIVE
