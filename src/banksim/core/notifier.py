"""Asynchronous notifications from a bank to the platform, with the bank's own retry schedule.

Each bank enqueues a signed message with `Notifier.enqueue`; a background asyncio task in the
bank's process POSTs it until the receiver acknowledges it or the schedule runs out. The queue
lives in the bank's books, so a restarted bank resumes where it stopped. Schedules compress by
`BANKSIM_NOTIFY_SCALE` so tests see a day of retries in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

from banksim.core.books import Books
from banksim.core.clock import SimClock
from banksim.core.faults import Faults

log = logging.getLogger("banksim.notifier")

# How often the sender looks at the queue when nothing wakes it: it also notices a clock jump.
IDLE_POLL_S = 0.5


class NotificationStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    ABANDONED = "abandoned"
    DROPPED = "dropped"
    SUPPRESSED = "suppressed"


Acknowledges = Callable[[int, bytes], bool]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays between attempts: the first attempt is immediate, then one retry per delay."""

    delays_s: tuple[float, ...]
    scale: float = 1.0

    def delay_after(self, attempts: int) -> float | None:
        """The wait after the `attempts`-th failed attempt, or None when the schedule is spent."""
        if attempts > len(self.delays_s):
            return None
        return self.delays_s[attempts - 1] * self.scale

    @property
    def first_retry_s(self) -> float:
        return (self.delays_s[0] if self.delays_s else 0.0) * self.scale


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: int
    event_ref: str
    url: str
    status: NotificationStatus
    attempts: int
    last_error: str


class Notifier:
    def __init__(
        self,
        books: Books,
        clock: SimClock,
        faults: Faults,
        policy: RetryPolicy,
        acknowledges: Acknowledges,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self._books = books
        self._clock = clock
        self._faults = faults
        self.policy = policy
        self.acknowledges = acknowledges
        self._timeout_s = timeout_s
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._stopping = False

    def enqueue(
        self,
        *,
        event_ref: str,
        url: str,
        body: bytes,
        content_type: str,
        delay_s: float = 0.0,
        suppressed: bool = False,
    ) -> None:
        """Queue a notification; fault settings may drop it or add a late duplicate.

        `suppressed` records a notification the bank deliberately never sends (magic 98), so
        `/_sim/state` still shows it.
        """
        status = NotificationStatus.SUPPRESSED if suppressed else NotificationStatus.PENDING
        if status is NotificationStatus.PENDING and self._faults.drop_notification():
            status = NotificationStatus.DROPPED
        self._insert(event_ref, url, body, content_type, status, delay_s)
        if status is NotificationStatus.PENDING and self._faults.duplicate_notification():
            self._insert(event_ref, url, body, content_type, status, delay_s + self.policy.first_retry_s)
        self._poke()

    def notifications(self, event_ref: str | None = None) -> list[Notification]:
        if event_ref is None:
            rows = self._books.query("SELECT * FROM notifications ORDER BY notification_id DESC LIMIT 200")
        else:
            rows = self._books.query(
                "SELECT * FROM notifications WHERE event_ref = ? ORDER BY notification_id", (event_ref,)
            )
        return [
            Notification(
                r["notification_id"],
                r["event_ref"],
                r["url"],
                NotificationStatus(r["status"]),
                r["attempts"],
                r["last_error"],
            )
            for r in rows
        ]

    # The background sender

    def start(self) -> None:
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="banksim-notifier")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping = True
        for task in [self._task, *self._in_flight.values()]:
            task.cancel()
        for task in [self._task, *self._in_flight.values()]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._in_flight.clear()

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """One pass: attempt every notification that is due; returns how many were attempted."""
        rows = self._due_rows()
        await asyncio.gather(
            *(
                self._attempt(client, r["notification_id"], r["url"], r["content_type"], r["body"], r["attempts"])
                for r in rows
            )
        )
        return len(rows)

    def _due_rows(self) -> list[sqlite3.Row]:
        return self._books.query(
            "SELECT notification_id, url, content_type, body, attempts FROM notifications"
            " WHERE status = ? AND next_at <= ? ORDER BY next_at",
            (NotificationStatus.PENDING.value, self._clock.timestamp()),
        )

    def _spawn_due(self, client: httpx.AsyncClient) -> None:
        # Each attempt runs as its own task so one slow receiver never holds up the others.
        for r in self._due_rows():
            notification_id = int(r["notification_id"])
            if notification_id in self._in_flight:
                continue
            task = asyncio.create_task(
                self._attempt(client, notification_id, r["url"], r["content_type"], r["body"], r["attempts"])
            )
            self._in_flight[notification_id] = task
            task.add_done_callback(functools.partial(self._finished, notification_id))

    def _finished(self, notification_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(notification_id, None)
        self._poke()

    async def _run(self) -> None:
        assert self._wake is not None
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            while not self._stopping:
                try:
                    self._spawn_due(client)
                except Exception:
                    # The sender must outlive any single bad row or network error.
                    log.exception("notification pass failed")
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the event, and stop() would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_wait_s()):
                        await self._wake.wait()

    def _idle_wait_s(self) -> float:
        in_flight = ",".join(str(i) for i in self._in_flight) or "0"
        rows = self._books.query(
            f"SELECT MIN(next_at) AS due FROM notifications WHERE status = ? AND notification_id NOT IN ({in_flight})",
            (NotificationStatus.PENDING.value,),
        )
        due = rows[0]["due"]
        if due is None:
            return IDLE_POLL_S
        return max(0.0, min(IDLE_POLL_S, float(due) - self._clock.timestamp()))

    async def _attempt(
        self, client: httpx.AsyncClient, notification_id: int, url: str, content_type: str, body: bytes, attempts: int
    ) -> None:
        error = ""
        try:
            response = await client.post(url, content=body, headers={"Content-Type": content_type})
            acknowledged = self.acknowledges(response.status_code, response.content)
            if not acknowledged:
                error = f"HTTP {response.status_code}: {response.content[:80]!r}"
        except httpx.HTTPError as exc:
            acknowledged = False
            error = f"{type(exc).__name__}: {exc}"
        self._record(notification_id, attempts + 1, acknowledged, error)

    def _record(self, notification_id: int, attempts: int, acknowledged: bool, error: str) -> None:
        now = self._clock.now()
        with self._books.tx() as conn:
            if acknowledged:
                conn.execute(
                    "UPDATE notifications SET status = ?, attempts = ?, delivered_at = ?, last_error = ''"
                    " WHERE notification_id = ?",
                    (NotificationStatus.DELIVERED.value, attempts, now.isoformat(), notification_id),
                )
                return
            delay_s = self.policy.delay_after(attempts)
            status = NotificationStatus.PENDING if delay_s is not None else NotificationStatus.ABANDONED
            conn.execute(
                "UPDATE notifications SET status = ?, attempts = ?, next_at = ?, last_error = ?"
                " WHERE notification_id = ?",
                (status.value, attempts, now.timestamp() + (delay_s or 0.0), error, notification_id),
            )

    def _insert(
        self, event_ref: str, url: str, body: bytes, content_type: str, status: NotificationStatus, delay_s: float
    ) -> None:
        now = self._clock.now()
        with self._books.tx() as conn:
            conn.execute(
                "INSERT INTO notifications(event_ref, url, content_type, body, status, next_at, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (event_ref, url, content_type, body, status.value, now.timestamp() + delay_s, now.isoformat()),
            )

    def _poke(self) -> None:
        """Wake the sender; safe from the event loop's thread and from any other thread."""
        if self._loop is None or self._wake is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)
