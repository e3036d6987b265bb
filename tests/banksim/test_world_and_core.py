"""The framework: exact seeding, the magic table, SMS codes, faults, the clock and the CLI."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from banksim.core.bank import SimConfig
from banksim.core.books import AccountKind, AccountStatus
from banksim.core.cards import luhn_is_valid, mask
from banksim.core.clock import SimClock
from banksim.core.magic import Magic, magic_for, statement_date_for
from banksim.core.seed import CARD_PIN, LOGIN_PASSWORD
from banksim.core.sms import CodeCheck
from banksim.world import World
from tests.banksim.conftest import copy_world

EXPECTED_CARDS = {
    "HBB": {
        "6217990000000000014": ("张伟", 5_000_000, "active"),
        "6217990000000000022": ("王芳", 2_000_000, "active"),
        "6217990000000000030": ("刘洋", 1_000_000, "frozen"),
        "6217990000000000519": ("赵磊", 1_000, "active"),
    },
    "JHB": {
        "6227990000000000013": ("张伟", 5_000_000, "active"),
        "6227990000000000021": ("李娜", 800_000, "active"),
    },
    "BCB": {
        "6230990000000000017": ("王芳", 2_000_000, "active"),
        "6230990000000000025": ("陈静", 500_000, "active"),
    },
}
EXPECTED_PHONES = {
    "110105198503120012": ("张伟", "13800138001"),
    "12010119900725002X": ("王芳", "13800138002"),
    "120110197801010039": ("李娜", "13800138003"),
    "310104199511110047": ("刘洋", "13800138004"),
    "120101197001010069": ("赵磊", "13800138006"),
    "440305198808080055": ("陈静", "13800138005"),
}


@pytest.fixture
def world(tmp_path: Path, seeded_template: Path) -> World:
    return copy_world(seeded_template, tmp_path)


def test_every_bank_holds_exactly_the_test_cards_with_its_bin(world: World) -> None:
    for code, cards in EXPECTED_CARDS.items():
        books = world.books(code)
        held = {
            a.acc_no: (a.holder_name, a.balance_minor, a.status.value)
            for a in books.accounts()
            if a.kind is AccountKind.CARD
        }
        assert held == cards
        for acc_no in cards:
            assert books.check_login(acc_no, LOGIN_PASSWORD)
            assert books.check_pin(acc_no, CARD_PIN)
            assert not books.check_login(acc_no, "passw0rd!")
        for customer in books.customers():
            assert EXPECTED_PHONES[customer.id_number] == (customer.name, customer.phone)


def test_institutional_accounts_are_where_banks_md_puts_them(world: World) -> None:
    assert world.books("HBB").account("6217990000000000998").kind is AccountKind.RESERVE  # type: ignore[union-attr]
    assert world.books("JHB").account("6227990000000000997").kind is AccountKind.RESERVE  # type: ignore[union-attr]
    assert world.books("BCB").account("6230990000000000991").kind is AccountKind.RESERVE  # type: ignore[union-attr]
    merchant = world.books("BCB").account("6230990000000000033")
    assert merchant is not None
    assert merchant.holder_name == "天津津门好物商贸有限公司"
    assert merchant.kind is AccountKind.CORPORATE
    assert merchant.status is AccountStatus.ACTIVE


def test_seeding_again_changes_nothing(tmp_path: Path) -> None:
    first = World(SimConfig(data_dir=tmp_path))
    before = {code: first.books(code).accounts() for code in EXPECTED_CARDS}
    first.close()
    second = World(SimConfig(data_dir=tmp_path))
    assert {code: second.books(code).accounts() for code in EXPECTED_CARDS} == before


def test_every_seeded_number_is_luhn_valid_and_masks_as_6_and_4(world: World) -> None:
    for code in EXPECTED_CARDS:
        for account in world.books(code).accounts():
            if account.kind is not AccountKind.CLEARING:
                assert len(account.acc_no) == 19
                assert luhn_is_valid(account.acc_no)
    assert mask("6217990000000000014") == "621799*********0014"


@pytest.mark.parametrize(
    ("amount_minor", "magic"),
    [
        (151, Magic.INSUFFICIENT_FUNDS),
        (1_000_061, Magic.OVER_LIMIT),
        (91, Magic.REFUSED),
        (94, Magic.SLOW_SUCCESS),
        (96, Magic.LOST_ANSWER_PROCESSED),
        (97, Magic.LOST_ANSWER_UNPROCESSED),
        (98, Magic.NO_NOTIFICATION),
        (99, Magic.DOUBLE_NOTIFICATION),
        (193, Magic.LATE_STATEMENT),
        (100, Magic.NONE),
        (150, Magic.NONE),
    ],
)
def test_the_last_two_digits_of_the_fen_amount_pick_the_magic(amount_minor: int, magic: Magic) -> None:
    assert magic_for(amount_minor) is magic


def test_only_93_moves_the_statement_date() -> None:
    today = date(2026, 11, 27)
    assert statement_date_for(Magic.LATE_STATEMENT, today) == today + timedelta(days=1)
    assert statement_date_for(Magic.NONE, today) == today


def test_sms_codes_are_six_digits_single_use_and_allow_five_tries(world: World) -> None:
    sms = world.contexts["HBB"].sms
    code = sms.issue_code(ref="B1", phone="13800138001", purpose="bind", template="验证码{code}，5分钟内有效。")
    assert len(code) == 6
    assert code.isdigit()
    assert code in sms.messages("13800138001")[0].text
    wrong = "000000" if code != "000000" else "111111"
    assert [sms.check_code(ref="B1", code=wrong) for _ in range(5)] == [CodeCheck.WRONG] * 5
    assert sms.check_code(ref="B1", code=code) is CodeCheck.EXHAUSTED
    again = sms.issue_code(ref="B2", phone="13800138001", purpose="bind", template="{code}")
    assert sms.check_code(ref="B2", code=again) is CodeCheck.OK
    assert sms.check_code(ref="B2", code=again) is CodeCheck.UNKNOWN


def test_sms_codes_expire_after_five_minutes(world: World) -> None:
    sms = world.contexts["HBB"].sms
    code = sms.issue_code(ref="B3", phone="13800138002", purpose="bind", template="{code}")
    world.clock.advance(301)
    assert sms.check_code(ref="B3", code=code) is CodeCheck.EXPIRED


def test_the_clock_keeps_its_offset_across_restarts(tmp_path: Path) -> None:
    clock = SimClock(tmp_path / "clock.json")
    today = clock.business_date()
    clock.advance(86_400)
    assert SimClock(tmp_path / "clock.json").business_date() == today + timedelta(days=1)


def test_an_outage_refuses_protocol_calls_but_not_the_sim_endpoints(hbb_url: str) -> None:
    httpx.post(f"{hbb_url}/_sim/faults", json={"outage": True}).raise_for_status()
    try:
        assert httpx.post(f"{hbb_url}/gateway/api/queryTrans.do", data={}).status_code == 503
        assert httpx.get(f"{hbb_url}/_sim/state").status_code == 200
    finally:
        httpx.post(f"{hbb_url}/_sim/faults", json={"reset": True}).raise_for_status()
    assert httpx.post(f"{hbb_url}/gateway/api/queryTrans.do", data={}).status_code == 200


def test_latency_slows_protocol_calls(hbb_url: str) -> None:
    httpx.post(f"{hbb_url}/_sim/faults", json={"latency_ms": 300}).raise_for_status()
    try:
        response = httpx.post(f"{hbb_url}/gateway/api/queryTrans.do", data={})
        assert response.elapsed.total_seconds() >= 0.3
    finally:
        httpx.post(f"{hbb_url}/_sim/faults", json={"reset": True}).raise_for_status()


def test_bad_fault_settings_are_refused(hbb_url: str) -> None:
    assert httpx.post(f"{hbb_url}/_sim/faults", json={"notify_drop_rate": 2}).status_code == 400
    assert httpx.post(f"{hbb_url}/_sim/faults", json={"earthquake": True}).status_code == 400
    assert httpx.post(f"{hbb_url}/_sim/faults", json={"refuse_new_orders": "yes"}).status_code == 400


def test_the_clock_endpoint_moves_every_banks_business_date(bank_urls: dict[str, str]) -> None:
    hbb, bcb = bank_urls["HBB"], bank_urls["BCB"]
    today = date.fromisoformat(httpx.get(f"{hbb}/_sim/clock").json()["business_date"])
    try:
        moved = httpx.post(f"{hbb}/_sim/clock", json={"advance_s": 86_400}).json()
        assert moved["business_date"] == (today + timedelta(days=1)).isoformat()
        assert httpx.get(f"{bcb}/_sim/clock").json()["business_date"] == moved["business_date"]
    finally:
        httpx.post(f"{hbb}/_sim/clock", json={"reset": True}).raise_for_status()


def test_the_sms_outbox_is_served_as_a_page_and_as_json(bank_urls: dict[str, str]) -> None:
    for url in bank_urls.values():
        assert httpx.get(f"{url}/sms").status_code == 200
        # A phone no customer holds, so no other test's SMS can ever reach it, whatever the order.
        assert httpx.get(f"{url}/_sim/sms", params={"phone": "13900000000"}).json() == []


def test_onboarding_is_idempotent_and_assigns_a_15_digit_mer_id(hbb_url: str) -> None:
    from tests.banksim.acp_kit import Platform

    platform = Platform.create()
    first = platform.onboard(hbb_url)
    again = platform.onboard(hbb_url)
    assert first == again
    assert len(first["mer_id"]) == 15
    assert first["cert_id"] == str(platform.cert.serial_number)
    chosen = Platform.create()
    assert chosen.onboard(hbb_url, partner_id="777290058110048")["mer_id"] == "777290058110048"
    taken = httpx.post(f"{hbb_url}/_sim/partners", json={"partner_id": "OTHER1", "certificate_pem": platform.cert_pem})
    assert taken.status_code == 409


def test_a_bare_public_key_is_named_by_its_fingerprint(hbb_url: str) -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from tests.banksim.acp_kit import Platform

    platform = Platform.create()
    public = platform.key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pack = httpx.post(f"{hbb_url}/_sim/partners", json={"partner_id": None, "public_key_pem": pem}).json()
    assert pack["cert_id"] == str(int.from_bytes(hashlib.sha256(der).digest()[:8], "big"))
