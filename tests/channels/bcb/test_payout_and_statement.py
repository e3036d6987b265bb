"""The BCB payout and statement adapters against the running BCB simulator over loopback HTTP.

A private world (tests/banksim/bcb/kit.py) because the statement tests move BCB's clock by days. The
adapters are built from what onboarding left on disk, as the registry builds them; a tampered answer
is produced by a relay that changes BCB's bytes in flight, not by a fake bank.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.banksim.bcb.kit import (
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
)
from tianpay.channels.bcb import BcbConfig, BcbDirectDebitChannel, onboard_bcb, signing, wire
from tianpay.channels.bcb.payout import BcbPayoutChannel, req_sn_of, sn_of
from tianpay.channels.bcb.statement import BcbStatementChannel
from tianpay.channels.registry import load_channels
from tianpay.domain.money import Money
from tianpay.ports.channels import (
    CardHolder,
    ChannelResult,
    DebitOrder,
    InvalidNotification,
    MandateApplication,
    Outcome,
)
from tianpay.ports.payouts import KIND_PAYOUT_RETURNED, PayoutBatch, PayoutOrder
from tianpay.ports.statements import (
    StatementItemKind,
    StatementNotReady,
    StatementUnavailable,
)

pytestmark = pytest.mark.e2e
CLIENT_TIMEOUT_S = 1.0


def payout(account_no: str, name: str, bank: str, amount: int) -> PayoutOrder:
    return PayoutOrder(payout_id=f"pyo_{uuid.uuid4().hex[:26].upper()}", amount=Money.cny(amount),
                       account_no=account_no, account_name=name, account_bank=bank, purpose="结算款",
                       created_at=datetime.now(UTC))


def batch(*orders: PayoutOrder, notify_url: str = "") -> PayoutBatch:
    return PayoutBatch(batch_id=f"pob_{uuid.uuid4().hex[:26].upper()}", orders=orders,
                       created_at=datetime.now(UTC), notify_url=notify_url)


def outcomes(results: dict[str, ChannelResult] | object, orders: PayoutBatch) -> list[Outcome]:
    assert isinstance(results, dict)
    return [results[order.payout_id].outcome for order in orders.orders]


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with bank_world(tmp_path_factory.mktemp("bcb-adapter-world")) as found:
        yield found


@pytest.fixture(scope="module")
def config(urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> BcbConfig:
    return onboard_bcb(tmp_path_factory.mktemp("platform-bcb"), urls["BCB"], timeout_s=CLIENT_TIMEOUT_S)


@pytest.fixture(scope="module")
def payouts(config: BcbConfig) -> Iterator[BcbPayoutChannel]:
    channel = BcbPayoutChannel(config)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def statements(config: BcbConfig) -> Iterator[BcbStatementChannel]:
    channel = BcbStatementChannel(config)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def endpoint(payouts: BcbPayoutChannel) -> Iterator[NotifyEndpoint]:
    """The platform's notify URL: the adapter reads each notice and answers with its own ack."""
    with notify_endpoint() as found:
        def answer(post: Post) -> tuple[int, bytes, str]:
            try:
                payouts.parse_notification(post.body, post.content_type)
            except InvalidNotification:
                ack = payouts.notification_ack(False)
            else:
                ack = payouts.notification_ack(True)
            return ack.status_code, ack.body, ack.content_type

        found.answer = answer
        yield found


def test_the_registry_offers_bcb_statements_and_payouts_once_onboarded(
    urls: dict[str, str], tmp_path: Path
) -> None:
    onboard_bcb(tmp_path, urls["BCB"])
    registry = load_channels(tmp_path)
    try:
        assert registry.payout_banks() == ["BCB"]
        assert "BCB" in registry.statement_banks()
    finally:
        registry.close()


def test_bcb_numbers_are_the_platforms_own_ids() -> None:
    assert req_sn_of("pob_01JDZ8Q6W1V3K3S3N4T9XG2F7H") == "pob_01JDZ8Q6W1V3K3S3N4T9XG2F7H"
    assert sn_of("pyo_01JDZ8Q6W1V3K3S3N4T9XG2F7H") == "pyo_01JDZ8Q6W1V3K3S3N4T9XG2F7H"
    with pytest.raises(ValueError, match="1 to 40 characters"):
        sn_of("x" * 41)


