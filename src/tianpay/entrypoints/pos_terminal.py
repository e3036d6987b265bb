"""``tianpay pos``: a POS terminal emulator for people, speaking the terminal dialect to pos-front.

The terminal's state lives in one JSON file (mode 0600) written by ``tianpay terminal create
--save FILE``: TID, MID, the master key TMK, the working keys PIK/MAK from the last sign-on, the
batch number, the STAN counter, a journal of this batch (card numbers masked) and a reversal owed
after a timeout. Each command is one exchange (BANKS.md TCS, terminal side): ``signon`` (0800),
``purchase``/``void``/``balance`` (0200), ``settle`` (0500); an approved one prints a receipt
(商户存根). The clear PIN exists only inside ``_pin_block``; card numbers are printed masked.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from tianpay.channels.tcs.signing import check_value, cup_ecb_mac, decrypt_ecb, encrypt_pin_block, macs_match
from tianpay.domain.pos import mask_pan
from tianpay.entrypoints.pos_front import codec

BEIJING: Final = timezone(timedelta(hours=8))
ANSWER_TIMEOUT_S: Final = 15.0
KIND_NAMES: Final = {"purchase": "消费 SALE", "void": "消费撤销 VOID", "balance": "余额查询 BALANCE"}
PROCESSING: Final = {"purchase": "000000", "void": "200000", "balance": "310000"}
TYPE_CODE: Final = {"purchase": "22", "void": "23", "balance": "01"}
# CUP F53 for a format-0 PIN block under a double-length key; pos-front rewrites it for TCS.
SECURITY_CONTROL: Final = "2600000000000000"


class TerminalError(Exception):
    """The terminal file is missing or bad, the input is bad, or pos-front could not be reached."""


@dataclass
class JournalLine:
    kind: str
    stan: str
    amount_minor: int
    card: str  # masked, 621799*********0014
    rrn: str
    auth_code: str
    status: str = "approved"


@dataclass
class TerminalState:
    tid: str
    mid: str
    tmk: str
    merchant_name: str = ""
    host: str = "127.0.0.1"
    port: int = 8005
    pik: str | None = None
    mak: str | None = None
    batch_no: int = 1
    stan: int = 0
    journal: list[JournalLine] = field(default_factory=list)
    owed_reversal: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"TerminalState(tid={self.tid!r}, mid={self.mid!r}, keys=<hidden>)"

    def next_stan(self) -> str:
        # STANs run 000001…999999 and wrap (CUP); the terminal never reuses one within a batch here.
        self.stan = self.stan % 999_999 + 1
        return f"{self.stan:06d}"


def save_terminal(path: Path, state: TerminalState) -> None:
    """Writes the file with mode 0600 from the start: it holds the TMK and the working keys."""
    document = asdict(state)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
    os.chmod(path, 0o600)


def load_terminal(path: Path) -> TerminalState:
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TerminalError(f"cannot read the terminal file {path}: {exc}") from None
    journal = [JournalLine(**line) for line in document.pop("journal", [])]
    return TerminalState(**document, journal=journal)


def parse_amount(text: str) -> int:
    """"12.34" → 1234 fen; never through a float (Money is integer fen everywhere)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise TerminalError(f"not an amount: {text!r}") from None
    fen = value * 100
    if fen != fen.to_integral_value() or fen <= 0 or fen >= 10**12:
        raise TerminalError("the amount is yuan with at most two decimals, above zero")
    return int(fen)


def _pin_block(pin: str, pan: str, pik: bytes) -> str:
    """F52: the format-0 PIN block under the PIK; the only place the clear PIN is used."""
    return encrypt_pin_block(pin, pan, pik).hex().upper()


