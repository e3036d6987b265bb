"""The payout channel port: sending money from a reserve account to a payee's bank account (代付).

The bank request numbers (a batch id and one item number per payout) are chosen by the platform and
persisted *before* the call; a lost answer, a 5xx or an intermediate code is UNKNOWN and resolved by
querying those numbers, never by sending again (research/protocols.md §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from tianpay.domain.money import Money
from tianpay.ports.channels import BankNotification, ChannelResult, NotificationAck

# BankNotification.kind of a bank's notices about payouts: the final result of an item, and a payout
# that succeeded and later bounced (退票, BCB 300001; the result is SUCCEEDED for the return itself).
KIND_PAYOUT: Final = "payout"
KIND_PAYOUT_RETURNED: Final = "payout_returned"


@dataclass(frozen=True, slots=True)
class PayoutOrder:
    """One payout in a batch. The payee's account number lives only in memory while it is sent."""

    payout_id: str  # our id (``pyo_…``); the bank's item number derives from it
    amount: Money
    account_no: str
    account_name: str
    account_bank: str  # the payee's bank code (HBB, JHB, BCB): another bank is paid through clearing
    purpose: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutBatch:
    """Payouts sent to one bank in one request (HBB has no batch: its adapter sends them one by one)."""

    batch_id: str  # our id (``pob_…``); the bank's batch request number (BCB REQ_SN) derives from it
    orders: Sequence[PayoutOrder]
    created_at: datetime
    # Where the bank posts its notices about the batch (BCB: the 300001 bounce), normally
    # ``<base>/channels/<bank>/notify``; "" asks for none (a bounce is then found on the statement).
    notify_url: str = ""


class PayoutChannel(Protocol):
    code: str

    def submit_payouts(self, batch: PayoutBatch) -> Mapping[str, ChannelResult]:
        """Send the batch; the result of every payout id in it (UNKNOWN for each when the answer is lost)."""
        ...

    def query_payouts(self, batch: PayoutBatch) -> Mapping[str, ChannelResult]:
        """Ask the bank what became of each payout in a batch sent earlier (same ids, never new ones).

        A bank that answers "no such request" gives NOT_SUBMITTED only once its documented window has
        passed since ``batch.created_at`` (BCB: 30 minutes); before that, UNKNOWN.
        """
        ...

    def parse_notification(self, body: bytes, content_type: str) -> BankNotification:
        """Verify and read a payout notice (KIND_PAYOUT or KIND_PAYOUT_RETURNED, platform_reference =
        payout id); raises InvalidNotification."""
        ...

    def notification_ack(self, accepted: bool) -> NotificationAck: ...


class PayoutDirectory(Protocol):
    def payouts(self, bank: str) -> PayoutChannel:
        """The bank's payout channel; raises NotFound for a bank the platform pays out through."""
        ...

    def payout_banks(self) -> list[str]: ...
