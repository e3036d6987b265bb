"""HBB quick pay over real loopback HTTP: SMS (77), bind (79), token query (78), unbind (74) and
consume by token (01/000301), with every failure code and the magic amounts.

Requests are built from BANKS.md and docs/banks/hbb.md with the test kit's own signer and the
encryption certificate from the onboarding pack, never with `banksim.hbb` code.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.banksim.acp_kit import Browser, Platform, Receiver, beijing_now, new_order_id, post_back, wait_for
from tests.banksim.conftest import balance, served_world
from tests.banksim.hbb_flows import FRONT, RESERVE, ZHANG_WEI, query, refund

WANG_FANG = "6217990000000000022"
LIU_YANG_FROZEN = "6217990000000000030"
ZHAO_LEI_TEN_YUAN = "6217990000000000519"
QUIET_S = 0.4


@dataclass(frozen=True)
class Holder:
    card_no: str
    name: str
    id_no: str
    phone: str


ZHANG = Holder(ZHANG_WEI, "张伟", "110105198503120012", "13800138001")
WANG = Holder(WANG_FANG, "王芳", "12010119900725002X", "13800138002")
LIU = Holder(LIU_YANG_FROZEN, "刘洋", "310104199511110047", "13800138004")
ZHAO = Holder(ZHAO_LEI_TEN_YUAN, "赵磊", "120101197001010069", "13800138006")


class QuickPay:
    """The platform's side of HBB quick pay, written from the docs."""

    def __init__(self, hbb_url: str, platform: Platform) -> None:
        self.url = f"{hbb_url}/gateway/api/backTransReq.do"
        self.hbb_url = hbb_url
        self.platform = platform

    def encrypt(self, card_no: str) -> str:
        cert = x509.load_pem_x509_certificate(self.platform.pack["encrypt_cert_pem"].encode())
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        return base64.b64encode(public.encrypt(card_no.encode(), padding.PKCS1v15())).decode()

    def call(self, fields: dict[str, str]) -> dict[str, str]:
        answer = post_back(self.url, self.platform.sign(fields))
        self.platform.verify_from_hbb(answer)
        return answer

    def bind_fields(self, txn_type: str, sub_type: str, order_id: str, txn_time: str, **extra: str) -> dict[str, str]:
        fields = self.platform.base(txn_type, txnSubType=sub_type, bizType="000301", orderId=order_id, **extra)
        fields["txnTime"] = txn_time
        fields.pop("currencyCode")
        return fields

    def send_sms(self, card_no: str, phone: str, order_id: str, txn_time: str, **extra: str) -> dict[str, str]:
        fields = self.bind_fields(
            "77",
            "02",
            order_id,
            txn_time,
            accNo=self.encrypt(card_no),
            encryptCertId=self.platform.pack["encrypt_cert_id"],
            customerInfo=customer_info(phoneNo=phone),
        )
        return self.call({**fields, **extra})

    def bind(self, holder: Holder, sms_code: str, order_id: str, txn_time: str, **overrides: str) -> dict[str, str]:
        info = {
            "certifTp": "01",
            "certifId": holder.id_no,
            "customerNm": holder.name,
            "phoneNo": holder.phone,
            "smsCode": sms_code,
            **overrides,
        }
        fields = self.bind_fields(
            "79",
            "00",
            order_id,
            txn_time,
            accNo=self.encrypt(holder.card_no),
            encryptCertId=self.platform.pack["encrypt_cert_id"],
            customerInfo=customer_info(**info),
        )
        return self.call(fields)

    def bind_card(self, holder: Holder) -> str:
        """The whole happy path: SMS to the reserved phone, read the code, bind; returns the token."""
        order_id, txn_time = new_order_id("B"), beijing_now()
        assert self.send_sms(holder.card_no, holder.phone, order_id, txn_time)["respCode"] == "00"
        answer = self.bind(holder, latest_code(self.hbb_url, holder.phone), order_id, txn_time)
        assert answer["respCode"] == "00", answer
        return answer["token"]

    def token_query(self, token: str) -> dict[str, str]:
        return self.call(self.bind_fields("78", "00", new_order_id("Q"), beijing_now(), token=token))

    def unbind(self, token: str) -> dict[str, str]:
        return self.call(self.bind_fields("74", "00", new_order_id("U"), beijing_now(), token=token))

    def consume(self, token: str, amount_minor: int, back_url: str, timeout_s: float = 10.0) -> dict[str, str]:
        fields = self.platform.base(
            "01",
            txnSubType="01",
            bizType="000301",
            orderId=new_order_id("P"),
            txnTime=beijing_now(),
            txnAmt=str(amount_minor),
            backUrl=back_url,
            token=token,
        )
        answer = post_back(self.url, self.platform.sign(fields), timeout_s=timeout_s)
        self.platform.verify_from_hbb(answer)
        return {**answer, "requestOrderId": fields["orderId"], "requestTxnTime": fields["txnTime"]}


