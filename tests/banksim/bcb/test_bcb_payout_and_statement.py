"""BCB batch payout (100001), its query (200004), the bounce (300001) and the statement (200005) over real
loopback HTTP against a private world (docs/banks/bcb.md): a batch pays a BCB account inside BCB and an
HBB account through the clearing, answers each item with its own code, refuses bad totals, a reused
REQ_SN, a bad signature and a batch beyond the reserve; magic 94, 96 and 97 behave as everywhere; a
cross-bank item naming someone else is answered 0000 and then bounces with its money back and a signed
notice retried until acknowledged; the statement is refused until its date is over, then equals the
books, charges BCB's fees once, renders identically again, and carries a 93 item on the next day's file.
"""

from __future__ import annotations

import base64
import csv
import itertools
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from banksim.bcb import wire
from tests.banksim.bcb.kit import (
    BCB_INCOME,
    BCB_RESERVE,
    CHEN_JING_BCB,
    WANG_FANG_BCB,
    WANG_FANG_HBB,
    NotifyEndpoint,
    Post,
    advance_days,
    balance,
    bank_world,
    business_date,
    notify_endpoint,
    reserve_items_on,
    reserve_moved_on,
    settled_notifications,
    state,
)
from tests.banksim.bcb.test_bcb_aipg import Answer, BcbPartner, detail_code

_serial = itertools.count(1)
HEADER = ["流水号", "商户请求号", "业务类型", "账号", "户名", "金额(元)", "手续费(元)", "完成时间"]


def req_sn() -> str:
    return f"pob_{next(_serial):04d}{uuid.uuid4().hex[:12]}"


def sn() -> str:
    return f"pyo_{uuid.uuid4().hex[:20]}"


def item(account_no: str, name: str, bank: str, amount: int, serial: str | None = None) -> dict[str, str]:
    return {"SN": serial or sn(), "ACCOUNT_NO": account_no, "ACCOUNT_NAME": name, "BANK_CODE": bank,
            "AMOUNT": str(amount), "REMARK": "结算款"}


def batch_document(bcb: BcbPartner, serial: str, items: list[dict[str, str]], *, notify_url: str = "",
                   total_item: int | None = None, total_sum: int | None = None) -> ET.Element:
    body = ET.Element("BODY")
    body.append(wire.element("TRANS_SUM", {
        "BUSINESS_CODE": "09900", "SUBMIT_TIME": "20261127120000",
        "TOTAL_ITEM": str(len(items) if total_item is None else total_item),
        "TOTAL_SUM": str(sum(int(i["AMOUNT"]) for i in items) if total_sum is None else total_sum),
        "NOTIFY_URL": notify_url,
    }))
    details = ET.SubElement(body, "TRANS_DETAILS")
    for fields in items:
        details.append(wire.element("TRANS_DETAIL", fields))
    info = {"TRX_CODE": "100001", "VERSION": wire.VERSION, "DATA_TYPE": wire.DATA_TYPE, "LEVEL": wire.LEVEL,
            "USER_NAME": bcb.user_name, "REQ_SN": serial}
    return wire.build(info, body)


def pay(bcb: BcbPartner, items: list[dict[str, str]], *, serial: str | None = None, notify_url: str = "",
        **totals: int) -> Answer:
    return bcb.post(wire.sign(batch_document(bcb, serial or req_sn(), items, notify_url=notify_url, **totals),
                              bcb.key))


def item_codes(answer: Answer, path: str = "RET_DETAILS/RET_DETAIL") -> dict[str, str]:
    return {wire.text(d, "SN"): wire.text(d, "RET_CODE") for d in answer.body.iterfind(path)}


def query_codes(bcb: BcbPartner, serial: str) -> dict[str, str]:
    answer = bcb.query(serial)
    assert answer.code == "0000", answer.info
    return item_codes(answer, "QTRANSRSP/QTDETAIL")


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with bank_world(tmp_path_factory.mktemp("bcb-payout-world")) as found:
        yield found


@pytest.fixture(scope="module")
def endpoint() -> Iterator[NotifyEndpoint]:
    with notify_endpoint() as found:
        yield found


@pytest.fixture(scope="module")
def bcb(urls: dict[str, str]) -> Iterator[BcbPartner]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with httpx.Client(base_url=urls["BCB"], timeout=15.0) as http:
        pack = http.post("/_sim/partners", json={"name": "天付支付有限公司", "public_key_pem": pem.decode()}).json()
        bcb_key = serialization.load_pem_public_key(pack["bcb_public_key_pem"].encode())
        assert isinstance(bcb_key, rsa.RSAPublicKey)
        yield BcbPartner(http, key, pack["user_name"], bcb_key)