def test_a_batch_pays_bcb_and_hbb_accounts_and_maps_each_items_code(
    payouts: BcbPayoutChannel, urls: dict[str, str]
) -> None:
    hbb_card = balance(urls["HBB"], WANG_FANG_HBB)
    sent = batch(
        payout(WANG_FANG_BCB, "王芳", "BCB", 10_000),
        payout(WANG_FANG_HBB, "王芳", "HBB", 20_000),
        payout(CHEN_JING_BCB, "王芳", "BCB", 10_000),
        payout(WANG_FANG_BCB, "王芳", "BCB", 10_091),
    )
    results = payouts.submit_payouts(sent)
    assert outcomes(results, sent) == [Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED, Outcome.NOT_SUBMITTED]
    first = results[sent.orders[0].payout_id]
    assert (first.amount, first.bank_code) == (Money.cny(10_000), "0000")
    assert results[sent.orders[2].payout_id].bank_code == "3028"
    assert balance(urls["HBB"], WANG_FANG_HBB) == hbb_card + 20_000
    # A query finds the same; a refusal it finds is final, so 3999 reads as FAILED there.
    assert outcomes(payouts.query_payouts(sent), sent) == [
        Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED, Outcome.FAILED
    ]


def test_a_batch_beyond_the_reserve_fails_every_item(payouts: BcbPayoutChannel, urls: dict[str, str]) -> None:
    sent = batch(payout(WANG_FANG_BCB, "王芳", "BCB", balance(urls["BCB"], BCB_RESERVE) + 100))
    results = payouts.submit_payouts(sent)
    assert outcomes(results, sent) == [Outcome.FAILED]
    assert results[sent.orders[0].payout_id].bank_code == "1000"


def test_an_intermediate_item_is_unknown_until_a_query_finds_it_succeeded(payouts: BcbPayoutChannel) -> None:
    sent = batch(payout(WANG_FANG_BCB, "王芳", "BCB", 1_094))
    assert outcomes(payouts.submit_payouts(sent), sent) == [Outcome.UNKNOWN]
    assert [outcomes(payouts.query_payouts(sent), sent) for _ in range(3)] == [
        [Outcome.UNKNOWN], [Outcome.UNKNOWN], [Outcome.SUCCEEDED]
    ]


def test_a_lost_answer_is_unknown_and_only_30_minutes_of_absence_mean_not_submitted(
    payouts: BcbPayoutChannel, urls: dict[str, str]
) -> None:
    wang = balance(urls["BCB"], WANG_FANG_BCB)
    processed = batch(payout(WANG_FANG_BCB, "王芳", "BCB", 1_096))
    assert outcomes(payouts.submit_payouts(processed), processed) == [Outcome.UNKNOWN]
    assert outcomes(payouts.query_payouts(processed), processed) == [Outcome.SUCCEEDED]
    assert balance(urls["BCB"], WANG_FANG_BCB) == wang + 1_096

    never = batch(payout(WANG_FANG_BCB, "王芳", "BCB", 1_097))
    assert outcomes(payouts.submit_payouts(never), never) == [Outcome.UNKNOWN]
    assert outcomes(payouts.query_payouts(never), never) == [Outcome.UNKNOWN]
    long_ago = replace(never, created_at=datetime.now(UTC) - timedelta(minutes=31))
    assert outcomes(payouts.query_payouts(long_ago), long_ago) == [Outcome.NOT_SUBMITTED]
    assert balance(urls["BCB"], WANG_FANG_BCB) == wang + 1_096


def test_a_bounce_is_read_as_payout_returned_and_acknowledged_once(
    payouts: BcbPayoutChannel, endpoint: NotifyEndpoint, urls: dict[str, str]
) -> None:
    reserve = balance(urls["BCB"], BCB_RESERVE)
    order = payout(WANG_FANG_HBB, "张伟", "HBB", 30_000)
    sent = batch(order, notify_url=f"{endpoint.url}/channels/BCB/notify")
    assert outcomes(payouts.submit_payouts(sent), sent) == [Outcome.SUCCEEDED]
    post = endpoint.wait_for(lambda p: order.payout_id.encode() in p.body)[0]
    notice = payouts.parse_notification(post.body, post.content_type)
    assert notice.kind == KIND_PAYOUT_RETURNED
    assert notice.platform_reference == order.payout_id
    assert notice.result.outcome is Outcome.SUCCEEDED
    assert (notice.result.amount, notice.result.bank_code) == (Money.cny(30_000), "3028")
    assert notice.result.bank_reference
    assert balance(urls["BCB"], BCB_RESERVE) == reserve
    # The adapter's signed acknowledgement is taken at the first attempt.
    assert settled_notifications(urls["BCB"], f"bcb-bounce:{sent.batch_id}:{order.payout_id}", 1) == [
        ("delivered", 1)
    ]

    tampered = post.body.replace(b"<AMOUNT>30000<", b"<AMOUNT>90000<")
    with pytest.raises(InvalidNotification):
        payouts.parse_notification(tampered, post.content_type)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidNotification):
        payouts.parse_notification(signing.sign(wire.parse(post.body), stranger), post.content_type)


