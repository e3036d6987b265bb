"""Direct debit and POS acquiring in ``tianpay demo``: a mandate at JHB and a POS terminal at the shop.

Played after account mode, while the gateway rows wait out their expiry minute, on the same
instance. Direct debit: the demo merchant registers a mandate for 张伟's JHB card with limits, the
payer confirms it with JHB's texted code, the merchant debits twice, a third debit over the month's
limit and one after revocation are refused before JHB sees them (its transfers do not change).
POS: a terminal of the demo merchant signs on at pos-front, buys with 张伟's HBB card, voids it,
buys again, buys while TCS drops its answers (pos-front answers ``98`` and reverses at the issuer,
so the card is not charged) and settles the batch. Each step is a row: what was expected against
what the platform, the merchant's webhooks and the bank (JHB's books, TCS's record) say.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.table import Table

from tianpay.domain.pos import PosStatus
from tianpay.entrypoints.demo_account import (
    CARDS,
    ID_NUMBER,
    NAME,
    PHONE,
    bank_moves,
    bank_sms_code,
    mask_card,
    payment_facts,
    yuan,
)
from tianpay.entrypoints.pos_terminal import Terminal, TerminalError, TerminalState, save_terminal
from tianpay.services.pos import create_terminal

if TYPE_CHECKING:
    from tianpay.entrypoints.demo import Instance

PER_DEBIT_MINOR = 20_000
PER_MONTH_MINOR = 30_000
DEBITS_MINOR = (8_800, 9_900)
OVER_LIMIT_MINOR = 15_000  # ¥88 + ¥99 + ¥150 > ¥300 a month, each under ¥200
AFTER_REVOKE_MINOR = 1_000
POS_CARD = CARDS["HBB"]
POS_PIN = "123456"  # BANKS.md's test PIN of 张伟's HBB card
POS_PURCHASES_MINOR = (5_800, 6_600, 7_700)  # voided, kept, unanswered (reversed)
SETTLE_TIMEOUT_S = 25.0
TERMINAL_FILE = "demo-terminal.json"


@dataclass(frozen=True, slots=True)
class Seen:
    platform: str
    webhooks: tuple[str, ...]
    bank: str
    ok: bool


@dataclass(frozen=True, slots=True)
class Row:
    """One step: what must come of it, and how to look at what did (webhooks arrive later)."""

    part: str
    title: str
    amount_minor: int
    receipt: str
    expected: str
    observe: Callable[[], Seen]


# ---- direct debit ---------------------------------------------------------------------------------------


def jhb_transfer_count(instance: Instance) -> int:
    return len(instance.bank_state("JHB")["transfers"])


def play_direct_debit(instance: Instance, member_id: str, run_tag: str, say: Callable[[str], None]) -> list[Row]:
    client = instance.client
    card = CARDS["JHB"]
    applied = client.request("POST", "/v1/mandates", json={
        "member_id": member_id, "mandate_no": f"demo-{run_tag}-dd", "card_number": card, "name": NAME,
        "id_number": ID_NUMBER, "phone": PHONE, "max_amount_per_debit": PER_DEBIT_MINOR,
        "max_amount_per_month": PER_MONTH_MINOR,
        "valid_until": (datetime.now(UTC) + timedelta(days=365)).date().isoformat(), "purpose": "membership:monthly",
    })  # fmt: skip
    mandate_id = str(applied["id"])
    code = bank_sms_code(instance, "JHB")
    confirmed = client.request("POST", f"/v1/mandates/{mandate_id}/confirm", json={"sms_code": code})
    say(f"mandate {mandate_id} on {applied['card_number_masked']}: {applied['status']} → {confirmed['status']} "
        f"(limits {yuan(PER_DEBIT_MINOR)} a debit, {yuan(PER_MONTH_MINOR)} a month)")  # fmt: skip
    rows = [
        Row(
            "direct debit",
            f"mandate {mask_card(card)}",
            0,
            "",
            "active · mandate.active",
            lambda: _mandate_seen(instance, mandate_id, str(confirmed["status"]), "active", "mandate.active"),
        )
    ]
    for number, amount in enumerate(DEBITS_MINOR, start=1):
        rows.append(_debit(instance, mandate_id, run_tag, number, amount))
    rows.append(_refused_debit(instance, mandate_id, run_tag, "debit over the month's limit", OVER_LIMIT_MINOR,
                               "mandate_limit_exceeded"))  # fmt: skip
    revoked = client.request("POST", f"/v1/mandates/{mandate_id}/revoke")
    rows.append(
        Row(
            "direct debit",
            "revoke the mandate",
            0,
            "",
            "revoked · mandate.revoked",
            lambda: _mandate_seen(instance, mandate_id, str(revoked["status"]), "revoked", "mandate.revoked"),
        )
    )
    rows.append(_refused_debit(instance, mandate_id, run_tag, "debit after revocation", AFTER_REVOKE_MINOR,
                               "mandate_not_active"))  # fmt: skip
    say("direct debit: two debits, one over the month's limit, revoked, one after revocation")
    return rows


def _mandate_seen(instance: Instance, mandate_id: str, answered: str, want: str, webhook: str) -> Seen:
    webhooks = tuple(str(e["type"]) for e in instance.site.events_about(mandate_id))
    # The mandate's whole life is in its webhooks; this row is about the one its step caused.
    mine = tuple(w for w in webhooks if w == webhook)
    return Seen(
        answered,
        mine,
        "JHB texted a code" if want == "active" else "not checked at JHB",
        answered == want and mine == (webhook,),
    )


def _debit(instance: Instance, mandate_id: str, run_tag: str, number: int, amount: int) -> Row:
    created = instance.client.request("POST", f"/v1/mandates/{mandate_id}/debits", json={
        "out_trade_no": f"demo-{run_tag}-dd-{number}", "amount": amount, "subject": f"津门好物 · 会员月费 {number}",
    })  # fmt: skip
    payment_id = str(created["id"])

    def observe() -> Seen:
        status, refs, _detail = payment_facts(instance, payment_id)
        moves, notices = bank_moves(instance, {"JHB": instance.bank_state("JHB")}, refs)
        webhooks = tuple(str(e["type"]) for e in instance.site.events_about(payment_id))
        moved = " · ".join(f"{bank} {yuan(m)} in" for bank, m in moves) or "nothing moved"
        ok = status == "succeeded" and webhooks == ("payment.succeeded",) and moves == (("JHB", amount),)
        return Seen(status, webhooks, f"{moved} · {notices} notice{'s' if notices != 1 else ''}", ok)

    return Row("direct debit", f"debit {number}", amount, "", "succeeded · 1 webhook · JHB in", observe)


def _refused_debit(instance: Instance, mandate_id: str, run_tag: str, title: str, amount: int, code: str) -> Row:
    from tianpay_sdk.errors import InvalidRequestError

    before = jhb_transfer_count(instance)
    try:
        instance.client.request("POST", f"/v1/mandates/{mandate_id}/debits", json={
            "out_trade_no": f"demo-{run_tag}-dd-{amount}", "amount": amount, "subject": "津门好物 · 会员月费",
        })  # fmt: skip
        answer = "accepted"
    except InvalidRequestError as refused:
        answer = f"refused {refused.code}"
    after = jhb_transfer_count(instance)
    seen = Seen(answer, (), f"JHB transfers {before} → {after}", answer == f"refused {code}" and before == after)
    return Row("direct debit", title, amount, "", "refused · JHB untouched", lambda: seen)


# ---- POS acquiring -------------------------------------------------------------------------------------------


def new_terminal(instance: Instance) -> Terminal:
    """A terminal of the demo merchant (as `tianpay terminal create --save` makes one), aimed at pos-front."""
    container = instance.container
    merchant_id = str(instance.summary["merchant"]["merchant_id"])
    tid, mid, tmk = f"{secrets.randbelow(10**8):08d}", f"898120{secrets.randbelow(10**9):09d}", secrets.token_bytes(16)
    sealed = container.vault.seal(tmk, context=f"terminal:{tid}:tmk")
    create_terminal(container.uow, container.clock, merchant_id=merchant_id, tid=tid, mid=mid, tmk_ciphertext=sealed)
    host, port = str(instance.summary["pos_front"]).rsplit(":", 1)
    path = Path(instance.data_dir) / TERMINAL_FILE
    state = TerminalState(tid, mid, tmk.hex().upper(), "津门好物商城", host=host, port=int(port))
    save_terminal(path, state)
    return Terminal(state, path)


@contextmanager
def tcs_dropping_answers(instance: Instance) -> Iterator[None]:
    """TCS keeps every answer to itself meanwhile; reset even if the step fails."""
    faults = str(instance.summary["tcs_admin"]) + "/_sim/faults"
    httpx.post(faults, json={"drop_answers": True}, timeout=10.0).raise_for_status()
    try:
        yield
    finally:
        httpx.post(faults, json={"reset": True}, timeout=10.0).raise_for_status()


def tcs_state(instance: Instance) -> dict[str, Any]:
    response = httpx.get(str(instance.summary["tcs_admin"]) + "/_sim/state", timeout=10.0)
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


def receipt_line(answer: dict[str, str], amount: int) -> str:
    """The receipt's essentials: masked card, amount, STAN and response code."""
    return f"{mask_card(POS_CARD)} {yuan(amount)} STAN {answer.get('11', '?')} {answer.get('39', '?')}"


