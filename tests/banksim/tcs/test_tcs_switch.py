"""TCS over real TCP: purchases, declines, voids, reversals, faults and batch settlement, each
checked against the issuers' books, the platform's HBB reserve and the interbank clearing.
"""

from __future__ import annotations

from datetime import date

from starlette.testclient import TestClient

from banksim.tcs.server import clearing_file
from tests.banksim.tcs.conftest import Tcs
from tests.banksim.tcs.kit import des_decrypt, des_encrypt

HBB_CARD = "6217990000000000014"  # 张伟 ¥50,000
JHB_CARD = "6227990000000000013"  # 张伟 ¥50,000
ZHAO_LEI = "6217990000000000519"  # ¥10.00
LIU_YANG = "6217990000000000030"  # frozen
RESERVE = "6217990000000000998"


def test_an_hbb_card_purchase_moves_the_money_into_the_hbb_reserve(tcs: Tcs) -> None:
    client = tcs.client()
    before = tcs.total_minor()
    answer = client.send(tcs.purchase(HBB_CARD, 12_345))
    assert answer is not None
    assert answer["t"] == "0210"
    assert answer["39"] == "00"
    assert len(answer["37"]) == 12
    assert len(answer["38"]) == 6
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000 - 12_345
    assert tcs.balance("HBB", RESERVE) == 100_000_000 + 12_345
    assert tcs.total_minor() == before


def test_a_jhb_card_purchase_clears_interbank_and_every_book_stays_true(tcs: Tcs) -> None:
    before = tcs.total_minor()
    answer = tcs.client().send(tcs.purchase(JHB_CARD, 20_000))
    assert answer is not None
    assert answer["39"] == "00"
    assert tcs.balance("JHB", JHB_CARD) == 5_000_000 - 20_000
    assert tcs.balance("HBB", RESERVE) == 100_000_000 + 20_000
    positions = tcs.world.clearing.positions()
    assert positions == {"JHB": 20_000, "HBB": -20_000}
    assert tcs.balance("JHB", "CLEARING") == 20_000
    assert tcs.balance("HBB", "CLEARING") == -20_000
    assert tcs.total_minor() == before


def test_a_wrong_pin_answers_55_and_the_third_answers_75_even_with_the_right_pin_after(tcs: Tcs) -> None:
    client = tcs.client()
    codes = [client.send(tcs.purchase(HBB_CARD, 100, pin="654321")) for _ in range(3)]
    assert [a["39"] for a in codes if a] == ["55", "55", "75"]
    after = client.send(tcs.purchase(HBB_CARD, 100))
    assert after is not None
    assert after["39"] == "75"
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000


def test_insufficient_funds_answers_51(tcs: Tcs) -> None:
    answer = tcs.client().send(tcs.purchase(ZHAO_LEI, 1_001))
    assert answer is not None
    assert answer["39"] == "51"
    assert "38" not in answer
    assert tcs.balance("HBB", ZHAO_LEI) == 1_000


def test_a_frozen_card_answers_62(tcs: Tcs) -> None:
    answer = tcs.client().send(tcs.purchase(LIU_YANG, 100))
    assert answer is not None
    assert answer["39"] == "62"


def test_an_unknown_bin_or_a_bad_luhn_answers_14(tcs: Tcs) -> None:
    client = tcs.client()
    for pan in ("6250990000000000017", "6217990000000000015"):
        answer = client.send(tcs.purchase(pan, 100))
        assert answer is not None
        assert answer["39"] == "14"


def test_a_bad_mac_answers_a0_and_moves_nothing(tcs: Tcs) -> None:
    answer = tcs.client().send(tcs.purchase(HBB_CARD, 100), corrupt_mac=True)
    assert answer is not None
    assert answer["39"] == "A0"
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000


def test_a_duplicate_stan_on_the_same_terminal_and_day_answers_94(tcs: Tcs) -> None:
    client = tcs.client()
    first = client.send(tcs.purchase(HBB_CARD, 100, stan="000777"))
    second = client.send(tcs.purchase(HBB_CARD, 100, stan="000777"))
    assert first is not None
    assert first["39"] == "00"
    assert second is not None
    assert second["39"] == "94"
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000 - 100


def test_a_void_by_rrn_gives_the_money_back_and_cannot_be_repeated(tcs: Tcs) -> None:
    client = tcs.client()
    sale = client.send(tcs.purchase(JHB_CARD, 5_000))
    assert sale is not None
    assert sale["39"] == "00"
    void = {**tcs.purchase(JHB_CARD, 5_000), "3": "200000", "37": sale["37"], "60": "23000001"}
    answer = client.send(void)
    assert answer is not None
    assert answer["39"] == "00"
    assert answer["37"] != sale["37"]
    assert tcs.balance("JHB", JHB_CARD) == 5_000_000
    assert tcs.balance("HBB", RESERVE) == 100_000_000
    again = client.send({**void, "11": tcs.next_stan()})
    assert again is not None
    assert again["39"] == "12"
    unknown = client.send({**void, "11": tcs.next_stan(), "37": "999999999999"})
    assert unknown is not None
    assert unknown["39"] == "25"