def test_a_statement_for_a_date_not_over_is_not_ready(statements: BcbStatementChannel, urls: dict[str, str],
                                                      tmp_path: Path) -> None:
    with pytest.raises(StatementNotReady):
        statements.download_statement(business_date(urls["BCB"]), tmp_path / "bcb.csv")


class Tampering(httpx.BaseTransport):
    """A relay between adapter and bank that changes one base64 character of the statement in flight."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        content = response.read()
        marker = b"<FILE_CONTENT>"
        at = content.find(marker) + len(marker) + 8
        changed = content[:at] + (b"A" if content[at:at + 1] != b"A" else b"B") + content[at + 1:]
        return httpx.Response(response.status_code, headers=response.headers, content=changed)

    def close(self) -> None:
        self._inner.close()


def sign_mandate_and_debit(config: BcbConfig, urls: dict[str, str], amount: int) -> str:
    channel = BcbDirectDebitChannel(config)
    try:
        holder = CardHolder(WANG_FANG_BCB, "王芳", "12010119900725002X", "13800138002")
        applied = channel.apply_mandate(MandateApplication(
            "mdt_1", "mem_1", holder, Money.cny(100_000), Money.cny(500_000), date.today() + timedelta(days=365),
            "utility:electricity",
        ))
        assert applied.outcome is Outcome.SUCCEEDED
        assert applied.bank_ref
        code = httpx.get(urls["BCB"] + "/_sim/sms", params={"phone": holder.phone}).json()[0]["code"]
        confirmed = channel.confirm_mandate(applied.bank_ref, str(code))
        assert confirmed.outcome is Outcome.SUCCEEDED
        assert confirmed.bank_ref
        attempt_id = f"att_{uuid.uuid4().hex[:26].upper()}"
        debited = channel.debit(DebitOrder(attempt_id, Money.cny(amount), "电费", datetime.now(UTC), "",
                                           confirmed.bank_ref))
        assert debited.outcome is Outcome.SUCCEEDED
        return attempt_id
    finally:
        channel.close()


def test_the_statement_downloads_unchanged_and_reads_as_the_books(
    statements: BcbStatementChannel, payouts: BcbPayoutChannel, config: BcbConfig, urls: dict[str, str],
    tmp_path: Path
) -> None:
    url = urls["BCB"]
    day = business_date(url)
    attempt_id = sign_mandate_and_debit(config, urls, 20_000)
    paid = batch(payout(WANG_FANG_BCB, "王芳", "BCB", 5_000), payout(WANG_FANG_HBB, "王芳", "HBB", 6_000))
    assert outcomes(payouts.submit_payouts(paid), paid) == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]
    advance_days(url)

    downloaded = statements.download_statement(day, tmp_path / "BCB" / f"{day}.csv")
    raw = downloaded.path.read_bytes()
    assert raw.startswith("#滨海商业银行".encode("gbk"))
    assert statements.download_statement(day, tmp_path / "again.csv").path.read_bytes() == raw
    assert downloaded.file_name.endswith(f"{day:%Y%m%d}.csv")

    lines = list(statements.read_statement(downloaded.path, day))
    assert {line.bank_ref for line in lines} == reserve_items_on(url, day)
    assert sum(line.net_minor for line in lines) == reserve_moved_on(url, day)
    by_ref = {line.platform_ref: line for line in lines}
    debit = by_ref[attempt_id]
    assert (debit.kind, debit.amount_minor, debit.fee_minor) == (StatementItemKind.COLLECTION, 20_000, 30)
    for order in paid.orders:
        line = by_ref[order.payout_id]
        assert (line.kind, line.amount_minor, line.fee_minor) == (StatementItemKind.PAYOUT, -order.amount.minor, 50)
    returns = [line for line in lines if line.kind is StatementItemKind.PAYOUT_RETURN]
    assert returns
    assert all(line.amount_minor > 0 and line.fee_minor == 0 for line in returns)
    assert all(line.occurred_at is not None and line.statement_date == day for line in lines)

    with httpx.Client(transport=Tampering(), timeout=CLIENT_TIMEOUT_S) as relay:
        tampered = BcbStatementChannel(config, http=relay)
        with pytest.raises(StatementUnavailable):
            tampered.download_statement(day, tmp_path / "tampered.csv")
    assert not (tmp_path / "tampered.csv").exists()