def test_a_batch_pays_a_bcb_account_and_answers_each_item_with_its_own_code(
    bcb: BcbPartner, urls: dict[str, str]
) -> None:
    url = urls["BCB"]
    reserve, wang, chen = balance(url, BCB_RESERVE), balance(url, WANG_FANG_BCB), balance(url, CHEN_JING_BCB)
    items = [
        item(WANG_FANG_BCB, "王芳", "BCB", 10_000),
        item(CHEN_JING_BCB, "王芳", "BCB", 10_000),  # 陈静's account under another name
        item("6230990000000000041", "王芳", "BCB", 10_000),  # no such account at BCB
        item(WANG_FANG_BCB, "王芳", "BCB", 10_051),
        item(WANG_FANG_BCB, "王芳", "BCB", 10_061),
        item(WANG_FANG_BCB, "王芳", "BCB", 10_091),
        item(WANG_FANG_BCB, "王芳", "XYZ", 10_000),
    ]
    serial = req_sn()
    answer = pay(bcb, items, serial=serial)
    assert answer.code == "0000", answer.info
    expected = dict(zip([i["SN"] for i in items], ["0000", "3028", "3045", "3008", "3061", "3999", "3014"],
                        strict=True))
    assert item_codes(answer) == expected
    assert query_codes(bcb, serial) == expected
    assert balance(url, WANG_FANG_BCB) == wang + 10_000
    assert balance(url, CHEN_JING_BCB) == chen
    assert balance(url, BCB_RESERVE) == reserve - 10_000


def test_a_cross_bank_item_credits_the_other_banks_customer_through_the_clearing(
    bcb: BcbPartner, urls: dict[str, str]
) -> None:
    bcb_url, hbb_url = urls["BCB"], urls["HBB"]
    reserve, card = balance(bcb_url, BCB_RESERVE), balance(hbb_url, WANG_FANG_HBB)
    one = item(WANG_FANG_HBB, "王 芳", "HBB", 20_000)
    answer = pay(bcb, [one])
    assert item_codes(answer) == {one["SN"]: "0000"}
    assert balance(hbb_url, WANG_FANG_HBB) == card + 20_000
    assert balance(bcb_url, BCB_RESERVE) == reserve - 20_000
    positions = state(bcb_url)["clearing_positions"]
    assert isinstance(positions, dict)
    assert sum(positions.values()) == 0
    assert balance(bcb_url, "CLEARING") == positions["BCB"]
    assert balance(hbb_url, "CLEARING") == positions["HBB"]


def test_a_batch_whose_totals_disagree_with_its_details_is_refused_and_not_recorded(bcb: BcbPartner) -> None:
    items = [item(WANG_FANG_BCB, "王芳", "BCB", 1_000), item(WANG_FANG_BCB, "王芳", "BCB", 2_000)]
    count_wrong, sum_wrong = req_sn(), req_sn()
    assert pay(bcb, items, serial=count_wrong, total_item=3).code == "1103"
    assert pay(bcb, items, serial=sum_wrong, total_sum=3_001).code == "1104"
    assert detail_code(bcb.query(count_wrong)) == "1002"
    assert detail_code(bcb.query(sum_wrong)) == "1002"


def test_a_batch_req_sn_is_accepted_once(bcb: BcbPartner, urls: dict[str, str]) -> None:
    url = urls["BCB"]
    wang = balance(url, WANG_FANG_BCB)
    serial, items = req_sn(), [item(WANG_FANG_BCB, "王芳", "BCB", 1_200)]
    assert pay(bcb, items, serial=serial).code == "0000"
    assert pay(bcb, items, serial=serial).code == "1102"
    assert balance(url, WANG_FANG_BCB) == wang + 1_200


def test_a_batch_whose_signature_fails_is_1106(bcb: BcbPartner) -> None:
    serial = req_sn()
    signed = wire.sign(batch_document(bcb, serial, [item(WANG_FANG_BCB, "王芳", "BCB", 1_000)]), bcb.key)
    assert bcb.post(signed.replace(b"<AMOUNT>1000<", b"<AMOUNT>9000<").replace(
        b"<TOTAL_SUM>1000<", b"<TOTAL_SUM>9000<")).code == "1106"
    assert detail_code(bcb.query(serial)) == "1002"


def test_a_batch_beyond_the_reserve_is_1000_and_moves_nothing(bcb: BcbPartner, urls: dict[str, str]) -> None:
    url = urls["BCB"]
    reserve = balance(url, BCB_RESERVE)
    serial, one = req_sn(), item(WANG_FANG_BCB, "王芳", "BCB", reserve + 100)
    answer = pay(bcb, [one], serial=serial)
    assert answer.code == "1000"
    assert item_codes(answer) == {one["SN"]: "1000"}
    assert query_codes(bcb, serial) == {one["SN"]: "1000"}
    assert balance(url, BCB_RESERVE) == reserve


