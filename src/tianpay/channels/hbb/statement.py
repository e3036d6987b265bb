"""HBB's daily statement behind the platform's StatementChannel: download (txnType 76) and read.

The request is signed and the answer verified exactly as every HBB exchange is (certificate chain
to HBB's root CA, CN, signature). ``fileContent`` is base64 of zlib-compressed text; it is decoded
and decompressed in chunks straight into the target file, and the file is read back line by line
(``statement_file``), so neither the text nor its lines ever sit in memory whole.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import httpx
import structlog

from tianpay.channels.hbb import signing, wire
from tianpay.channels.hbb.config import HbbConfig
from tianpay.channels.hbb.mapping import beijing_stamp
from tianpay.channels.hbb.signing import HbbVerifier, SignatureRejected, Signer
from tianpay.channels.hbb.statement_file import parse_lines
from tianpay.channels.hbb.wire import WireError
from tianpay.ports.statements import (
    DownloadedStatement,
    StatementLine,
    StatementMalformed,
    StatementNotReady,
    StatementUnavailable,
)

log = structlog.stdlib.get_logger(__name__)

CODE: Final = "HBB"
FILE_TRANSFER_PATH: Final = "/gateway/api/fileTransfer.do"
# HBB's answer for a statement date that is not over yet in its clock (docs/banks/hbb.md).
NOT_READY_CODE: Final = "98"
# base64 characters decoded per step: a multiple of 4, so every chunk decodes on its own.
_B64_CHUNK: Final = 1 << 18
_FILE_NAME: Final = re.compile(r"[0-9A-Za-z_.\-]{1,100}")


class HbbStatementChannel:
    """HBB's statement (对账单) interface: ``download_statement`` and ``read_statement``."""

    def __init__(
        self,
        *,
        base_url: str,
        mer_id: str,
        signer: Signer,
        verifier: HbbVerifier,
        http: httpx.Client,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.code = CODE
        self._base_url = base_url.rstrip("/")
        self._mer_id = mer_id
        self._signer = signer
        self._verifier = verifier
        self._http = http
        self._now = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self._http.close()

    def download_statement(self, statement_date: date, into: Path) -> DownloadedStatement:
        settle_date = f"{statement_date:%m%d}"
        fields = self._signer.signed(
            {
                "version": wire.VERSION,
                "encoding": wire.ENCODING,
                "signMethod": wire.SIGN_METHOD_RSA,
                "txnType": wire.TxnType.STATEMENT.value,
                "txnSubType": "01",
                "bizType": wire.BizType.GENERIC.value,
                "accessType": wire.ACCESS_TYPE_MERCHANT,
                "merId": self._mer_id,
                "txnTime": beijing_stamp(self._now()),
                "settleDate": settle_date,
                "fileType": "00",
            }
        )
        answer = self._exchange(fields)
        code = answer.get("respCode", "")
        if code == NOT_READY_CODE:
            raise StatementNotReady(f"HBB has not closed {statement_date.isoformat()} yet")
        if code != wire.RespCode.SUCCESS:
            log.warning("hbb.statement_refused", settle_date=settle_date, resp_code=code)
            raise StatementUnavailable(f"HBB refused the statement: {code} {answer.get('respMsg', '')}".strip())
        if answer.get("merId") != self._mer_id or answer.get("settleDate") != settle_date:
            raise StatementUnavailable("HBB's answer is about another merchant or date")
        file_name = answer.get("fileName", "")
        if not _FILE_NAME.fullmatch(file_name):
            raise StatementUnavailable("HBB's answer names no usable file")
        _inflate_to(answer.get("fileContent", ""), into)
        log.info("hbb.statement_downloaded", settle_date=settle_date, bytes=into.stat().st_size)
        return DownloadedStatement(bank=CODE, statement_date=statement_date, path=into, file_name=file_name)

    def read_statement(self, path: Path, statement_date: date) -> Iterator[StatementLine]:
        try:
            with path.open("r", encoding="ascii", newline="\n") as handle:
                yield from parse_lines(handle, statement_date)
        except UnicodeDecodeError:
            raise StatementMalformed("the statement is not ASCII text") from None

    def _exchange(self, fields: dict[str, str]) -> dict[str, str]:
        """One signed POST to fileTransfer.do; HBB's verified answer, or StatementUnavailable."""
        try:
            response = self._http.post(
                self._base_url + FILE_TRANSFER_PATH,
                content=wire.encode_form(fields),
                headers={"Content-Type": f"{wire.FORM_CONTENT_TYPE}; charset=UTF-8"},
            )
        except httpx.HTTPError as error:
            log.warning("hbb.statement_transport_error", error=type(error).__name__)
            raise StatementUnavailable("the exchange with HBB failed") from None
        if response.status_code != 200:
            log.warning("hbb.statement_http_status", status=response.status_code)
            raise StatementUnavailable(f"HBB answered HTTP {response.status_code}")
        try:
            answer = wire.decode_answer(response.content.decode("utf-8"))
            self._verifier.verify(answer)
        except (UnicodeDecodeError, WireError, SignatureRejected) as error:
            log.warning("hbb.statement_answer_rejected", reason=str(error))
            raise StatementUnavailable("HBB's answer could not be trusted") from None
        return answer


def _inflate_to(content: str, into: Path) -> None:
    """Decode base64 and inflate zlib chunk by chunk into ``into`` (via a part file, then renamed)."""
    if not content:
        raise StatementUnavailable("HBB's answer carries no file content")
    into.parent.mkdir(parents=True, exist_ok=True)
    part = into.with_name(into.name + ".part")
    inflater = zlib.decompressobj()
    try:
        with part.open("wb") as out:
            for start in range(0, len(content), _B64_CHUNK):
                compressed = base64.b64decode(content[start : start + _B64_CHUNK], validate=True)
                out.write(inflater.decompress(compressed))
            out.write(inflater.flush())
        if not inflater.eof:
            raise StatementUnavailable("HBB's file content is truncated")
    except (binascii.Error, zlib.error):
        part.unlink(missing_ok=True)
        raise StatementUnavailable("HBB's file content is not base64 of zlib data") from None
    except StatementUnavailable:
        part.unlink(missing_ok=True)
        raise
    part.replace(into)


def build_hbb_statement_channel(
    config: HbbConfig,
    *,
    http_client: httpx.Client | None = None,
    clock: Callable[[], datetime] | None = None,
) -> HbbStatementChannel:
    """Builds HBB's statement channel from onboarding material (like build_hbb_channel).

    The default timeout is longer than the payment calls': a day's file is one large answer.
    """
    key = signing.load_private_key(config.signing_key_pem)
    root = signing.load_certificate(config.hbb_root_ca_pem)
    http = http_client or httpx.Client(timeout=httpx.Timeout(max(config.timeout_s, 60.0)))
    return HbbStatementChannel(
        base_url=config.gateway_url,
        mer_id=config.mer_id,
        signer=Signer(key, config.resolved_cert_id),
        verifier=HbbVerifier([root], clock=clock),
        http=http,
        clock=clock,
    )
