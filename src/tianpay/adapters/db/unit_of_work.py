"""The SQL unit of work: one connection and one database transaction per business transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, RootTransaction

from tianpay.ports.card_bindings import CardBindingRepository, ChannelHealthRepository
from tianpay.ports.clock import Clock, IdGenerator
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

from .card_bindings import SqlCardBindingRepository, SqlChannelHealthRepository
from .console import SqlChannelSettingsRepository, SqlConsoleRepository
from .debit_schedules import SqlDebitScheduleRepository
from .gateway import SqlAttemptQueryRepository, SqlOperatorAlertRepository
from .housekeeping import SqlHousekeepingRepository
from .idempotency import SqlIdempotencyRepository
from .ledger import SqlLedgerRepository
from .mandates import SqlMandateRepository
from .members import SqlMemberRepository, SqlSmsCodeRepository
from .merchant_portal import SqlMerchantUserRepository, SqlPortalQueries
from .merchants import SqlMerchantRepository
from .operators import SqlOperatorRepository
from .outbox import SqlOutboxRepository
from .payments import SqlPaymentRepository
from .payouts import SqlPayoutRepository
from .pos import SqlPosTransactionRepository, SqlTerminalRepository
from .reconciliation import SqlReconciliationRepository
from .refunds import SqlRefundRepository
from .replays import SqlReplayRepository
from .settlements import SqlSettlementRepository
from .statistics import SqlStatisticsRepository
from .wallet import SqlWalletRepository


class SqlUnitOfWork:
    # Repositories are typed by their ports so the class satisfies the UnitOfWork protocol; each is
    # bound to this unit of work's connection when it opens.
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

    def __init__(self, engine: Engine, clock: Clock, ids: IdGenerator) -> None:
        self._engine = engine
        self.clock = clock
        self.ids = ids
        self._connection: Connection | None = None
        self._transaction: RootTransaction | None = None
        self._ledger: SqlLedgerRepository | None = None

    def __enter__(self) -> Self:
        self._connection = self._engine.connect()
        self._transaction = self._connection.begin()
        self._ledger = SqlLedgerRepository(self._connection, self.clock)
        self.ledger = self._ledger
        self.operators = SqlOperatorRepository(self._connection)
        self.merchants = SqlMerchantRepository(self._connection)
        self.idempotency = SqlIdempotencyRepository(self._connection, self.clock)
        self.replays = SqlReplayRepository(self._connection)
        self.outbox = SqlOutboxRepository(self._connection, self.clock, self.ids)
        self.payments = SqlPaymentRepository(self._connection)
        self.refunds = SqlRefundRepository(self._connection)
        self.attempt_queries = SqlAttemptQueryRepository(self._connection)
        self.alerts = SqlOperatorAlertRepository(self._connection)
        self.members = SqlMemberRepository(self._connection)
        self.sms_codes = SqlSmsCodeRepository(self._connection)
        self.wallet = SqlWalletRepository(self._connection)
        self.card_bindings = SqlCardBindingRepository(self._connection)
        self.channel_health = SqlChannelHealthRepository(self._connection)
        self.mandates = SqlMandateRepository(self._connection)
        self.debit_schedules = SqlDebitScheduleRepository(self._connection)
        self.terminals = SqlTerminalRepository(self._connection)
        self.pos_transactions = SqlPosTransactionRepository(self._connection)
        self.reconciliation = SqlReconciliationRepository(self._connection)
        self.statistics = SqlStatisticsRepository(self._connection)
        self.settlements = SqlSettlementRepository(self._connection)
        self.payouts = SqlPayoutRepository(self._connection)
        self.merchant_users = SqlMerchantUserRepository(self._connection)
        self.portal_queries = SqlPortalQueries(self._connection)
        self.console = SqlConsoleRepository(self._connection)
        self.channel_settings = SqlChannelSettingsRepository(self._connection)
        self.housekeeping = SqlHousekeepingRepository(self._connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()
        finally:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._transaction = None
            self._ledger = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open")
        return self._connection

    def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("the unit of work is not open")
        # The ledger's deferred balance updates go last, so their row locks are held for the commit
        # alone (adapters/db/ledger.py).
        if self._ledger is not None:
            self._ledger.flush_deferred()
        self._transaction.commit()

    def rollback(self) -> None:
        if self._ledger is not None:
            self._ledger.discard_deferred()
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
