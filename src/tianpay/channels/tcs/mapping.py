"""Pure mapping between POS requests and TCS's response codes and banks (BANKS.md TCS, Line-up)."""

from __future__ import annotations

from typing import Final

from tianpay.ports.channels import Outcome

# The issuing bank by card BIN (BANKS.md "Card BINs"), for receipts; acquired money itself always
# lands in the settlement bank's reserve named at onboarding (HBB, docs/banks/tcs.md §4).
BANK_BY_BIN: Final = {"621799": "HBB", "622799": "JHB", "623099": "BCB"}
APPROVED: Final = "00"
NO_ANSWER: Final = "98"
MAC_FAILURE: Final = "A0"
DUPLICATE: Final = "94"
FORMAT_ERROR: Final = "30"
SYSTEM_MALFUNCTION: Final = "96"
ORIGINAL_NOT_FOUND: Final = "25"


def bank_of(pan: str) -> str | None:
    return BANK_BY_BIN.get(pan[:6])


def outcome_of(response_code: str) -> Outcome:
    """Only 00 is success; every other F39 answered by the switch is a decline (nothing moved)."""
    return Outcome.SUCCEEDED if response_code == APPROVED else Outcome.FAILED
