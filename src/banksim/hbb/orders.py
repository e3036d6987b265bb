"""HBB's record of every consume and refund it accepted, and the order lifecycle as a table.

An order is identified on the wire by `merId + orderId + txnTime` (orderId unique per day) and
inside the bank by its `queryId`. The lifecycle (online banking):

    awaiting_payer --login--> authenticated --paid--> succeeded
    awaiting_payer|authenticated --declined|expired|locked_out--> failed
    authenticated --deferred (magic 94)--> processing --resolved--> succeeded|failed
Refunds enter at `processing` (94) or go straight to `succeeded`/`failed`. A quick-pay consume
(bizType 000301) has no payer pages: its token names the card, so it takes `logged_in` at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from banksim.core.books import Books
from banksim.core.magic import Magic

SCHEMA = """
CREATE TABLE IF NOT EXISTS hbb_orders (
    query_id TEXT PRIMARY KEY,
    mer_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    txn_time TEXT NOT NULL,
    order_date TEXT NOT NULL,
    txn_type TEXT NOT NULL,
    txn_sub_type TEXT NOT NULL,
    biz_type TEXT NOT NULL,
    access_type TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency_code TEXT NOT NULL,
    front_url TEXT NOT NULL DEFAULT '',
    back_url TEXT NOT NULL,
    pay_timeout TEXT NOT NULL DEFAULT '',
    orig_query_id TEXT NOT NULL DEFAULT '',
    acc_no TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    resp_code TEXT NOT NULL DEFAULT '',
    trace_no TEXT NOT NULL,
    trace_time TEXT NOT NULL,
    settle_date TEXT NOT NULL DEFAULT '',
    session TEXT UNIQUE,
    login_failures INTEGER NOT NULL DEFAULT 0,
    query_count INTEGER NOT NULL DEFAULT 0,
    magic TEXT NOT NULL,
    req_reserved TEXT NOT NULL DEFAULT '',
    mer_abbr TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (mer_id, order_id, order_date)
);
CREATE INDEX IF NOT EXISTS hbb_orders_by_original ON hbb_orders(orig_query_id);
"""


class OrderStatus(StrEnum):
    AWAITING_PAYER = "awaiting_payer"
    AUTHENTICATED = "authenticated"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class OrderEvent(StrEnum):
    LOGGED_IN = "logged_in"
    PAID = "paid"
    DECLINED = "declined"
    EXPIRED = "expired"
    LOCKED_OUT = "locked_out"
    DEFERRED = "deferred"
    RESOLVED_PAID = "resolved_paid"
    RESOLVED_DECLINED = "resolved_declined"


S, E = OrderStatus, OrderEvent
TRANSITIONS: Mapping[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (S.AWAITING_PAYER, E.LOGGED_IN): S.AUTHENTICATED,
    (S.AWAITING_PAYER, E.EXPIRED): S.FAILED,
    (S.AWAITING_PAYER, E.LOCKED_OUT): S.FAILED,
    (S.AUTHENTICATED, E.PAID): S.SUCCEEDED,
    (S.AUTHENTICATED, E.DECLINED): S.FAILED,
    (S.AUTHENTICATED, E.EXPIRED): S.FAILED,
    (S.AUTHENTICATED, E.DEFERRED): S.PROCESSING,
    (S.PROCESSING, E.RESOLVED_PAID): S.SUCCEEDED,
    (S.PROCESSING, E.RESOLVED_DECLINED): S.FAILED,
}
FINAL = frozenset({S.SUCCEEDED, S.FAILED})


class IllegalTransition(Exception):
    pass


def next_status(current: OrderStatus, event: OrderEvent) -> OrderStatus:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransition(f"{event.value} is not allowed in {current.value}") from None


class DuplicateOrder(Exception):
    """`orderId` was already used by this merchant on that day (respCode 12)."""


@dataclass(frozen=True, slots=True)
class Order:
    query_id: str
    mer_id: str
    order_id: str
    txn_time: str
    txn_type: str
    txn_sub_type: str
    biz_type: str
    access_type: str
    channel_type: str
    amount_minor: int
    currency_code: str
    front_url: str
    back_url: str
    pay_timeout: str
    orig_query_id: str
    acc_no: str
    status: OrderStatus
    resp_code: str
    trace_no: str
    trace_time: str
    settle_date: str
    session: str | None
    login_failures: int
    query_count: int
    magic: Magic
    req_reserved: str
    mer_abbr: str

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class NewOrder:
    query_id: str
    mer_id: str
    order_id: str
    txn_time: str
    txn_type: str
    txn_sub_type: str
    biz_type: str
    access_type: str
    channel_type: str
    amount_minor: int
    currency_code: str
    front_url: str
    back_url: str
    pay_timeout: str
    orig_query_id: str
    status: OrderStatus
    resp_code: str
    trace_no: str
    trace_time: str
    session: str | None
    magic: Magic
    req_reserved: str
    mer_abbr: str


class Orders:
    def __init__(self, books: Books) -> None:
        self._books = books

    def insert(self, conn: sqlite3.Connection, order: NewOrder, at: datetime) -> None:
        """Insert inside the caller's transaction (refunds check the refundable sum in the same one)."""
        try:
            conn.execute(
                "INSERT INTO hbb_orders(query_id, mer_id, order_id, txn_time, order_date, txn_type, txn_sub_type,"
                " biz_type, access_type, channel_type, amount_minor, currency_code, front_url, back_url,"
                " pay_timeout, orig_query_id, status, resp_code, trace_no, trace_time, session, magic,"
                " req_reserved, mer_abbr, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    order.query_id,
                    order.mer_id,
                    order.order_id,
                    order.txn_time,
                    order.txn_time[:8],
                    order.txn_type,
                    order.txn_sub_type,
                    order.biz_type,
                    order.access_type,
                    order.channel_type,
                    order.amount_minor,
                    order.currency_code,
                    order.front_url,
                    order.back_url,
                    order.pay_timeout,
                    order.orig_query_id,
                    order.status.value,
                    order.resp_code,
                    order.trace_no,
                    order.trace_time,
                    order.session,
                    order.magic.value,
                    order.req_reserved,
                    order.mer_abbr,
                    at.isoformat(),
                    at.isoformat(),
                ),
            )
        except sqlite3.IntegrityError as error:
            raise DuplicateOrder(order.order_id) from error

    def exists(self, mer_id: str, order_id: str, txn_time: str) -> bool:
        rows = self._books.query(
            "SELECT 1 FROM hbb_orders WHERE mer_id = ? AND order_id = ? AND order_date = ?",
            (mer_id, order_id, txn_time[:8]),
        )
        return bool(rows)

    def by_query_id(self, query_id: str) -> Order | None:
        return self._one("SELECT * FROM hbb_orders WHERE query_id = ?", (query_id,))

    def by_session(self, session: str) -> Order | None:
        return self._one("SELECT * FROM hbb_orders WHERE session = ?", (session,))

    def by_order(self, mer_id: str, order_id: str, txn_time: str) -> Order | None:
        return self._one(
            "SELECT * FROM hbb_orders WHERE mer_id = ? AND order_id = ? AND txn_time = ?",
            (mer_id, order_id, txn_time),
        )

    def refunded_minor(self, conn: sqlite3.Connection, orig_query_id: str) -> int:
        """Refunds that hold part of the original: succeeded ones and those still processing."""
        row = conn.execute(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM hbb_orders WHERE orig_query_id = ? AND status IN (?, ?)",
            (orig_query_id, OrderStatus.SUCCEEDED.value, OrderStatus.PROCESSING.value),
        ).fetchone()
        return int(row[0])

    def apply(
        self,
        query_id: str,
        event: OrderEvent,
        at: datetime,
        *,
        resp_code: str = "",
        acc_no: str | None = None,
        settle_date: date | None = None,
    ) -> Order | None:
        """Compare-and-set: move the order if `event` is legal from its current status.

        Returns the updated order, or None when another request moved it first (so a double
        click on "confirm" pays once).
        """
        with self._books.tx() as conn:
            row = conn.execute("SELECT status FROM hbb_orders WHERE query_id = ?", (query_id,)).fetchone()
            current = OrderStatus(row["status"])
            if (current, event) not in TRANSITIONS:
                return None
            conn.execute(
                "UPDATE hbb_orders SET status = ?, resp_code = ?, acc_no = COALESCE(?, acc_no),"
                " settle_date = COALESCE(?, settle_date), updated_at = ? WHERE query_id = ? AND status = ?",
                (
                    next_status(current, event).value,
                    resp_code,
                    acc_no,
                    settle_date.strftime("%m%d") if settle_date else None,
                    at.isoformat(),
                    query_id,
                    current.value,
                ),
            )
        return self.by_query_id(query_id)

    def count_login_failure(self, query_id: str) -> int:
        with self._books.tx() as conn:
            conn.execute("UPDATE hbb_orders SET login_failures = login_failures + 1 WHERE query_id = ?", (query_id,))
            row = conn.execute("SELECT login_failures FROM hbb_orders WHERE query_id = ?", (query_id,)).fetchone()
        return int(row[0])

    def count_query(self, query_id: str) -> int:
        with self._books.tx() as conn:
            conn.execute("UPDATE hbb_orders SET query_count = query_count + 1 WHERE query_id = ?", (query_id,))
            row = conn.execute("SELECT query_count FROM hbb_orders WHERE query_id = ?", (query_id,)).fetchone()
        return int(row[0])

    def recent(self, limit: int = 100) -> list[Order]:
        rows = self._books.query("SELECT * FROM hbb_orders ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_order(r) for r in rows]

    def _one(self, sql: str, params: tuple[object, ...]) -> Order | None:
        rows = self._books.query(sql, params)
        return _order(rows[0]) if rows else None


def _order(row: sqlite3.Row) -> Order:
    return Order(
        query_id=row["query_id"],
        mer_id=row["mer_id"],
        order_id=row["order_id"],
        txn_time=row["txn_time"],
        txn_type=row["txn_type"],
        txn_sub_type=row["txn_sub_type"],
        biz_type=row["biz_type"],
        access_type=row["access_type"],
        channel_type=row["channel_type"],
        amount_minor=row["amount_minor"],
        currency_code=row["currency_code"],
        front_url=row["front_url"],
        back_url=row["back_url"],
        pay_timeout=row["pay_timeout"],
        orig_query_id=row["orig_query_id"],
        acc_no=row["acc_no"],
        status=OrderStatus(row["status"]),
        resp_code=row["resp_code"],
        trace_no=row["trace_no"],
        trace_time=row["trace_time"],
        settle_date=row["settle_date"],
        session=row["session"],
        login_failures=row["login_failures"],
        query_count=row["query_count"],
        magic=Magic(row["magic"]),
        req_reserved=row["req_reserved"],
        mer_abbr=row["mer_abbr"],
    )