def play_pos(instance: Instance, say: Callable[[str], None]) -> list[Row]:
    terminal = new_terminal(instance)
    tid, batch = terminal.state.tid, terminal.state.batch_no
    signed = terminal.sign_on()
    rows = [
        Row(
            "POS",
            "sign-on",
            0,
            f"TID {tid} {signed.get('39')}",
            "00 · working keys",
            _fixed(
                Seen(
                    "signed on" if terminal.state.mak else "no keys",
                    (),
                    "—",
                    signed.get("39") == "00" and terminal.state.mak is not None,
                )
            ),
        )
    ]
    first_amount, second_amount, dropped_amount = POS_PURCHASES_MINOR
    first = terminal.financial("purchase", card=POS_CARD, pin=POS_PIN, amount_minor=first_amount)
    rows.append(_pos_row(instance, "purchase", first, first_amount, tid, batch, "voided", "voided",
                         ("payment.succeeded", "refund.succeeded")))  # fmt: skip
    voided = terminal.financial("void", card=POS_CARD, pin=None, amount_minor=first_amount,
                                original=terminal.find(first.get("11", "")))  # fmt: skip
    rows.append(_pos_row(instance, "void", voided, first_amount, tid, batch, "approved", "approved",
                         ()))  # fmt: skip
    second = terminal.financial("purchase", card=POS_CARD, pin=POS_PIN, amount_minor=second_amount)
    rows.append(_pos_row(instance, "second purchase", second, second_amount, tid, batch, "approved", "approved",
                         ("payment.succeeded",)))  # fmt: skip
    with tcs_dropping_answers(instance):
        try:
            dropped = terminal.financial("purchase", card=POS_CARD, pin=POS_PIN, amount_minor=dropped_amount)
        except TerminalError:
            dropped = {"11": f"{terminal.state.stan:06d}", "39": "no answer"}
    rows.append(_dropped_row(instance, dropped, dropped_amount, tid, batch))
    answer, totals = terminal.settle()
    balanced = answer.get("48", "")[-1:] == "1"
    count, debit, voids, credit = totals
    totals_text = f"{count} sales {yuan(debit)} · {voids} void {yuan(credit)}"
    verdict = "balanced" if balanced else "NOT balanced"
    rows.append(Row("POS", f"settle batch {batch:06d}", debit, f"{totals_text} {answer.get('39')}", "00 · balanced",
                    _fixed(Seen(verdict, (), f"TCS {verdict}", answer.get("39") == "00" and balanced))))  # fmt: skip
    say(f"POS terminal {tid}: signed on, bought, voided, bought, bought while TCS dropped answers, settled")
    return rows


