"""``tianpay pos-front``: the asyncio TCP server POS terminals talk to (BANKS.md TCS, terminal side).

Each terminal request is checked (terminal known, MAC under its MAK), persisted, translated to the
switch's host-to-host dialect (docs/banks/tcs.md) with the PIN block translated from the
terminal's PIK to the zone PIN key, and sent to TCS. No answer in time → the terminal hears 98 and
the platform reverses (0400) until TCS acknowledges; the worker finishes a reversal after a crash.
Card numbers appear in logs only masked; PINs, PIN blocks and keys never.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone

from tianpay.adapters.vault import AesGcmVault
from tianpay.channels.tcs import mapping
from tianpay.channels.tcs.client import SwitchTimeout, TcsClient, transmission_time
from tianpay.channels.tcs.signing import check_value, cup_ecb_mac, encrypt_ecb, macs_match, translate_pin_block
from tianpay.channels.tcs.wire import WireError
from tianpay.domain import ids as id_prefixes
from tianpay.domain.pos import (
    PROCESSING_BALANCE,
    PROCESSING_PURCHASE,
    PROCESSING_VOID,
    BatchTotals,
    PosKind,
    PosStatus,
    PosTransaction,
    ReversalStatus,
    mask_pan,
)
from tianpay.entrypoints.pos_front import codec
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import pos

log = logging.getLogger("tianpay.pos_front")
BEIJING = timezone(timedelta(hours=8))
SECURITY_CONTROL = "1600000000000000"
RESPONSE_MTI = {"0200": "0210", "0400": "0410", "0500": "0510", "0800": "0810"}


@dataclass(frozen=True, slots=True)
class TerminalKeys:
    tmk: bytes
    pik: bytes | None
    mak: bytes | None

    def __repr__(self) -> str:
        return "TerminalKeys(<hidden>)"


@dataclass
class PosFront:
    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    vault: AesGcmVault
    switch: TcsClient | None
    reversal_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    on_reversal: Callable[[str], None] | None = None

    # ---- keys ---------------------------------------------------------------------------------

    def keys(self, tid: str) -> TerminalKeys | None:
        with self.uow() as uow:
            sealed = uow.terminals.sealed_keys(tid)
        if sealed is None:
            return None
        tmk_sealed, pik_sealed, mak_sealed = sealed
        opened = [None if s is None else self.vault.open(s, context=f"terminal:{tid}:{name}")
                  for name, s in (("tmk", tmk_sealed), ("pik", pik_sealed), ("mak", mak_sealed))]
        assert opened[0] is not None
        return TerminalKeys(opened[0], opened[1], opened[2])

    # ---- one frame ----------------------------------------------------------------------------

    async def handle(self, payload: bytes) -> bytes | None:
        try:
            frame = codec.decode(payload)
        except codec.FrameError as exc:
            log.warning("undecodable terminal frame: %s", exc)
            return None
        fields = frame.fields
        tpdu = codec.reply_tpdu(frame.tpdu)
        mti = frame.mti
        answer: dict[str, str] = {"t": RESPONSE_MTI.get(mti, "0810")}
        # Responses do not echo F2: the full card number goes back to nobody.
        for key in ("3", "4", "11", "25", "41", "42", "49", "60"):
            if key in fields:
                answer[key] = fields[key]
        tid = fields.get("41", "")
        with self.uow() as uow:
            terminal = uow.terminals.get(tid)
        keys = self.keys(tid) if terminal is not None else None
        if terminal is None or keys is None or fields.get("42") != terminal.mid:
            answer["39"] = "03"
            return codec.encode(answer, mak=None, tpdu=tpdu, header=frame.header)
        if mti == "0800":
            return codec.encode(self._sign_on(tid, fields, answer, keys), mak=None, tpdu=tpdu, header=frame.header)
        if keys.mak is None or frame.mac is None or not macs_match(cup_ecb_mac(keys.mak, frame.mab), frame.mac):
            # A0: the terminal must sign on again (BANKS.md TCS response codes).
            answer["39"] = mapping.MAC_FAILURE
            return codec.encode(answer, mak=None, tpdu=tpdu, header=frame.header)
        batch_no = int(fields.get("60", "00000000")[2:8] or "0")
        if mti == "0200":
            await self._financial(terminal.merchant_id, tid, terminal.mid, batch_no, fields, answer, keys)
        elif mti == "0400":
            await self._reversal(tid, batch_no, fields, answer)
        elif mti == "0500":
            await self._settle(tid, terminal.mid, batch_no, fields, answer)
        else:
            answer["39"] = "12"
        self._stamp(answer)
        return codec.encode(answer, mak=keys.mak, tpdu=tpdu, header=frame.header)

    def _stamp(self, answer: dict[str, str]) -> None:
        now = self.clock.now().astimezone(BEIJING)
        answer["12"] = now.strftime("%H%M%S")
        answer["13"] = now.strftime("%m%d")

    # ---- sign-on ------------------------------------------------------------------------------

    def _sign_on(self, tid: str, fields: dict[str, str], answer: dict[str, str], keys: TerminalKeys) -> dict[str, str]:
        pik, mak = secrets.token_bytes(16), secrets.token_bytes(16)
        now = self.clock.now()
        with self.uow() as uow:
            uow.terminals.set_working_keys(
                tid,
                self.vault.seal(pik, context=f"terminal:{tid}:pik"),
                self.vault.seal(mak, context=f"terminal:{tid}:mak"),
                now,
            )
            terminal = uow.terminals.get(tid)
            uow.commit()
        assert terminal is not None
        # F62: each working key under the TMK followed by its 4-byte check value (BANKS.md TCS).
        f62 = encrypt_ecb(keys.tmk, pik) + check_value(pik) + encrypt_ecb(keys.tmk, mak) + check_value(mak)
        answer["62"] = f62.hex().upper()
        answer["60"] = f"00{terminal.batch_no:06d}003"
        answer["39"] = "00"
        self._stamp(answer)
        log.info("terminal %s signed on", tid)
        return answer

    # ---- 0200 ---------------------------------------------------------------------------------

    async def _financial(
        self, merchant_id: str, tid: str, mid: str, batch_no: int, fields: dict[str, str],
        answer: dict[str, str], keys: TerminalKeys,
    ) -> None:
        processing = fields.get("3", "")
        kind = {PROCESSING_PURCHASE: PosKind.PURCHASE, PROCESSING_VOID: PosKind.VOID,
                PROCESSING_BALANCE: PosKind.BALANCE}.get(processing)
        pan = fields.get("2", "")
        if kind is None or self.switch is None or not pan:
            answer["39"] = mapping.FORMAT_ERROR if kind is None or not pan else mapping.SYSTEM_MALFUNCTION
            return
        original: PosTransaction | None = None
        amount_minor = int(fields.get("4", "0"))
        if kind is PosKind.VOID:
            orig_stan = fields.get("61", "")[6:12]
            original = pos.find(self.uow, tid, batch_no, orig_stan)
            if original is None or original.kind is not PosKind.PURCHASE:
                answer["39"] = mapping.ORIGINAL_NOT_FOUND
                return
            amount_minor = original.amount_minor
        now = self.clock.now()
        txn = PosTransaction(
            id=self.ids.new(id_prefixes.POS_TRANSACTION), tid=tid, batch_no=batch_no, stan=fields.get("11", ""),
            kind=kind, amount_minor=amount_minor, card_masked=mask_pan(pan), status=PosStatus.SUBMITTED,
            switch_stan=fields.get("11", ""), transmitted_at=transmission_time(now), created_at=now,
            original_stan=original.stan if original else None,
        )
        sealed_pan = self.vault.seal(pan.encode(), context=f"pos:{txn.id}:pan")
        if not pos.begin(self.uow, txn, pan_ciphertext=sealed_pan):
            answer["39"] = mapping.DUPLICATE
            return
        request = {
            "t": "0200", "2": pan, "3": processing, "7": txn.transmitted_at, "11": txn.switch_stan,
            "22": fields.get("22", "021"), "25": "00", "41": tid, "42": mid, "49": "156",
            "60": f"{fields.get('60', '22')[:2]}{batch_no:06d}",
        }
        if kind is not PosKind.BALANCE:
            request["4"] = f"{amount_minor:012d}"
        if original is not None and original.rrn:
            request["37"] = original.rrn
        if "52" in fields and keys.pik is not None:
            request["52"] = translate_pin_block(
                bytes.fromhex(fields["52"]), from_key=keys.pik, to_key=self.switch.config.zpk
            ).hex().upper()
            request["53"] = SECURITY_CONTROL
        try:
            reply = await self.switch.exchange(request)
        except (SwitchTimeout, WireError) as exc:
            log.warning("no usable TCS answer for %s STAN %s (%s): reversing", tid, txn.stan, exc)
            if kind is not PosKind.BALANCE:
                pos.owe_reversal(self.uow, self.clock, txn)
                self._start_reversal(txn.id)
            answer["39"] = "98"
            return
        code = reply.get("39", mapping.SYSTEM_MALFUNCTION)
        answer["39"] = code
        if "37" in reply:
            answer["37"] = reply["37"]
        if code != mapping.APPROVED:
            pos.record_declined(self.uow, self.clock, txn, code)
            return
        rrn, auth = reply.get("37", ""), reply.get("38", "")
        if auth:
            answer["38"] = auth
        if kind is PosKind.BALANCE:
            pos.record_balance(self.uow, self.clock, txn, rrn=rrn)
            if "54" in reply:
                answer["4"] = reply["54"][-12:]
        elif kind is PosKind.PURCHASE:
            pos.record_purchase_approved(
                self.uow, self.clock, self.ids, txn, merchant_id=merchant_id, bank=self.switch.config.settlement_bank,
                rrn=rrn, auth_code=auth,
            )
        else:
            assert original is not None
            pos.record_void_approved(self.uow, self.clock, txn, original, rrn=rrn, auth_code=auth)

    # ---- 0400 from the terminal ---------------------------------------------------------------

    async def _reversal(self, tid: str, batch_no: int, fields: dict[str, str], answer: dict[str, str]) -> None:
        txn = pos.find(self.uow, tid, batch_no, fields.get("11", ""))
        if txn is None:
            # Unknown original: nothing moved here; acknowledged so the terminal stops (idempotent).
            answer["39"] = "00"
            return
        if txn.status is PosStatus.REVERSED:
            answer["39"] = "00"
            return
        pos.owe_reversal(self.uow, self.clock, txn)
        answer["39"] = "00" if await self.reverse_once(txn.id) else "98"

    def _start_reversal(self, txn_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._reverse_until_acknowledged(txn_id))
        self.reversal_tasks.add(task)
        task.add_done_callback(self.reversal_tasks.discard)

    async def _reverse_until_acknowledged(self, txn_id: str) -> None:
        # A few quick tries here; the worker's job keeps going with back-off if these fail.
        for _ in range(3):
            if await self.reverse_once(txn_id):
                return
            await asyncio.sleep(0.2)

    async def reverse_once(self, txn_id: str) -> bool:
        """Sends one 0400 for the transaction; True once TCS acknowledged (0410) it."""
        if self.switch is None:
            return False
        with self.uow() as uow:
            txn = uow.pos_transactions.get_by_id(txn_id)
            mid_row = uow.terminals.get(txn.tid) if txn else None
        if txn is None or mid_row is None or txn.reversal_status is ReversalStatus.DONE:
            return True
        tries = txn.reversal_tries + 1
        request = {
            "t": "0400", "2": "", "3": {PosKind.VOID: PROCESSING_VOID}.get(txn.kind, PROCESSING_PURCHASE),
            "4": f"{txn.amount_minor:012d}", "7": txn.transmitted_at, "11": txn.switch_stan, "25": "00",
            "39": "98", "41": txn.tid, "42": mid_row.mid, "49": "156",
        }
        pan = self._pan_of(txn)
        if pan is None:
            request.pop("2")
        else:
            request["2"] = pan
        try:
            reply = await self.switch.exchange(request)
        except (SwitchTimeout, WireError):
            pos.reversal_tried(self.uow, self.clock, txn.id, tries)
            return False
        code = reply.get("39", "")
        if reply.get("t") == "0410" and code == mapping.SYSTEM_MALFUNCTION and txn.kind is PosKind.VOID:
            # TCS could not re-debit the card, so the void stands (docs/banks/tcs.md §4 "Void").
            pos.record_reversal_refused(self.uow, self.clock, txn.id)
            return True
        if reply.get("t") != "0410" or code != mapping.APPROVED:
            # A0 (keys rotated), 25 (mismatch) or anything odd: try again later, never assume.
            log.warning("TCS answered %s %s to the reversal of %s STAN %s", reply.get("t"), code, txn.tid, txn.stan)
            pos.reversal_tried(self.uow, self.clock, txn.id, tries)
            return False
        pos.record_reversed(self.uow, self.clock, txn.id)
        if self.on_reversal is not None:
            self.on_reversal(txn.id)
        return True

    async def continue_reversals(self, limit: int = 50) -> int:
        """One 0400 for each reversal owed and due (``services.pos.reversals_due``); how many were sent.

        The worker calls this after a restart or when pos-front's own quick tries ran out. A failed
        try is rescheduled with back-off (``pos.REVERSAL_BACKOFF_S``) and abandoned to an operator
        after ``pos.MAX_REVERSAL_TRIES``; TCS treats a repeated 0400 as a no-op answered 00
        (docs/banks/tcs.md §4 "Reversal"), so sending one again is always safe.
        """
        due = await asyncio.to_thread(pos.reversals_due, self.uow, self.clock, limit)
        for txn in due:
            await self.reverse_once(txn.id)
        return len(due)

    def _pan_of(self, txn: PosTransaction) -> str | None:
        sealed = pos.sealed_pan(self.uow, txn.id)
        return None if sealed is None else self.vault.open(sealed, context=f"pos:{txn.id}:pan").decode()

    # ---- 0500 ---------------------------------------------------------------------------------

    async def _settle(self, tid: str, mid: str, batch_no: int, fields: dict[str, str], answer: dict[str, str]) -> None:
        try:
            reported = BatchTotals.from_field(fields.get("48", ""))
        except ValueError:
            answer["39"] = mapping.FORMAT_ERROR
            return
        ours = pos.totals_of_batch(self.uow, tid, batch_no)
        stan = fields.get("11", "000000")
        switch_agrees = ours == reported and await self._settle_at_switch(tid, mid, batch_no, stan, ours)
        ours, balanced = pos.settle_batch(self.uow, self.clock, tid, batch_no, reported, switch_agrees=switch_agrees)
        # F48 ends with the CUP reconciliation flag: 1 balanced, 2 not balanced.
        answer["48"] = ours.to_field() + ("1" if balanced else "2")
        answer["39"] = "00"


    async def _settle_at_switch(self, tid: str, mid: str, batch_no: int, stan: str, ours: BatchTotals) -> bool:
        """Sends our totals for the batch to TCS in a 0500 (docs/banks/tcs.md §5); True on 00.

        TCS's F48 is 36 digits in its own order: purchase count n6 + amount n12, void count n6 +
        amount n12. A 95 means TCS counted differently; its totals are logged for the operator.
        """
        if self.switch is None:
            return False
        f48 = (
            f"{ours.debit_count:06d}{ours.debit_amount_minor:012d}"
            f"{ours.credit_count:06d}{ours.credit_amount_minor:012d}"
        )
        request = {
            "t": "0500", "7": transmission_time(self.clock.now()), "11": stan, "41": tid, "42": mid,
            "48": f48, "49": "156", "60": f"00{batch_no:06d}",
        }
        try:
            reply = await self.switch.exchange(request)
        except (SwitchTimeout, WireError) as exc:
            log.warning("TCS did not settle batch %06d of %s: %s", batch_no, tid, exc)
            return False
        if reply.get("39") != mapping.APPROVED:
            log.warning("TCS answered %s to batch %06d of %s; its totals: %s", reply.get("39"), batch_no, tid,
                        reply.get("48"))
            return False
        return True


async def serve(front: PosFront, host: str, port: int, ready: Callable[[str, int], None] | None = None) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                if length > codec.MAX_FRAME_BYTES:
                    break
                reply = await front.handle(await reader.readexactly(length))
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, host, port)
    bound = server.sockets[0].getsockname()
    if ready is not None:
        ready(str(bound[0]), int(bound[1]))
    async with server:
        await server.serve_forever()