@dataclass
class Terminal:
    state: TerminalState
    path: Path
    timeout_s: float = ANSWER_TIMEOUT_S

    # ---- wire ---------------------------------------------------------------------------------

    def _exchange(self, fields: dict[str, str], *, mac: bool = True) -> dict[str, str]:
        fields = {**fields, "41": self.state.tid, "42": self.state.mid}
        mak = self._key("mak") if mac else None
        frame = codec.encode(fields, mak=mak)
        with socket.create_connection((self.state.host, self.state.port), timeout=self.timeout_s) as sock:
            sock.sendall(frame)
            length = int.from_bytes(_read_exactly(sock, 2), "big")
            reply = codec.decode(_read_exactly(sock, length))
        answer = dict(reply.fields)
        if reply.mac is not None and mak is not None and not macs_match(cup_ecb_mac(mak, reply.mab), reply.mac):
            raise TerminalError("the host's MAC does not verify: sign on again")
        return answer

    def _key(self, name: str) -> bytes:
        value = self.state.pik if name == "pik" else self.state.mak
        if not value:
            raise TerminalError("the terminal has no working keys: run `tianpay pos signon` first")
        return bytes.fromhex(value)

    def _save(self) -> None:
        save_terminal(self.path, self.state)

    # ---- commands -----------------------------------------------------------------------------

    def sign_on(self) -> dict[str, str]:
        stan = self.state.next_stan()
        self._save()
        answer = self._exchange({"t": "0800", "11": stan, "60": f"00{self.state.batch_no:06d}003"}, mac=False)
        if answer.get("39") != "00":
            return answer
        tmk = bytes.fromhex(self.state.tmk)
        f62 = bytes.fromhex(answer["62"])
        pik, mak = decrypt_ecb(tmk, f62[0:16]), decrypt_ecb(tmk, f62[20:36])
        # Each working key arrives with its 4-byte check value (BANKS.md TCS, sign-on).
        if check_value(pik) != f62[16:20] or check_value(mak) != f62[36:40]:
            raise TerminalError("the working keys do not match their check values")
        self.state.pik, self.state.mak = pik.hex().upper(), mak.hex().upper()
        self._save()
        return answer

    def financial(
        self, kind: str, *, card: str, pin: str | None, amount_minor: int | None = None,
        original: JournalLine | None = None,
    ) -> dict[str, str]:
        self.flush_reversal()
        stan = self.state.next_stan()
        fields = {
            "t": "0200", "2": card, "3": PROCESSING[kind], "11": stan, "22": "021", "25": "00", "49": "156",
            "60": f"{TYPE_CODE[kind]}{self.state.batch_no:06d}",
        }
        if amount_minor is not None:
            fields["4"] = f"{amount_minor:012d}"
        if original is not None:
            fields["37"] = original.rrn
            fields["61"] = f"{self.state.batch_no:06d}{original.stan}"
        if pin:
            fields["52"] = _pin_block(pin, card, self._key("pik"))
            fields["53"] = SECURITY_CONTROL
        # The STAN is spent before the message leaves: a crash must never reuse it.
        self._save()
        try:
            answer = self._exchange(fields)
        except (TimeoutError, OSError) as exc:
            if kind != "balance":
                # No answer: the terminal owes a reversal (BANKS.md TCS) and sends it first next time.
                self.state.owed_reversal = {k: fields[k] for k in ("2", "3", "4", "11", "60") if k in fields}
                self._save()
                self.flush_reversal()
            reason = type(exc).__name__
            raise TerminalError(f"no answer from pos-front ({reason}); the transaction is reversed") from None
        if answer.get("39") == "00" and kind != "balance":
            line = JournalLine(kind, stan, amount_minor or 0, mask_pan(card), answer.get("37", ""),
                               answer.get("38", ""))  # fmt: skip
            self.state.journal.append(line)
            if original is not None:
                original.status = "voided"
            self._save()
        elif answer.get("39") == "98" and kind != "balance":
            self.state.owed_reversal = {k: fields[k] for k in ("2", "3", "4", "11", "60") if k in fields}
            self._save()
            self.flush_reversal()
        return answer

    def flush_reversal(self) -> None:
        """Sends the reversal owed from an earlier timeout until pos-front acknowledges it."""
        owed = self.state.owed_reversal
        if owed is None:
            return
        try:
            answer = self._exchange({"t": "0400", **owed, "25": "00", "39": "98", "49": "156"})
        except (TimeoutError, OSError):
            return
        if answer.get("39") == "00":
            self.state.owed_reversal = None
            self._save()

    def settle(self) -> tuple[dict[str, str], tuple[int, int, int, int]]:
        self.flush_reversal()
        approved = [line for line in self.state.journal if line.status in ("approved", "voided")]
        purchases = [line for line in approved if line.kind == "purchase"]
        voids = [line for line in approved if line.kind == "void"]
        totals = (
            len(purchases), sum(p.amount_minor for p in purchases), len(voids), sum(v.amount_minor for v in voids)
        )
        # CUP F48: debit amount n12 + count n3, credit amount n12 + count n3.
        f48 = f"{totals[1]:012d}{totals[0]:03d}{totals[3]:012d}{totals[2]:03d}"
        stan = self.state.next_stan()
        self._save()
        answer = self._exchange({"t": "0500", "11": stan, "48": f48, "49": "156",
                                 "60": f"00{self.state.batch_no:06d}201"})  # fmt: skip
        if answer.get("39") == "00" and answer.get("48", "")[-1:] == "1":
            self.state.batch_no += 1
            self.state.journal = []
            self._save()
        return answer, totals

    def find(self, stan: str) -> JournalLine:
        for line in self.state.journal:
            if line.stan == stan and line.kind == "purchase":
                return line
        raise TerminalError(f"no purchase with STAN {stan} in batch {self.state.batch_no:06d}")


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("pos-front closed the connection")
        data += chunk
    return data


def receipt(state: TerminalState, kind: str, answer: dict[str, str], *, card: str, amount_minor: int) -> str:
    """The 商户存根 (merchant copy) of a CUP 签购单, as a terminal would print it."""
    now = datetime.now(BEIJING)
    yuan = f"{amount_minor // 100}.{amount_minor % 100:02d}"
    lines = [
        "        POS 签购单  天付支付",
        "      商户存根  MERCHANT COPY",
        "-" * 36,
        f"商户名称 MERCHANT: {state.merchant_name}",
        f"商户编号 MID: {state.mid}",
        f"终端编号 TID: {state.tid}",
        f"卡号 CARD NO: {mask_pan(card)}",
        f"交易类型 TYPE: {KIND_NAMES[kind]}",
        f"批次号 BATCH: {state.batch_no:06d}    凭证号 STAN: {answer.get('11', '')}",
        f"参考号 RRN: {answer.get('37', '')}",
        f"授权码 AUTH: {answer.get('38', '')}",
        f"日期/时间 DATE/TIME: {now:%Y/%m/%d %H:%M:%S}",
        f"金额 AMOUNT: RMB {'-' if kind == 'void' else ''}{yuan}",
        "-" * 36,
        "持卡人签名 CARDHOLDER SIGNATURE:",
        "签名 ______________________________",
        "本人确认以上交易，同意将其记入本卡账户",
    ]
    return "\n".join(lines)
