"""Mandate expiry (docs/direct-debit.md "Lifecycle"): the worker's ``mandate_expiry`` job moves active
mandates past ``valid_until`` (Beijing date) to ``expired``, its own state. Expiry is not a
revocation: no ``mandate.revoked`` webhook, and a bank's later revocation notice changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import cast

from sqlalchemy import select

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import events
from tianpay.bootstrap import Container
from tianpay.domain.mandate import Mandate, MandateStatus, business_date
from tianpay.domain.merchant import Merchant, MerchantStatus
from tianpay.domain.money import Money
from tianpay.entrypoints.worker import direct_debit_jobs
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import mandate_records, mandates
from tianpay.services.member_tools import MemberTools
from tianpay.services.members import ImplicitRegistration, register_for_merchant

MERCHANT = "mch_EXPIRY"


def active_mandate(uow_factory: UnitOfWorkFactory, clock: SettableClock, member_id: str, mandate_id: str,
                   valid_days: int) -> Mandate:
    now = clock.now()
    mandate = Mandate(
        id=mandate_id, merchant_id=MERCHANT, member_id=member_id, merchant_mandate_no=mandate_id, bank="JHB",
        card_masked="622799******0013", max_per_debit=Money.cny(10_000), max_per_month=Money.cny(20_000),
        valid_until=business_date(now) + timedelta(days=valid_days), purpose="utility:electricity",
        status=MandateStatus.ACTIVE, created_at=now, updated_at=now,
    )
    with uow_factory() as uow:
        uow.mandates.add(mandate)
        uow.commit()
    return mandate


def test_the_worker_expires_mandates_past_their_validity_without_a_revocation_webhook(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, tools: MemberTools,
) -> None:
    with uow_factory() as uow:
        uow.merchants.add(Merchant(MERCHANT, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec", clock.now()))
        uow.commit()
    member_id = register_for_merchant(uow_factory, tools, ImplicitRegistration(
        MERCHANT, "payer-x", "张伟", "110105198503120012", "13800138001")).member.id
    ending = active_mandate(uow_factory, clock, member_id, "mdt_ENDING", valid_days=1)
    lasting = active_mandate(uow_factory, clock, member_id, "mdt_LASTING", valid_days=30)

    # The job as the worker wires it (entrypoints/worker.py direct_debit_jobs).
    container = SimpleNamespace(uow=uow_factory, clock=clock, settings=SimpleNamespace(
        base_url="http://127.0.0.1:9", requery_first_after_s=60.0, requery_max_interval_s=1800.0,
        absent_order_margin_s=900.0,
    ))
    [expiry] = [job for job in direct_debit_jobs(cast(Container, container), worker_id="w1")
                if job.name == "mandate_expiry"]

    assert expiry.run_once(clock.now()) == 0  # valid through its last (Beijing) day
    later = clock.now() + timedelta(days=2)
    assert expiry.run_once(later) == 1
    assert expiry.run_once(later) == 0
    assert mandates.get_mandate(uow_factory, ending.id, merchant_id=MERCHANT).status is MandateStatus.EXPIRED
    assert mandates.get_mandate(uow_factory, lasting.id, merchant_id=MERCHANT).status is MandateStatus.ACTIVE

    # A bank's revocation notice for the expired mandate is acknowledged and changes nothing.
    assert mandate_records.apply_bank_revocation(uow_factory, clock, "JHB", ending.id)
    assert mandates.get_mandate(uow_factory, ending.id, merchant_id=MERCHANT).status is MandateStatus.EXPIRED
    with uow_factory() as uow:
        types = uow._connection.execute(  # type: ignore[attr-defined]
            select(events.c.type).where(events.c.merchant_id == MERCHANT)
        ).scalars().all()
    assert "mandate.revoked" not in types


def test_a_bank_revocation_notice_revokes_an_active_mandate_once(
    uow_factory: UnitOfWorkFactory, clock: SettableClock, tools: MemberTools,
) -> None:
    with uow_factory() as uow:
        uow.merchants.add(Merchant(MERCHANT, "津门好物商城", MerchantStatus.ACTIVE, None, "whsec", clock.now()))
        uow.commit()
    member_id = register_for_merchant(uow_factory, tools, ImplicitRegistration(
        MERCHANT, "payer-y", "张伟", "110105198503120012", "13800138001")).member.id
    mandate = active_mandate(uow_factory, clock, member_id, "mdt_BANKREVOKE", valid_days=30)
    assert not mandate_records.apply_bank_revocation(uow_factory, clock, "BCB", mandate.id)  # not its bank
    assert not mandate_records.apply_bank_revocation(uow_factory, clock, "JHB", "mdt_NONE")  # not ours
    assert mandate_records.apply_bank_revocation(uow_factory, clock, "JHB", mandate.id)
    assert mandate_records.apply_bank_revocation(uow_factory, clock, "JHB", mandate.id)  # a retried notice
    assert mandates.get_mandate(uow_factory, mandate.id, merchant_id=MERCHANT).status is MandateStatus.REVOKED
    with uow_factory() as uow:
        types = uow._connection.execute(  # type: ignore[attr-defined]
            select(events.c.type).where(events.c.merchant_id == MERCHANT)
        ).scalars().all()
    assert list(types).count("mandate.revoked") == 1