def test_magic_94_is_2000_until_the_third_query_then_the_money_moves(bcb: BcbPartner, urls: dict[str, str]) -> None:
    url = urls["BCB"]
    wang = balance(url, WANG_FANG_BCB)
    serial, one = req_sn(), item(WANG_FANG_BCB, "王芳", "BCB", 1_094)
    assert item_codes(pay(bcb, [one], serial=serial)) == {one["SN"]: "2000"}
    assert [query_codes(bcb, serial) for _ in range(2)] == [{one["SN"]: "2000"}] * 2
    assert balance(url, WANG_FANG_BCB) == wang
    assert query_codes(bcb, serial) == {one["SN"]: "0000"}
    assert balance(url, WANG_FANG_BCB) == wang + 1_094


def test_magic_96_loses_the_answer_of_a_processed_batch_and_97_of_one_never_processed(
    bcb: BcbPartner, urls: dict[str, str]
) -> None:
    url = urls["BCB"]
    wang = balance(url, WANG_FANG_BCB)
    processed, unprocessed = req_sn(), req_sn()
    kept = item(WANG_FANG_BCB, "王芳", "BCB", 1_000)
    for serial, items in ((processed, [kept, item(WANG_FANG_BCB, "王芳", "BCB", 1_096)]),
                          (unprocessed, [item(WANG_FANG_BCB, "王芳", "BCB", 1_097)])):
        raw = wire.sign(batch_document(bcb, serial, items), bcb.key)
        response = bcb.http.post("/aipg/ProcessServlet", content=raw, headers={"Content-Type": "text/xml; charset=GBK"})
        assert response.status_code == 504
        assert response.content == b""
    assert set(query_codes(bcb, processed).values()) == {"0000"}
    assert kept["SN"] in query_codes(bcb, processed)
    assert detail_code(bcb.query(unprocessed)) == "1002"
    assert balance(url, WANG_FANG_BCB) == wang + 1_000 + 1_096


def signed_ack(bcb: BcbPartner) -> bytes:
    info = {"TRX_CODE": "300001", "VERSION": wire.VERSION, "DATA_TYPE": wire.DATA_TYPE, "LEVEL": wire.LEVEL,
            "USER_NAME": bcb.user_name, "REQ_SN": "", "RET_CODE": "0000", "ERR_MSG": "处理成功"}
    return wire.sign(wire.build(info, ET.Element("BODY")), bcb.key)


def test_a_cross_bank_item_naming_someone_else_bounces_with_its_money_back_and_a_signed_notice(
    bcb: BcbPartner, urls: dict[str, str], endpoint: NotifyEndpoint
) -> None:
    bcb_url, hbb_url = urls["BCB"], urls["HBB"]
    reserve, card = balance(bcb_url, BCB_RESERVE), balance(hbb_url, WANG_FANG_HBB)
    serial, one = req_sn(), item(WANG_FANG_HBB, "张伟", "HBB", 30_000)
    seen: set[str] = set()

    def answer(post: Post) -> tuple[int, bytes, str]:
        # The first delivery is answered in a way BCB does not take as an acknowledgement: it retries.
        if post.path not in seen:
            seen.add(post.path)
            return 200, b"ok", "text/plain"
        return 200, signed_ack(bcb), "text/xml; charset=GBK"

    endpoint.answer = answer
    result = pay(bcb, [one], serial=serial, notify_url=f"{endpoint.url}/bounce/{one['SN']}")
    assert item_codes(result) == {one["SN"]: "0000"}
    assert query_codes(bcb, serial) == {one["SN"]: "0000"}
    # The receiving bank returned it: the payee never had it, the reserve has it back.
    assert balance(hbb_url, WANG_FANG_HBB) == card
    assert balance(bcb_url, BCB_RESERVE) == reserve

    posts = endpoint.wait_for(lambda p: p.path.endswith(one["SN"]), count=2)
    root, document = wire.parse(posts[0].body)
    assert wire.verify(root, bcb.bcb_key)
    assert posts[0].content_type.startswith("text/xml")
    assert document.info["TRX_CODE"] == "300001"
    assert wire.text(document.body, "RETURNTRANS/QUERY_SN") == serial
    assert wire.text(document.body, "RETURNTRANS/SN") == one["SN"]
    assert wire.text(document.body, "RETURNTRANS/AMOUNT") == "30000"
    assert wire.text(document.body, "RETURNTRANS/RETURN_CODE") == "3028"
    assert WANG_FANG_HBB not in posts[0].body.decode("gbk")
    assert settled_notifications(bcb_url, f"bcb-bounce:{serial}:{one['SN']}", 1) == [("delivered", 2)]


