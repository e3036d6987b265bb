"""What onboarding with TCS leaves behind: where the switch is, our institution id, the zone keys."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TcsConfig:
    host: str
    port: int
    institution_id: str
    zpk: bytes
    zak: bytes
    # Where TCS settles acquired money: the platform's reserve at this bank (docs/banks/tcs.md §4).
    settlement_bank: str = "HBB"
    timeout_s: float = 5.0
    # TCS's HTTP admin address (onboarding, the POS clearing file); empty for an older onboarding.
    admin_url: str = ""

    def __repr__(self) -> str:
        return f"TcsConfig(host={self.host!r}, port={self.port}, institution_id={self.institution_id!r}, keys=<hidden>)"