def _fixed(seen: Seen) -> Callable[[], Seen]:
    return lambda: seen


def _tcs_txn(instance: Instance, tid: str, stan: str, kind: str) -> dict[str, Any] | None:
    """TCS's record of the terminal's transaction (pos-front passes the terminal's STAN on)."""
    for txn in tcs_state(instance)["transactions"]:
        same = txn["terminal_id"] == tid and txn["stan"] == stan and txn["kind"] != "tombstone"
        if same and (kind == "void" or txn["kind"] != "void"):
            found: dict[str, Any] = txn
            return found
    return None


def _tcs_status(instance: Instance, tid: str, stan: str, kind: str) -> str:
    txn = _tcs_txn(instance, tid, stan, kind)
    return "no record" if txn is None else str(txn["status"])


def card_net_charge(instance: Instance, rrn: str) -> tuple[int, int]:
    """What TCS took from the card and gave back for one purchase (its transfers ``TCS{rrn}``, ``…R``)."""
    refs = {f"TCS{rrn}", f"TCS{rrn}R"}
    mine = [t for t in instance.bank_state("HBB")["transfers"] if t["bank_ref"] in refs]
    taken = sum(int(t["amount_minor"]) for t in mine if t["debit_acc"] == POS_CARD)
    returned = sum(int(t["amount_minor"]) for t in mine if t["credit_acc"] == POS_CARD)
    return taken, returned


def _pos_events(instance: Instance, payment_id: str | None, kind: str) -> tuple[str, ...]:
    if payment_id is None:
        return ()
    found: list[str] = []
    seen_ids: set[str] = set()
    for delivery in instance.site.deliveries():
        event = delivery.event
        if event is None or delivery.webhook_id in seen_ids:
            continue
        data = event.get("data")
        if not isinstance(data, dict):
            continue
        # A purchase's own webhook names its payment; a void's refund names it as ``payment_id``.
        if (kind == "purchase" and data.get("id") == payment_id) or data.get("payment_id") == payment_id:
            seen_ids.add(delivery.webhook_id)
            found.append(str(event["type"]))
    return tuple(found)