def test_magic_98_never_sends_the_bounce_notice_and_99_sends_it_twice(
    bcb: BcbPartner, urls: dict[str, str], endpoint: NotifyEndpoint
) -> None:
    endpoint.answer = lambda post: (200, signed_ack(bcb), "text/xml; charset=GBK")
    silent, twice = item(WANG_FANG_HBB, "张伟", "HBB", 1_098), item(WANG_FANG_HBB, "张伟", "HBB", 1_099)
    serial = req_sn()
    assert set(item_codes(pay(bcb, [silent, twice], serial=serial, notify_url=f"{endpoint.url}/n")).values()) == {
        "0000"
    }
    endpoint.wait_for(lambda p: twice["SN"].encode() in p.body, count=2)
    assert settled_notifications(urls["BCB"], f"bcb-bounce:{serial}:{twice['SN']}", 2) == [("delivered", 1)] * 2
    assert settled_notifications(urls["BCB"], f"bcb-bounce:{serial}:{silent['SN']}", 1) == [("suppressed", 0)]
    assert not [p for p in endpoint.posts if silent["SN"].encode() in p.body]


def statement(bcb: BcbPartner, day: date) -> Answer:
    return bcb.call("200005", "STMTREQ", {"SETTLE_DATE": f"{day:%Y%m%d}"})


def file_of(answer: Answer) -> bytes:
    assert answer.code == "0000", answer.info
    return base64.b64decode(wire.text(answer.body, "STMTRSP/FILE_CONTENT"))


def rows_of(content: bytes) -> tuple[list[dict[str, str]], list[str]]:
    lines = content.decode("gbk").splitlines()
    body = [line for line in lines if not line.startswith("#")]
    reader = csv.reader(body)
    assert next(reader) == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in reader], [line for line in lines if line.startswith("#")]


def fen(yuan: str) -> int:
    whole, _, cents = yuan.lstrip("-").partition(".")
    return (-1 if yuan.startswith("-") else 1) * (int(whole) * 100 + int(cents))


def test_the_statement_is_not_ready_before_its_date_is_over(bcb: BcbPartner, urls: dict[str, str]) -> None:
    assert statement(bcb, business_date(urls["BCB"])).code == "1003"


def test_the_statement_equals_the_books_charges_fees_once_and_carries_93_on_the_next_day(
    bcb: BcbPartner, urls: dict[str, str]
) -> None:
    url = urls["BCB"]
    day = business_date(url)
    mandate_no = bcb.sign_mandate()
    debit_sn = f"att_{uuid.uuid4().hex[:20]}"
    assert bcb.debit(mandate_no, 12_345, req_sn=debit_sn).code == "0000"
    late = item(WANG_FANG_BCB, "王芳", "BCB", 1_093)
    assert item_codes(pay(bcb, [late])) == {late["SN"]: "0000"}

    advance_days(url)
    income = balance(url, BCB_INCOME)
    rows, comments = rows_of(file_of(statement(bcb, day)))
    assert {row["流水号"] for row in rows} == reserve_items_on(url, day)
    assert late["SN"] not in {row["商户请求号"] for row in rows}
    assert sum(fen(r["金额(元)"]) - fen(r["手续费(元)"]) for r in rows) == reserve_moved_on(url, day)
    by_request = {row["商户请求号"]: row for row in rows}
    debit = by_request[debit_sn]
    assert (debit["业务类型"], debit["金额(元)"], debit["手续费(元)"]) == ("代收", "123.45", "0.19")
    assert debit["账号"] == "623099*********0017"
    kinds = {row["业务类型"] for row in rows}
    assert kinds == {"代收", "代付", "退票"}
    assert all(row["手续费(元)"] == "0.50" for row in rows if row["业务类型"] == "代付")
    assert all(row["手续费(元)"] == "0.00" and fen(row["金额(元)"]) > 0 for row in rows if row["业务类型"] == "退票")
    fees = sum(fen(row["手续费(元)"]) for row in rows)
    assert balance(url, BCB_INCOME) == income + fees
    assert f"#总笔数：[{len(rows)}]" in comments
    assert f"#总手续费(元)：[{fees // 100}.{fees % 100:02d}]" in comments

    again = file_of(statement(bcb, day))
    assert again == file_of(statement(bcb, day))
    assert balance(url, BCB_INCOME) == income + fees

    assert statement(bcb, business_date(url)).code == "1003"
    advance_days(url)
    next_rows, _ = rows_of(file_of(statement(bcb, day.fromordinal(day.toordinal() + 1))))
    late_row = next(row for row in next_rows if row["商户请求号"] == late["SN"])
    assert (late_row["业务类型"], late_row["金额(元)"], late_row["手续费(元)"]) == ("代付", "-10.93", "0.50")

