"""The card switch's decisions: one request message in, one answer (or deliberately none) out.

`Switch.handle` checks the MAC and format, routes the card by BIN to the issuer's books, moves
money into the platform's HBB reserve (interbank through the clearing) and records the
transaction. Everything runs under one lock, so a reversal never races its original
(docs/banks/tcs.md §4). Response codes are BANKS.md's TCS list plus `95` (settlement mismatch).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from banksim.core.books import AccountKind, AccountStatus, Books, Declined, DeclineReason
from banksim.core.cards import bank_of, is_well_formed
from banksim.core.clearing import Clearing, ClearingStatus
from banksim.core.clock import SimClock
from banksim.core.magic import Magic, magic_for
from banksim.core.seed import RESERVE_ACCOUNTS
from banksim.tcs.crypto import PinBlockError, pin_from_block
from banksim.tcs.store import Acquirer, SwitchStore, Txn
from banksim.tcs.wire import FrameError, Message, decode, encode, mac_is_valid

# POS money lands in the platform's reserve at TCS's settlement bank (docs/banks/tcs.md §4).
SETTLEMENT_BANK = "HBB"
MAX_WRONG_PINS = 3
ECHOED = ("2", "3", "4", "7", "11", "22", "25", "32", "33", "41", "42", "49", "60")
PROCESSING_PURCHASE, PROCESSING_VOID, PROCESSING_BALANCE = "000000", "200000", "310000"
PURCHASE_REQUIRED = frozenset({"2", "3", "4", "7", "11", "22", "25", "32", "41", "42", "49", "52", "53", "60"})
VOID_REQUIRED = frozenset({"2", "3", "4", "7", "11", "22", "25", "32", "41", "42", "49", "60"})
BALANCE_REQUIRED = frozenset({"2", "3", "7", "11", "22", "25", "32", "41", "42", "49", "52", "53", "60"})
REVERSAL_REQUIRED = frozenset({"2", "3", "4", "7", "11", "32", "41", "42", "49"})
SETTLEMENT_REQUIRED = frozenset({"7", "11", "32", "41", "42", "48", "49", "60"})
ECHO_REQUIRED = frozenset({"7", "11", "32"})
DIGIT_FIELDS = {"2", "3", "4", "7", "11", "12", "13", "14", "22", "25", "32", "33", "48", "60", "90"}

DECLINE_CODES: dict[DeclineReason, str] = {
    DeclineReason.NO_SUCH_ACCOUNT: "14",
    DeclineReason.ACCOUNT_CLOSED: "14",
    DeclineReason.ACCOUNT_FROZEN: "62",
    DeclineReason.INSUFFICIENT_FUNDS: "51",
    DeclineReason.OVER_LIMIT: "61",
}
MAGIC_DECLINES: dict[Magic, str] = {
    Magic.INSUFFICIENT_FUNDS: "51",
    Magic.OVER_LIMIT: "61",
    Magic.REFUSED: "91",
}


@dataclass(slots=True)
class SwitchFaults:
    latency_ms: int = 0
    outage: bool = False
    drop_answers: bool = False

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply a partial update (`{"reset": true}` first restores the defaults); raises ValueError."""
        if changes.get("reset"):
            self.latency_ms, self.outage, self.drop_answers = 0, False, False
        for key, value in changes.items():
            if key == "reset":
                continue
            if key == "latency_ms":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError("latency_ms must be a non-negative integer")
                self.latency_ms = value
            elif key in ("outage", "drop_answers"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                setattr(self, key, value)
            else:
                raise ValueError(f"unknown fault {key!r}")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Switch:
    """TCS: the acquirers' keys, its transaction record, and the issuers' books it routes to."""

    def __init__(self, store: SwitchStore, banks: Mapping[str, Books], clearing: Clearing, clock: SimClock) -> None:
        self.store = store
        self.banks = dict(banks)
        self.clearing = clearing
        self.clock = clock
        self.faults = SwitchFaults()
        self._lock = threading.Lock()

    def handle(self, body: bytes) -> bytes | None:
        """The framed-less answer to one framed-less request, or None when no answer is sent."""
        with self._lock:
            try:
                request = decode(body)
            except FrameError:
                return _unparseable_answer(body)
            acquirer = self.store.acquirer(request.get("32"))
            if acquirer is None:
                return encode(self._answer(request, "A0"), None)
            if not mac_is_valid(body, request, acquirer.zak):
                return encode(self._answer(request, "A0"), acquirer.zak)
            answer = self._dispatch(acquirer, request)
            return None if answer is None else encode(answer, acquirer.zak)

    def _dispatch(self, acquirer: Acquirer, request: Message) -> Message | None:
        mti, processing = request["t"], request.get("3")
        if mti == "0200" and processing == PROCESSING_PURCHASE:
            return self._withheld_unless_answering(self._purchase(acquirer, request))
        if mti == "0200" and processing == PROCESSING_VOID:
            return self._withheld_unless_answering(self._void(acquirer, request))
        if mti == "0200" and processing == PROCESSING_BALANCE:
            return self._withheld_unless_answering(self._balance(acquirer, request))
        if mti == "0400":
            return self._reversal(acquirer, request)
        if mti == "0500":
            return self._settlement(acquirer, request)
        if mti == "0800":
            return self._answer(request, "00" if _well_formed(request, ECHO_REQUIRED) else "30")
        return self._answer(request, "12" if mti == "0200" else "30")

    def _withheld_unless_answering(self, answer: Message | None) -> Message | None:
        # drop_answers processes a 0200 fully and then loses the answer (docs/banks/tcs.md §8).
        return None if self.faults.drop_answers else answer

    # Purchase, void, balance

    def _purchase(self, acquirer: Acquirer, request: Message) -> Message | None:
        if not _well_formed(request, PURCHASE_REQUIRED) or _type_of(request) != "22":
            return self._answer(request, "30")
        amount_minor = int(request["4"])
        if amount_minor <= 0:
            return self._answer(request, "13")
        today = self.clock.business_date()
        if self._stan_taken(acquirer, request, today):
            return self._answer(request, "94")
        pan = request["2"]
        code = self._card_code(pan, request.get("14"))
        if code == "00":
            code = self._pin_code(acquirer, pan, request["52"], today)
        magic = magic_for(amount_minor)
        if code == "00" and magic is Magic.LOST_ANSWER_UNPROCESSED:
            return None
        rrn = self._new_rrn()
        if code == "00":
            code = "91" if self.faults.outage else MAGIC_DECLINES.get(magic, "00")
        if code == "00":
            code = self._move(f"TCS{rrn}", bank_of(pan) or "", pan, amount_minor, to_card=False)
        clear_date = today + timedelta(days=1) if magic is Magic.LATE_STATEMENT else today
        txn = self._record(acquirer, request, "purchase", code, rrn, amount_minor, clear_date, None)
        if code == "00" and magic is Magic.LOST_ANSWER_PROCESSED:
            return None
        return self._answer(request, code, **_approval_fields(txn))

    def _void(self, acquirer: Acquirer, request: Message) -> Message:
        has_reference = "37" in request or "90" in request
        if not _well_formed(request, VOID_REQUIRED) or _type_of(request) != "23" or not has_reference:
            return self._answer(request, "30")
        today = self.clock.business_date()
        if self._stan_taken(acquirer, request, today):
            return self._answer(request, "94")
        original = self._void_original(acquirer, request, today)
        code = _void_code(original, request)
        if code == "00" and "52" in request:
            code = self._pin_code(acquirer, request["2"], request["52"], today)
        rrn = self._new_rrn()
        amount_minor = int(request["4"])
        if code == "00" and original is not None:
            code = self._move(f"TCS{rrn}", original.issuer, original.pan, amount_minor, to_card=True)
            code = "96" if code != "00" else code
        original_id = original.txn_id if original is not None else None
        txn = self._record(acquirer, request, "void", code, rrn, amount_minor, today, original_id)
        if code == "00" and original is not None:
            self.store.set_status(original.txn_id, "voided")
        return self._answer(request, code, **_approval_fields(txn))

    def _void_original(self, acquirer: Acquirer, request: Message, today: date) -> Txn | None:
        if "37" in request:
            found = self.store.find_by_rrn(acquirer.acquirer_id, request["37"])
        else:
            original_stan = request["90"][4:10]
            found = self.store.find(acquirer.acquirer_id, request["41"], today, original_stan)
            if found is not None and found.f7 != request["90"][10:20]:
                found = None
        same_place = found is not None and (found.terminal_id, found.merchant_id) == (request["41"], request["42"])
        if found is None or not same_place or found.kind != "purchase" or found.business_date != today:
            return None
        return found

    def _balance(self, acquirer: Acquirer, request: Message) -> Message:
        if not _well_formed(request, BALANCE_REQUIRED) or _type_of(request) != "01":
            return self._answer(request, "30")
        today = self.clock.business_date()
        if self._stan_taken(acquirer, request, today):
            return self._answer(request, "94")
        pan = request["2"]
        code = self._card_code(pan, request.get("14"))
        if code == "00":
            code = self._pin_code(acquirer, pan, request["52"], today)
        if code == "00" and self.faults.outage:
            code = "91"
        self._record(acquirer, request, "inquiry", code, self._new_rrn(), 0, today, None)
        if code != "00":
            return self._answer(request, code)
        account = self.banks[bank_of(pan) or ""].account(pan)
        balance_minor = account.balance_minor if account is not None else 0
        return self._answer(request, code, **{"54": f"1002156C{balance_minor:012d}"})

    # Reversal and settlement

    def _reversal(self, acquirer: Acquirer, request: Message) -> Message:
        if not _well_formed(request, REVERSAL_REQUIRED) or ("90" in request and len(request["90"]) != 42):
            return self._answer(request, "30")
        today = self.clock.business_date()
        original_stan = request["90"][4:10] if "90" in request else request["11"]
        original = self.store.find(acquirer.acquirer_id, request["41"], today, original_stan)
        if original is None:
            # A reversal may overtake its original; the tombstone keeps a late original out (§4).
            tombstone = {**request, "11": original_stan}
            self._record(acquirer, tombstone, "tombstone", "00", "", int(request["4"]), today, None, "reversed")
            return self._answer(request, "00")
        if original.merchant_id != request["42"] or ("90" in request and request["90"][10:20] != original.f7):
            return self._answer(request, "25")
        return self._answer(request, self._reverse(original))

    def _reverse(self, original: Txn) -> str:
        if original.status != "approved" or original.kind in ("tombstone", "inquiry"):
            return "00"
        if original.kind == "purchase":
            code = self._move(f"TCS{original.rrn}R", original.issuer, original.pan, original.amount_minor, to_card=True)
            if code != "00":
                return "96"
            self.store.set_status(original.txn_id, "reversed")
            return "00"
        # Reversing a void debits the card again and revives the purchase it had voided.
        code = self._move(f"TCS{original.rrn}R", original.issuer, original.pan, original.amount_minor, to_card=False)
        if code != "00":
            return "96"
        self.store.set_status(original.txn_id, "reversed")
        if original.orig_txn_id is not None:
            self.store.set_status(original.orig_txn_id, "approved")
        return "00"

    def _settlement(self, acquirer: Acquirer, request: Message) -> Message:
        if not _well_formed(request, SETTLEMENT_REQUIRED) or _type_of(request) != "00" or len(request["48"]) != 36:
            return self._answer(request, "30")
        batch_no = request["60"][2:8]
        totals = self.store.batch_totals(acquirer.acquirer_id, request["41"], request["42"], batch_no).as_field()
        if totals != request["48"]:
            return self._answer(request, "95", **{"48": totals})
        at = self.clock.now().isoformat()
        self.store.settle_batch(acquirer.acquirer_id, request["41"], request["42"], batch_no, at)
        return self._answer(request, "00", **{"48": totals})

    # Cards, PINs and money

    def _card_code(self, pan: str, expiry: str | None) -> str:
        issuer = bank_of(pan)
        if not is_well_formed(pan) or issuer is None or issuer not in self.banks:
            return "14"
        account = self.banks[issuer].account(pan)
        if account is None or account.kind is not AccountKind.CARD or account.status is AccountStatus.CLOSED:
            return "14"
        if expiry is not None and (len(expiry) != 4 or expiry < self.clock.local_now().strftime("%y%m")):
            return "54"
        return "00"

    def _pin_code(self, acquirer: Acquirer, pan: str, pin_block_hex: str, today: date) -> str:
        if self.store.wrong_pins(pan, today) >= MAX_WRONG_PINS:
            return "75"
        if _pin_matches(self.banks[bank_of(pan) or ""], acquirer.zpk, pin_block_hex, pan):
            self.store.clear_wrong_pins(pan, today)
            return "00"
        return "75" if self.store.count_wrong_pin(pan, today) >= MAX_WRONG_PINS else "55"

    def _move(self, ref: str, issuer: str, pan: str, amount_minor: int, *, to_card: bool) -> str:
        """Debit the card into the reserve (or back, `to_card`); returns the F39 outcome."""
        reserve = RESERVE_ACCOUNTS[SETTLEMENT_BANK]
        card_books = self.banks[issuer]
        if not to_card:
            refusal = card_books.debit_refusal(pan, amount_minor, enforce_limit=True)
            if refusal is not None:
                return DECLINE_CODES[refusal]
        if issuer == SETTLEMENT_BANK:
            debit, credit = (reserve, pan) if to_card else (pan, reserve)
            try:
                card_books.transfer(
                    bank_ref=ref,
                    kind="pos_refund" if to_card else "pos_purchase",
                    debit_acc=debit,
                    credit_acc=credit,
                    amount_minor=amount_minor,
                    at=self.clock.now(),
                    enforce_limit=not to_card,
                    memo="TCS",
                )
            except Declined as declined:
                return DECLINE_CODES[declined.reason]
            return "00"
        if to_card:
            legs = dict(from_bank=SETTLEMENT_BANK, from_acc=reserve, to_bank=issuer, to_acc=pan)
        else:
            legs = dict(from_bank=issuer, from_acc=pan, to_bank=SETTLEMENT_BANK, to_acc=reserve)
        result = self.clearing.transfer(clearing_ref=ref, amount_minor=amount_minor, memo="TCS POS", **legs)
        if result.status is ClearingStatus.SETTLED:
            return "00"
        if result.status is ClearingStatus.REJECTED and result.reason:
            return DECLINE_CODES.get(DeclineReason(result.reason), "96")
        return "96"

    # Records and answers

    def _stan_taken(self, acquirer: Acquirer, request: Message, today: date) -> bool:
        return self.store.find(acquirer.acquirer_id, request["41"], today, request["11"]) is not None

    def _new_rrn(self) -> str:
        return f"{self.clock.local_now():%y%m%d}{self.store.next_sequence('rrn') % 1_000_000:06d}"

    def _record(
        self,
        acquirer: Acquirer,
        request: Message,
        kind: str,
        code: str,
        rrn: str,
        amount_minor: int,
        clear_date: date,
        orig_txn_id: int | None,
        status: str | None = None,
    ) -> Txn:
        pan = request.get("2", "")
        return self.store.record(
            Txn(
                txn_id=0,
                acquirer_id=acquirer.acquirer_id,
                terminal_id=request["41"],
                merchant_id=request["42"],
                business_date=self.clock.business_date(),
                stan=request["11"],
                kind=kind,
                status=status or ("approved" if code == "00" else "declined"),
                response_code=code,
                pan=pan,
                issuer=bank_of(pan) or "",
                amount_minor=amount_minor,
                rrn=rrn,
                auth_code=f"{secrets.randbelow(1_000_000):06d}" if code == "00" else "",
                f7=request.get("7", ""),
                batch_no=request.get("60", "")[2:8],
                orig_txn_id=orig_txn_id,
                clear_date=clear_date,
                created_at=self.clock.now().isoformat(),
            )
        )

    def _answer(self, request: Message, code: str, **extra: str) -> Message:
        mti = request.get("t", "0800")
        answer: Message = {"t": mti[:2] + str(int(mti[2]) + 1) + mti[3]}
        answer.update({key: request[key] for key in ECHOED if key in request})
        now = self.clock.local_now()
        answer["12"], answer["13"], answer["39"] = now.strftime("%H%M%S"), now.strftime("%m%d"), code
        answer.update(extra)
        return answer


def _pin_matches(books: Books, zpk: bytes, pin_block_hex: str, pan: str) -> bool:
    """Decrypt the PIN block and compare it with the issuer's hash; the clear PIN dies here."""
    try:
        return books.check_pin(pan, pin_from_block(zpk, pin_block_hex, pan))
    except PinBlockError:
        return False


def _void_code(original: Txn | None, request: Message) -> str:
    if original is None:
        return "25"
    if original.status != "approved":
        return "12"
    if original.amount_minor != int(request["4"]):
        return "13"
    if original.pan != request["2"]:
        return "14"
    return "00"


def _approval_fields(txn: Txn) -> dict[str, str]:
    fields = {"37": txn.rrn}
    if txn.response_code == "00":
        fields["38"] = txn.auth_code
    return fields


def _type_of(request: Message) -> str:
    return request.get("60", "")[:2]


def _well_formed(request: Message, required: frozenset[str]) -> bool:
    if not required.issubset(request):
        return False
    if any(key in request and not request[key].isdigit() for key in DIGIT_FIELDS):
        return False
    if request.get("49", "156") != "156" or len(request.get("41", "x" * 8)) != 8:
        return False
    if "60" in request and len(request["60"]) != 8:
        return False
    if "52" in request and (not request.get("53", "").startswith("16") or not _is_hex(request["52"])):
        return False
    return len(request.get("42", "x" * 15)) == 15


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _unparseable_answer(body: bytes) -> bytes | None:
    """A 30 for a message whose MTI can be read; silence for bytes that are not ISO 8583 at all."""
    mti = body[:4].decode("ascii", errors="replace")
    if len(mti) != 4 or not mti.isdigit() or mti[2] not in "02468":
        return None
    return encode({"t": mti[:2] + str(int(mti[2]) + 1) + mti[3], "39": "30"}, None)
