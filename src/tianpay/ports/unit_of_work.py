"""The unit-of-work port: one business transaction, committed explicitly or rolled back.

A service opens one with ``with uow_factory() as uow:``, uses the repositories it carries, and calls
``uow.commit()``; leaving the block without committing rolls everything back. Bank calls are never
made while a unit of work is open (DESIGN.md §7): persist intent, commit, call, then open another.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from tianpay.ports.card_bindings import CardBindingRepository, ChannelHealthRepository
from tianpay.ports.console import ChannelSettingsRepository, ConsoleRepository
from tianpay.ports.debit_schedules import DebitScheduleRepository
from tianpay.ports.gateway import AttemptQueryRepository, OperatorAlertRepository
from tianpay.ports.housekeeping import HousekeepingRepository
from tianpay.ports.idempotency import IdempotencyRepository
from tianpay.ports.ledger import LedgerRepository
from tianpay.ports.mandates import MandateRepository
from tianpay.ports.members import MemberRepository, SmsCodeRepository
from tianpay.ports.merchant_portal import MerchantUserRepository, PortalQueries
from tianpay.ports.merchants import MerchantRepository
from tianpay.ports.operators import OperatorRepository
from tianpay.ports.outbox import OutboxRepository
from tianpay.ports.payments import PaymentRepository
from tianpay.ports.payout_records import PayoutRepository
from tianpay.ports.pos import PosTransactionRepository, TerminalRepository
from tianpay.ports.reconciliation import ReconciliationRepository
from tianpay.ports.refunds import RefundRepository
from tianpay.ports.replays import ReplayRepository
from tianpay.ports.settlements import SettlementRepository
from tianpay.ports.statistics import StatisticsRepository
from tianpay.ports.wallet import WalletRepository


class UnitOfWork(Protocol):
    ledger: LedgerRepository
    operators: OperatorRepository
    merchants: MerchantRepository
    idempotency: IdempotencyRepository
    replays: ReplayRepository
    outbox: OutboxRepository
    payments: PaymentRepository
    refunds: RefundRepository
    attempt_queries: AttemptQueryRepository
    alerts: OperatorAlertRepository
    members: MemberRepository
    sms_codes: SmsCodeRepository
    wallet: WalletRepository
    card_bindings: CardBindingRepository
    channel_health: ChannelHealthRepository
    mandates: MandateRepository
    debit_schedules: DebitScheduleRepository
    terminals: TerminalRepository
    pos_transactions: PosTransactionRepository
    reconciliation: ReconciliationRepository
    statistics: StatisticsRepository
    settlements: SettlementRepository
    payouts: PayoutRepository
    merchant_users: MerchantUserRepository
    portal_queries: PortalQueries
    console: ConsoleRepository
    channel_settings: ChannelSettingsRepository
    housekeeping: HousekeepingRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
