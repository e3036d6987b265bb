"""TCS's clearing file through the platform's StatementChannel, against a live switch on loopback.

Purchases and a void are real ISO 8583 exchanges with TCS; the platform is onboarded over TCS's admin
address, which is where the channel registry then finds the clearing file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from banksim.core.bank import SimConfig
from banksim.world import World
from tests.banksim.live_world import Live, live_world, pos_reversal
from tianpay.channels.registry import load_channels
from tianpay.channels.tcs.onboarding import onboard_tcs
from tianpay.ports.statements import StatementItemKind, StatementMalformed, StatementNotReady

ZHANG_WEI_HBB = "6217990000000000014"
ZHANG_WEI_JHB = "6227990000000000013"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tcs-template")
    World(SimConfig(data_dir=directory)).close()
    return directory


@pytest.fixture
def live(template: Path, tmp_path: Path) -> Iterator[Live]:
    yield from live_world(template, tmp_path / "world")


def test_the_clearing_file_reads_as_purchases_and_voids_keyed_by_rrn(live: Live, tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    onboard_tcs(data_dir, live.tcs_admin_url)
    registry = load_channels(data_dir)
    statements = registry.statements("TCS")
    tcs = live.tcs
    client = tcs.client()
    sale = client.send(tcs.purchase(ZHANG_WEI_JHB, 5_000))
    assert sale is not None
    void = client.send({**tcs.purchase(ZHANG_WEI_JHB, 5_000), "3": "200000", "37": sale["37"], "60": "23000001"})
    kept = client.send(tcs.purchase(ZHANG_WEI_HBB, 1_200))
    undone_request = tcs.purchase(ZHANG_WEI_HBB, 700)
    client.send(undone_request)
    client.send(pos_reversal(tcs, undone_request))
    client.close()
    assert void is not None
    assert kept is not None
    day = live.world.clock.business_date()
    with pytest.raises(StatementNotReady):
        statements.download_statement(day, tmp_path / "early.txt")

    live.end_day()
    downloaded = statements.download_statement(day, tmp_path / "tcs" / f"{day}.txt")
    lines = list(statements.read_statement(downloaded.path, day))

    summary = [(line.kind, line.amount_minor, line.switch_ref, line.original_ref) for line in lines]
    assert summary == [
        (StatementItemKind.COLLECTION, 5_000, sale["37"], None),
        (StatementItemKind.REFUND, -5_000, void["37"], sale["37"]),
        (StatementItemKind.COLLECTION, 1_200, kept["37"], None),
    ]
    assert all(line.bank == "TCS" and line.fee_minor == 0 for line in lines)
    registry.close()


def test_a_clearing_file_whose_total_does_not_add_up_is_malformed(live: Live, tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    onboard_tcs(data_dir, live.tcs_admin_url)
    registry = load_channels(data_dir)
    statements = registry.statements("TCS")
    client = live.tcs.client()
    assert client.send(live.tcs.purchase(ZHANG_WEI_HBB, 1_000)) is not None
    client.close()
    day = live.world.clock.business_date()
    live.end_day()
    path = statements.download_statement(day, tmp_path / "tcs.txt").path
    text = path.read_text()
    path.write_text(text.replace("TOTAL 000001 00000000001000", "TOTAL 000001 00000000001001"))
    with pytest.raises(StatementMalformed, match="TOTAL"):
        list(statements.read_statement(path, day))
    registry.close()