def test_a_reversal_restores_the_money_and_is_idempotent(tcs: Tcs) -> None:
    client = tcs.client()
    before = tcs.total_minor()
    sale_request = tcs.purchase(JHB_CARD, 7_000)
    sale = client.send(sale_request)
    assert sale is not None
    assert sale["39"] == "00"
    reversal = _reversal(tcs, sale_request)
    for _ in range(2):
        answer = client.send(reversal)
        assert answer is not None
        assert answer["t"] == "0410"
        assert answer["39"] == "00"
    assert tcs.balance("JHB", JHB_CARD) == 5_000_000
    assert tcs.balance("HBB", RESERVE) == 100_000_000
    assert tcs.world.clearing.positions() == {"JHB": 0, "HBB": 0}
    assert tcs.total_minor() == before


def test_reversing_an_unknown_transaction_answers_00_and_blocks_a_late_original(tcs: Tcs) -> None:
    client = tcs.client()
    sale_request = tcs.purchase(HBB_CARD, 100)
    answer = client.send(_reversal(tcs, sale_request))
    assert answer is not None
    assert answer["39"] == "00"
    late = client.send(sale_request)
    assert late is not None
    assert late["39"] == "94"
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000


def test_drop_answers_debits_without_answering_and_the_reversal_puts_it_back(tcs: Tcs) -> None:
    client = tcs.client()
    tcs.world.tcs.switch.faults.update({"drop_answers": True})
    sale_request = tcs.purchase(HBB_CARD, 3_000)
    assert client.send(sale_request, timeout_s=1) is None
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000 - 3_000
    tcs.world.tcs.switch.faults.update({"reset": True})
    answer = client.send(_reversal(tcs, sale_request))
    assert answer is not None
    assert answer["39"] == "00"
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000


def test_magic_96_approves_silently_and_magic_97_does_nothing(tcs: Tcs) -> None:
    client = tcs.client()
    assert client.send(tcs.purchase(HBB_CARD, 1_096), timeout_s=1) is None
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000 - 1_096
    assert client.send(tcs.purchase(HBB_CARD, 1_097), timeout_s=1) is None
    assert tcs.balance("HBB", HBB_CARD) == 5_000_000 - 1_096


def test_a_balance_inquiry_answers_the_available_balance(tcs: Tcs) -> None:
    request = {**tcs.purchase(HBB_CARD, 0), "3": "310000", "60": "01000001"}
    del request["4"]
    answer = tcs.client().send(request)
    assert answer is not None
    assert answer["39"] == "00"
    assert answer["54"] == "1002156C000005000000"


def test_batch_settlement_matches_or_answers_95_with_the_switchs_totals(tcs: Tcs) -> None:
    client = tcs.client()
    for amount in (1_000, 2_000):
        sale = client.send(tcs.purchase(HBB_CARD, amount))
        assert sale is not None
        assert sale["39"] == "00"
    settlement = {**tcs.header("0500"), "48": "000002000000003000000000000000000000", "60": "00000001"}
    matched = client.send(settlement)
    assert matched is not None
    assert matched["t"] == "0510"
    assert matched["39"] == "00"
    wrong = client.send({**settlement, "11": tcs.next_stan(), "48": "000003000000004000000000000000000000"})
    assert wrong is not None
    assert wrong["39"] == "95"
    assert wrong["48"] == settlement["48"]


def test_the_clearing_file_lists_approved_unreversed_purchases(tcs: Tcs) -> None:
    client = tcs.client()
    kept = client.send(tcs.purchase(HBB_CARD, 1_000))
    reversed_request = tcs.purchase(HBB_CARD, 2_000)
    client.send(reversed_request)
    client.send(_reversal(tcs, reversed_request))
    client.send(tcs.purchase(ZHAO_LEI, 5_000))
    assert kept is not None
    text = clearing_file(tcs.world.tcs.switch.store, tcs.world.clock.business_date(), None)
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("P22 ")
    assert kept["37"] in lines[0]
    assert lines[1] == "TOTAL 000001 00000000001000 00000000000000"
    assert tcs.world.clock.business_date() >= date(2020, 1, 1)


def _reversal(tcs: Tcs, original: dict[str, str]) -> dict[str, str]:
    f90 = "0200" + original["11"] + original["7"] + tcs.acquirer_id.rjust(11, "0") + "0" * 11
    fields = {k: original[k] for k in ("2", "3", "4", "11", "32", "41", "42", "49")}
    return {"t": "0400", "7": original["7"], **fields, "39": "98", "90": f90}


def test_onboarding_over_http_is_idempotent_and_gives_check_values(tcs: Tcs) -> None:
    client = TestClient(tcs.world.tcs.admin_app())
    first = client.post("/_sim/partners", json={"acquirer_id": "48990001"}).json()
    again = client.post("/_sim/partners", json={"acquirer_id": "48990001"}).json()
    assert first == again
    assert bytes.fromhex(first["zak"]) == tcs.zak
    assert first["zak_kcv"] == des_check_value(tcs.zak)
    assert client.post("/_sim/partners", json={"acquirer_id": "12"}).status_code == 400


def des_check_value(key16: bytes) -> str:
    # 3DES(K1‖K2‖K1) of zeros by hand: E_K1(D_K2(E_K1(0))).
    first = des_encrypt(key16[:8], bytes(8))
    return des_encrypt(key16[:8], des_decrypt(key16[8:], first))[:3].hex().upper()
