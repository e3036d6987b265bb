"""The simulators' logs: redacted line by line, and written where the session's log scan reads them.

A simulator that logs an exception quoting a test customer's card, ID or phone number, a PIN or an SMS
code writes it masked; the world the banksim fixtures start logs into a file under the session's
temporary directory, which the log scan (tests/security/log_scan.py) reads at the end of the run.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from banksim.core import seed
from banksim.core.logs import configure_logging, redact
from banksim.core.server import Listener, _server
from tests.banksim.conftest import WORLD_LOG
from tests.security.log_scan import LogScanner, log_files_under

CUSTOMER = seed.TEST_CUSTOMERS[1]
CARD = CUSTOMER.cards[0].acc_no


@pytest.fixture
def banksim_log() -> Iterator[io.StringIO]:
    """The simulators' logging set up as `python -m banksim` does, into a buffer; the session's own
    root handlers are put back afterwards."""
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    for logger in loggers[1:]:
        # As in a fresh `python -m banksim` process, where no other uvicorn server configured them.
        logger.handlers, logger.propagate = [], True
    stream = io.StringIO()
    configure_logging(verbose=True, stream=stream)
    yield stream
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


def test_an_exception_quoting_a_customer_is_logged_masked(banksim_log: io.StringIO) -> None:
    try:
        raise KeyError(
            f"no binding for accNo={CARD} certifId={CUSTOMER.id_number} phoneNo={CUSTOMER.phone} smsCode=482913"
        )
    except KeyError:
        logging.getLogger("banksim.hbb").exception("backTransReq.do failed, pin=%s", seed.LOGIN_PASSWORD)
    text = banksim_log.getvalue()
    scanner = LogScanner()
    scanner.scan_lines(text.splitlines(), "banksim")
    assert scanner.findings == []
    assert f"accNo={CARD[:6]}*********{CARD[-4:]}" in text
    assert "smsCode=***" in text
    assert "pin=***" in text


def test_uvicorn_lines_reach_the_redacting_handler(banksim_log: io.StringIO) -> None:
    # Each bank's server is configured like this: uvicorn installs no handlers of its own.
    server = _server(Listener("HBB", _no_app, 0), "127.0.0.1")
    assert server.config.log_config is None
    logging.getLogger("uvicorn.error").error("Exception in ASGI application: card %s", CARD)
    assert f"card {CARD[:6]}*********{CARD[-4:]}" in banksim_log.getvalue()


def test_timestamps_and_references_stay_readable() -> None:
    line = "txnTime=20261127093015 queryId=202611271234567890123 orderId=20261127P0001 txnAmt=10000"
    assert redact(line) == line


def test_the_worlds_log_is_a_file_the_session_scan_reads(
    bank_urls: dict[str, str], world_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert bank_urls["HBB"].startswith("http://127.0.0.1:")
    assert world_dir / WORLD_LOG in set(log_files_under(tmp_path_factory.getbasetemp()))


async def _no_app(scope: object, receive: object, send: object) -> None:
    return None