def customer_info(**values: str) -> str:
    text = "{" + "&".join(f"{k}={v}" for k, v in values.items()) + "}"
    return base64.b64encode(text.encode()).decode()


def sms_messages(hbb_url: str, phone: str) -> list[dict[str, str]]:
    return httpx.get(f"{hbb_url}/_sim/sms", params={"phone": phone}).json()  # type: ignore[no-any-return]


def latest_code(hbb_url: str, phone: str) -> str:
    return sms_messages(hbb_url, phone)[0]["code"]


@pytest.fixture(scope="module")
def hbb_world(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A world of this module's own: binding texts the test customers' phones and one test moves
    the clock, and the session's shared world (whose tests expect an empty outbox) must not see
    either. It starts from the seeded template, so no PIN is hashed again."""
    directory = tmp_path_factory.mktemp("hbb-quickpay-world")
    shutil.copytree(seeded_template / "banks", directory / "banks")
    with served_world(directory) as urls:
        yield urls["HBB"]


@pytest.fixture(scope="module")
def hbb_url(hbb_world: str) -> str:
    return hbb_world


@pytest.fixture(scope="module")
def platform(hbb_world: str) -> Platform:
    platform = Platform.create()
    platform.onboard(hbb_world)
    return platform


@pytest.fixture(scope="module")
def qp(hbb_url: str, platform: Platform) -> QuickPay:
    return QuickPay(hbb_url, platform)


@pytest.fixture(scope="module")
def zhang_token(qp: QuickPay) -> str:
    return qp.bind_card(ZHANG)


@pytest.fixture
def moved_clock(hbb_url: str) -> Iterator[str]:
    yield f"{hbb_url}/_sim/clock"
    httpx.post(f"{hbb_url}/_sim/clock", json={"reset": True}).raise_for_status()


# Binding


def test_the_code_goes_to_the_reserved_phone_and_binding_gives_a_token(qp: QuickPay, hbb_url: str) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    before = len(sms_messages(hbb_url, WANG.phone))
    answer = qp.send_sms(WANG.card_no, WANG.phone, order_id, txn_time)
    assert (answer["respCode"], answer["orderId"], answer["txnTime"]) == ("00", order_id, txn_time)
    messages = sms_messages(hbb_url, WANG.phone)
    assert len(messages) == before + 1
    assert "0022" in messages[0]["text"]
    assert "华北银行" in messages[0]["text"]
    bound = qp.bind(WANG, messages[0]["code"], order_id, txn_time)
    assert bound["respCode"] == "00"
    assert bound["token"].startswith("HT")
    assert len(bound["token"]) == 26
    assert bound["accNo"] == "621799*********0022"
    assert "customerInfo" not in bound
    status = qp.token_query(bound["token"])
    assert (status["respCode"], status["tokenStatus"], status["token"]) == ("00", "01", bound["token"])


def test_a_repeated_bind_and_a_second_binding_of_the_same_card_give_the_same_token(
    qp: QuickPay, hbb_url: str, zhang_token: str
) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time)
    code = latest_code(hbb_url, ZHANG.phone)
    assert qp.bind(ZHANG, code, order_id, txn_time)["token"] == zhang_token
    assert qp.bind(ZHANG, code, order_id, txn_time)["token"] == zhang_token


def test_a_name_that_does_not_match_is_refused_with_64(qp: QuickPay, hbb_url: str) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time)
    code = latest_code(hbb_url, ZHANG.phone)
    assert qp.bind(ZHANG, code, order_id, txn_time, customerNm="张三")["respCode"] == "64"
    assert qp.bind(ZHANG, code, order_id, txn_time, certifId="110105198503120020")["respCode"] == "64"
    assert qp.bind(ZHANG, code, order_id, txn_time, phoneNo="13900000000")["respCode"] == "64"


def test_a_phone_other_than_the_reserved_one_gets_no_sms_and_64(qp: QuickPay, hbb_url: str) -> None:
    before = len(sms_messages(hbb_url, ZHANG.phone))
    answer = qp.send_sms(ZHANG.card_no, "13900000000", new_order_id("B"), beijing_now())
    assert answer["respCode"] == "64"
    assert sms_messages(hbb_url, "13900000000") == []
    assert len(sms_messages(hbb_url, ZHANG.phone)) == before


def test_a_frozen_card_is_refused_with_62(qp: QuickPay, hbb_url: str) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    assert qp.send_sms(LIU.card_no, LIU.phone, order_id, txn_time)["respCode"] == "62"
    assert sms_messages(hbb_url, LIU.phone) == []
    assert qp.bind(LIU, "123456", order_id, txn_time)["respCode"] == "62"


@pytest.mark.parametrize(
    "card_no",
    ["6217990000000000015", "6217990000000001012", "6227990000000000013", "621799000000000001"],
    ids=["luhn", "unknown", "other-bank", "short"],
)
def test_an_invalid_card_is_refused_with_14(qp: QuickPay, card_no: str) -> None:
    assert qp.send_sms(card_no, ZHANG.phone, new_order_id("B"), beijing_now())["respCode"] == "14"


def test_five_wrong_codes_lock_the_code_with_65(qp: QuickPay, hbb_url: str) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time)
    code = latest_code(hbb_url, ZHANG.phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    codes = [qp.bind(ZHANG, wrong, order_id, txn_time)["respCode"] for _ in range(5)]
    assert codes == ["63", "63", "63", "63", "65"]
    assert qp.bind(ZHANG, code, order_id, txn_time)["respCode"] == "65"


def test_an_expired_code_is_refused_with_63(qp: QuickPay, hbb_url: str, moved_clock: str) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time)
    code = latest_code(hbb_url, ZHANG.phone)
    httpx.post(moved_clock, json={"advance_s": 301}).raise_for_status()
    assert qp.bind(ZHANG, code, order_id, txn_time)["respCode"] == "63"


def test_the_bind_must_carry_the_order_id_and_time_of_the_sms(qp: QuickPay, hbb_url: str) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time)
    code = latest_code(hbb_url, ZHANG.phone)
    assert qp.bind(ZHANG, code, new_order_id("B"), txn_time)["respCode"] == "63"
    other_time = beijing_now(-60)
    assert qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, other_time)["respCode"] == "12"


def test_an_account_number_not_encrypted_for_hbb_is_a_format_error(qp: QuickPay) -> None:
    order_id, txn_time = new_order_id("B"), beijing_now()
    plain = base64.b64encode(ZHANG.card_no.encode()).decode()
    assert qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time, accNo=plain)["respCode"] == "30"
    assert qp.send_sms(ZHANG.card_no, ZHANG.phone, order_id, txn_time, encryptCertId="1")["respCode"] == "30"


# Paying with the token


def test_a_token_consume_debits_the_card_notifies_and_can_be_refunded(
    qp: QuickPay, hbb_url: str, platform: Platform, receiver: Receiver, zhang_token: str
) -> None:
    card, reserve = balance(hbb_url, ZHANG_WEI), balance(hbb_url, RESERVE)
    answer = qp.consume(zhang_token, 1234, f"{receiver.url}/ok/qp-paid")
    assert answer["respCode"] == "00"
    assert answer["accNo"] == "621799*********0014"
    assert len(answer["queryId"]) == 21
    assert "token" not in answer
    assert balance(hbb_url, ZHANG_WEI) == card - 1234
    assert balance(hbb_url, RESERVE) == reserve + 1234
    wait_for(lambda: receiver.at("/ok/qp-paid"))
    notice = receiver.at("/ok/qp-paid")[0].fields
    platform.verify_from_hbb(notice)
    assert (notice["respCode"], notice["bizType"], notice["queryId"]) == ("00", "000301", answer["queryId"])
    found = query(hbb_url, platform, answer["requestOrderId"], answer["requestTxnTime"])
    assert found["origRespCode"] == "00"
    back = refund(hbb_url, platform, answer["queryId"], 1234, f"{receiver.url}/ok/qp-refund")
    assert back["respCode"] == "00"
    assert balance(hbb_url, ZHANG_WEI) == card


def test_a_card_without_the_money_is_declined_with_51(qp: QuickPay, hbb_url: str, receiver: Receiver) -> None:
    token = qp.bind_card(ZHAO)
    answer = qp.consume(token, 2000, f"{receiver.url}/ok/qp-zhao")
    assert answer["respCode"] == "51"
    assert balance(hbb_url, ZHAO.card_no) == 1000


def test_a_token_of_another_merchant_is_refused_with_66(
    qp: QuickPay, hbb_url: str, receiver: Receiver, zhang_token: str
) -> None:
    other = Platform.create()
    other.onboard(hbb_url)
    stranger = QuickPay(hbb_url, other)
    assert stranger.consume(zhang_token, 100, f"{receiver.url}/ok/qp-stranger")["respCode"] == "66"
    assert stranger.token_query(zhang_token)["respCode"] == "66"
    assert qp.consume("HT000000000000000000000000", 100, f"{receiver.url}/ok/qp-nobody")["respCode"] == "66"


def test_after_unbinding_the_token_no_longer_pays(qp: QuickPay, hbb_url: str, receiver: Receiver) -> None:
    token = qp.bind_card(WANG)
    assert qp.consume(token, 100, f"{receiver.url}/ok/qp-wang")["respCode"] == "00"
    first = qp.unbind(token)
    assert (first["respCode"], first["tokenStatus"]) == ("00", "02")
    assert qp.unbind(token)["respCode"] == "00"
    assert qp.token_query(token)["tokenStatus"] == "02"
    card = balance(hbb_url, WANG_FANG)
    assert qp.consume(token, 100, f"{receiver.url}/ok/qp-wang-after")["respCode"] == "66"
    assert balance(hbb_url, WANG_FANG) == card
    assert qp.bind_card(WANG) != token


# Magic amounts on quick consume


def _notifications(hbb_url: str) -> list[dict[str, object]]:
    return httpx.get(f"{hbb_url}/_sim/state").json()["notifications"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("amount_minor", "code"), [(351, "51"), (361, "61")])
def test_51_and_61_decline_a_token_consume(
    qp: QuickPay, hbb_url: str, receiver: Receiver, zhang_token: str, amount_minor: int, code: str
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    answer = qp.consume(zhang_token, amount_minor, f"{receiver.url}/ok/qp-magic-{code}")
    assert answer["respCode"] == code
    assert balance(hbb_url, ZHANG_WEI) == before
    wait_for(lambda: receiver.at(f"/ok/qp-magic-{code}"))
    assert receiver.at(f"/ok/qp-magic-{code}")[0].fields["respCode"] == code


def test_91_refuses_a_token_consume_before_recording_it(
    qp: QuickPay, hbb_url: str, platform: Platform, receiver: Receiver, zhang_token: str
) -> None:
    answer = qp.consume(zhang_token, 391, f"{receiver.url}/ok/qp-magic-91")
    assert answer["respCode"] == "91"
    assert query(hbb_url, platform, answer["requestOrderId"], answer["requestTxnTime"])["respCode"] == "34"
    time.sleep(QUIET_S)
    assert not receiver.at("/ok/qp-magic-91")


def test_94_is_processing_for_two_queries_then_succeeds(
    qp: QuickPay, hbb_url: str, platform: Platform, receiver: Receiver, zhang_token: str
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    answer = qp.consume(zhang_token, 394, f"{receiver.url}/ok/qp-magic-94")
    assert answer["respCode"] == "05"
    assert balance(hbb_url, ZHANG_WEI) == before
    order_id, txn_time = answer["requestOrderId"], answer["requestTxnTime"]
    codes = [query(hbb_url, platform, order_id, txn_time)["origRespCode"] for _ in range(3)]
    assert codes == ["05", "05", "00"]
    assert balance(hbb_url, ZHANG_WEI) == before - 394
    wait_for(lambda: receiver.at("/ok/qp-magic-94"))
    assert receiver.at("/ok/qp-magic-94")[0].fields["respCode"] == "00"


def test_96_moves_the_money_but_the_answer_never_comes(
    qp: QuickPay, hbb_url: str, platform: Platform, receiver: Receiver, zhang_token: str
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    with pytest.raises(httpx.TimeoutException):
        qp.consume(zhang_token, 396, f"{receiver.url}/ok/qp-magic-96", timeout_s=0.5)
    wait_for(lambda: receiver.at("/ok/qp-magic-96"))
    notice = receiver.at("/ok/qp-magic-96")[0].fields
    assert notice["respCode"] == "00"
    assert balance(hbb_url, ZHANG_WEI) == before - 396
    assert query(hbb_url, platform, notice["orderId"], notice["txnTime"])["origRespCode"] == "00"


def test_97_is_not_processed_and_the_answer_never_comes(
    qp: QuickPay, hbb_url: str, receiver: Receiver, zhang_token: str
) -> None:
    before = balance(hbb_url, ZHANG_WEI)
    with pytest.raises(httpx.TimeoutException):
        qp.consume(zhang_token, 397, f"{receiver.url}/ok/qp-magic-97", timeout_s=0.5)
    time.sleep(QUIET_S)
    assert balance(hbb_url, ZHANG_WEI) == before
    assert not receiver.at("/ok/qp-magic-97")


def test_98_pays_but_never_notifies(qp: QuickPay, hbb_url: str, receiver: Receiver, zhang_token: str) -> None:
    answer = qp.consume(zhang_token, 398, f"{receiver.url}/ok/qp-magic-98")
    assert answer["respCode"] == "00"
    time.sleep(QUIET_S)
    assert not receiver.at("/ok/qp-magic-98")
    mine = [n for n in _notifications(hbb_url) if str(n["event_ref"]).startswith(answer["queryId"])]
    assert [n["status"] for n in mine] == ["suppressed"]


def test_99_pays_and_notifies_twice(qp: QuickPay, receiver: Receiver, zhang_token: str) -> None:
    answer = qp.consume(zhang_token, 399, f"{receiver.url}/ok/qp-magic-99")
    assert answer["respCode"] == "00"
    wait_for(lambda: len(receiver.at("/ok/qp-magic-99")) == 2)
    assert {r.fields["queryId"] for r in receiver.at("/ok/qp-magic-99")} == {answer["queryId"]}


# The refuse_new_orders fault


@pytest.fixture
def faults(hbb_url: str) -> Iterator[str]:
    """HBB's fault switch; reset afterwards so the module's other tests see a healthy bank."""
    yield f"{hbb_url}/_sim/faults"
    httpx.post(f"{hbb_url}/_sim/faults", json={"reset": True}).raise_for_status()


def test_refuse_new_orders_answers_every_new_payment_91_but_settles_the_old_ones(
    qp: QuickPay, hbb_url: str, platform: Platform, receiver: Receiver, zhang_token: str, faults: str
) -> None:
    # Paid before the fault is switched on: its query and refund must keep working while it is on.
    earlier = qp.consume(zhang_token, 1500, f"{receiver.url}/ok/qp-before-fault")
    assert earlier["respCode"] == "00"
    switched = httpx.post(faults, json={"refuse_new_orders": True})
    assert switched.json()["refuse_new_orders"] is True
    card = balance(hbb_url, ZHANG_WEI)

    # Any amount, not just a magic 91, is refused with HBB's own signed answer and nothing recorded.
    refused = qp.consume(zhang_token, 1234, f"{receiver.url}/ok/qp-refused")
    assert (refused["respCode"], refused["orderId"]) == ("91", refused["requestOrderId"])
    assert query(hbb_url, platform, refused["requestOrderId"], refused["requestTxnTime"])["respCode"] == "34"
    # Online banking is a new payment too: the front post-back carries the signed 91.
    browser = Browser(hbb_url)
    try:
        page = browser.open_gateway(platform.consume(2345, FRONT, f"{receiver.url}/ok/ob"))
    finally:
        browser.close()
    assert page.front_post["respCode"] == "91"
    platform.verify_from_hbb(page.front_post)

    # What is already in flight keeps working: the token, the query, the refund and its notification.
    assert qp.token_query(zhang_token)["respCode"] == "00"
    assert query(hbb_url, platform, earlier["requestOrderId"], earlier["requestTxnTime"])["origRespCode"] == "00"
    back = refund(hbb_url, platform, earlier["queryId"], 1500, f"{receiver.url}/ok/qp-refund-during-fault")
    assert back["respCode"] == "00"
    wait_for(lambda: receiver.at("/ok/qp-refund-during-fault"))
    assert balance(hbb_url, ZHANG_WEI) == card + 1500
    time.sleep(QUIET_S)
    assert not receiver.at("/ok/qp-refused")
    assert not receiver.at("/ok/ob")

    # Reset brings new payments back.
    cleared = httpx.post(faults, json={"reset": True}).json()
    assert cleared["refuse_new_orders"] is False
    assert qp.consume(zhang_token, 1234, f"{receiver.url}/ok/qp-after-fault")["respCode"] == "00"