def _pos_row(
    instance: Instance,
    title: str,
    answer: dict[str, str],
    amount: int,
    tid: str,
    batch: int,
    want_platform: str,
    want_tcs: str,
    want_webhooks: tuple[str, ...],
) -> Row:
    stan = answer.get("11", "")
    kind = "void" if title.startswith("void") else "purchase"

    def observe() -> Seen:
        with instance.container.uow() as uow:
            txn = uow.pos_transactions.get(tid, batch, stan)
        status = txn.status.value if txn is not None else "missing"
        webhooks = _pos_events(instance, txn.payment_id if txn is not None else None, "purchase")
        if kind == "void":
            webhooks = ()  # its refund.succeeded is the purchase's row: both name the purchase's payment
        tcs = _tcs_status(instance, tid, stan, kind)
        # Webhooks may arrive in either order; each must arrive once.
        same_webhooks = sorted(webhooks) == sorted(want_webhooks)
        ok = answer.get("39") == "00" and status == want_platform and tcs == want_tcs and same_webhooks
        return Seen(status, webhooks, f"TCS {tcs}", ok)

    count = len(want_webhooks)
    hooks = f"{count or 'no'} webhook{'s' if count != 1 else ''}"
    return Row("POS", title, amount, receipt_line(answer, amount), f"00 · {want_platform} · {hooks}",
               observe)  # fmt: skip


def _dropped_row(instance: Instance, answer: dict[str, str], amount: int, tid: str, batch: int) -> Row:
    stan = answer.get("11", "")

    def observe() -> Seen:
        with instance.container.uow() as uow:
            txn = uow.pos_transactions.get(tid, batch, stan)
        status = txn.status.value if txn is not None else "missing"
        webhooks = _pos_events(instance, txn.payment_id if txn is not None else None, "purchase")
        at_tcs = _tcs_txn(instance, tid, stan, "purchase")
        tcs = "no record" if at_tcs is None else str(at_tcs["status"])
        taken, returned = card_net_charge(instance, str(at_tcs["rrn"])) if at_tcs else (0, 0)
        ok = (answer.get("39") != "00" and status == PosStatus.REVERSED.value and tcs == "reversed"
              and taken == returned and webhooks == ())  # fmt: skip
        return Seen(status, webhooks, f"TCS {tcs} · net {yuan(taken - returned)}", ok)

    return Row("POS", "purchase, no answer", amount, receipt_line(answer, amount),
               "98 · reversed, not charged", observe)  # fmt: skip


# ---- settling and reporting -------------------------------------------------------------------------------


def settle_acquiring(rows: list[Row]) -> list[Seen]:
    """Polls until every row agrees (webhooks and reversals come after the answers) or time is up."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        seen = [row.observe() for row in rows]
        if all(s.ok for s in seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def acquiring_tables(rows: list[Row], seen: list[Seen]) -> list[Table]:
    """One table for direct debit, one for POS (with the receipt's essentials)."""
    return [
        _table("Direct debit, end to end (张伟's JHB card)", "direct debit", rows, seen, receipt=False),
        _table("POS acquiring, end to end (pos-front → TCS)", "POS", rows, seen, receipt=True),
    ]


def _table(title: str, part: str, rows: list[Row], seen: list[Seen], *, receipt: bool) -> Table:
    table = Table(title=title, title_justify="left")
    # POS rows carry the amount on the receipt (masked card, amount, STAN, response code).
    names = ["step", "receipt", "expected", "platform", "webhooks received", "bank's record", "ok"]
    if not receipt:
        names[1] = "amount"
    for name in names:
        # Only the webhooks may wrap: the step, receipt and verdict stay on the row's first line.
        wraps = name == "webhooks received"
        table.add_column(name, justify="right" if name == "amount" else "left", no_wrap=not wraps,
                         min_width=18 if wraps and receipt else None)  # fmt: skip
    for row, observed in zip(rows, seen, strict=True):
        if row.part != part:
            continue
        cells = [
            row.title,
            (row.receipt or "—") if receipt else (yuan(row.amount_minor) if row.amount_minor else "—"),
            row.expected,
            observed.platform,
            ", ".join(observed.webhooks) or "none",
            observed.bank,
            "[green]✓[/green]" if observed.ok else "[red]✗[/red]",
        ]
        table.add_row(*cells)
    return table
