"""The worker runs the ``pos_reversals`` job exactly where TCS was onboarded."""

from __future__ import annotations

from pathlib import Path

from tests.pos.conftest import CardWorld
from tianpay.bootstrap import build_container
from tianpay.channels.tcs.onboarding import onboard_tcs
from tianpay.config import Settings
from tianpay.entrypoints.worker import build_worker


def _job_names(data_dir: Path) -> list[str]:
    container = build_container(Settings(data_dir=data_dir))
    container.upgrade_database()
    worker = build_worker(container, worker_id="test")
    try:
        names = [job.name for job in worker.jobs]
        if "pos_reversals" in names:
            # Nothing is owed on a fresh database: one tick sends nothing.
            assert worker.run_once()["pos_reversals"] == 0
        return names
    finally:
        worker.close()
        container.close()


def test_the_reversal_job_is_registered_once_tcs_is_onboarded(card_world: CardWorld, tmp_path: Path) -> None:
    assert "pos_reversals" not in _job_names(tmp_path / "plain")
    onboard_tcs(tmp_path / "pos", card_world.admin_url)
    assert "pos_reversals" in _job_names(tmp_path / "pos")
