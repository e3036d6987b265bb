"""A POS terminal for tests, written with ``pyiso8583`` and ``cryptography`` only.

It shares no code with the platform (nor with banksim), so a misunderstanding of BANKS.md's
terminal dialect in ``tianpay.entrypoints.pos_front.codec`` cannot be hidden by the same
misunderstanding here: CUP POS framing (2-byte length, TPDU, header), BCD fields, the CUP "ECB"
MAC under the MAK, and format-0 PIN blocks under the PIK (BANKS.md TCS, terminal side).
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any

import iso8583
import iso8583.specs
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

HBB_CARD = "6217990000000000014"
JHB_CARD = "6227990000000000013"
PIN = "123456"


def _des(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(TripleDES(key + key[:8]), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def _mac(mak: bytes, mab: bytes) -> bytes:
    mab += bytes(-len(mab) % 8)
    folded = bytes(8)
    for i in range(0, len(mab), 8):
        folded = bytes(a ^ b for a, b in zip(folded, mab[i : i + 8], strict=True))
    hexed = folded.hex().upper().encode()
    first = _des(mak, hexed[:8])
    return _des(mak, bytes(a ^ b for a, b in zip(first, hexed[8:], strict=True))).hex().upper().encode()[:8]


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(iso8583.specs.default)
    bcd = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "len_count": "nibbles", "left_pad": "0"}
    var = {"data_enc": "b", "len_enc": "bcd", "len_count": "nibbles", "right_pad": "0"}
    spec["t"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2}
    spec["2"] = {**var, "len_type": 1, "max_len": 19}
    for f, n in (("3", 6), ("4", 12), ("11", 6), ("12", 6), ("13", 4), ("25", 2)):
        spec[f] = {**bcd, "max_len": n}
    spec["22"] = {**bcd, "max_len": 3, "left_pad": None, "right_pad": "0"}
    spec["22"].pop("left_pad")
    for f, n in (("37", 12), ("38", 6), ("39", 2), ("41", 8), ("42", 15), ("49", 3)):
        spec[f] = {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": n}
    spec["48"] = {**var, "len_type": 2, "max_len": 322}
    spec["52"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8}
    spec["53"] = {**bcd, "max_len": 16}
    spec["60"] = {**var, "len_type": 2, "max_len": 32}
    spec["61"] = {**var, "len_type": 2, "max_len": 29}
    spec["62"] = {"data_enc": "b", "len_enc": "bcd", "len_type": 2, "max_len": 999}
    spec["64"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8}
    return spec


SPEC = _spec()


@dataclass
class Terminal:
    host: str
    port: int
    tid: str
    mid: str
    tmk: bytes
    pik: bytes = b""
    mak: bytes = b""
    batch: int = 1
    stan: int = 0

    async def send(self, fields: dict[str, str], *, mac: bool = True, bad_mac: bool = False) -> dict[str, str]:
        fields = {**fields, "41": self.tid, "42": self.mid}
        if mac:
            fields["64"] = "00" * 8
        body, _ = iso8583.encode(fields, SPEC)
        if mac:
            code = b"XXXXXXXX" if bad_mac else _mac(self.mak, bytes(body[:-8]))
            body = body[:-8] + code
        payload = bytes.fromhex("6000030000") + bytes.fromhex("603210320072") + bytes(body)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(len(payload).to_bytes(2, "big") + payload)
        await writer.drain()
        length = int.from_bytes(await reader.readexactly(2), "big")
        reply = await reader.readexactly(length)
        writer.close()
        assert reply[:5] == bytes.fromhex("6000000003")
        decoded, _ = iso8583.decode(reply[11:], SPEC)
        if mac and decoded.get("39") != "A0":
            assert _mac(self.mak, reply[11:-8]) == reply[-8:]
        return dict(decoded)

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    async def sign_on(self) -> dict[str, str]:
        reply = await self.send({"t": "0800", "11": self.next_stan(), "60": f"00{self.batch:06d}003"}, mac=False)
        f62 = bytes.fromhex(reply["62"])
        self.pik, self.mak = _des(self.tmk, f62[0:16], decrypt=True), _des(self.tmk, f62[20:36], decrypt=True)
        assert _des(self.pik, bytes(8))[:4] == f62[16:20]
        assert _des(self.mak, bytes(8))[:4] == f62[36:40]
        return reply

    def pin_block(self, pin: str, pan: str) -> str:
        p1 = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
        p2 = bytes.fromhex("0000" + pan[-13:-1])
        return _des(self.pik, bytes(a ^ b for a, b in zip(p1, p2, strict=True))).hex()

    async def purchase(
        self, amount_minor: int, stan: str | None = None, *, card: str = HBB_CARD, pin: str = PIN
    ) -> dict[str, str]:
        return await self.send({
            "t": "0200", "2": card, "3": "000000", "4": f"{amount_minor:012d}", "11": stan or self.next_stan(),
            "22": "021", "25": "00", "49": "156", "52": self.pin_block(pin, card), "53": "2600000000000000",
            "60": f"22{self.batch:06d}",
        })

    async def void(self, amount_minor: int, original_stan: str, rrn: str, *, card: str = HBB_CARD) -> dict[str, str]:
        return await self.send({
            "t": "0200", "2": card, "3": "200000", "4": f"{amount_minor:012d}", "11": self.next_stan(),
            "22": "021", "25": "00", "37": rrn, "49": "156", "60": f"23{self.batch:06d}",
            "61": f"{self.batch:06d}{original_stan}",
        })

    async def balance(self, *, card: str = HBB_CARD, pin: str = PIN) -> dict[str, str]:
        return await self.send({
            "t": "0200", "2": card, "3": "310000", "11": self.next_stan(), "22": "021", "25": "00",
            "49": "156", "52": self.pin_block(pin, card), "53": "2600000000000000", "60": f"01{self.batch:06d}",
        })

    async def reverse(self, original: dict[str, str], *, card: str = HBB_CARD) -> dict[str, str]:
        """A 0400 for an earlier request: same STAN, amount and processing code (BANKS.md TCS)."""
        fields = {
            "t": "0400", "2": card, "3": original["3"], "11": original["11"], "25": "00", "39": "98",
            "49": "156", "60": f"{'23' if original['3'] == '200000' else '22'}{self.batch:06d}",
        }
        if "4" in original:
            fields["4"] = original["4"]
        return await self.send(fields)

    async def settle(self, debit: tuple[int, int], credit: tuple[int, int]) -> dict[str, str]:
        f48 = f"{debit[1]:012d}{debit[0]:03d}{credit[1]:012d}{credit[0]:03d}"
        return await self.send({"t": "0500", "11": self.next_stan(), "48": f48, "49": "156",
                                "60": f"00{self.batch:06d}201"})
