"""One signed AIPG call to BCB for the payout and statement adapters: sign, POST, verify, read.

Anything that is not a readable answer signed by BCB (a timeout, a 5xx, a 504 from a lost answer, a
bad signature) comes back as None: it proves nothing either way, and the caller decides what that
means (UNKNOWN for a payout, StatementUnavailable for a statement). Bodies are never logged.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import structlog

from tianpay.channels.bcb import signing, wire
from tianpay.channels.bcb.onboarding import BcbConfig

log = structlog.stdlib.get_logger(__name__)

PATH = "/aipg/ProcessServlet"
CONTENT_TYPE = "text/xml; charset=GBK"


class AipgClient:
    def __init__(self, config: BcbConfig, http: httpx.Client | None = None) -> None:
        self.config = config
        self._key = config.private_key
        self._bank_key = config.bank_public_key
        self._owned = http is None
        self._http = http or httpx.Client(timeout=config.timeout_s)

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def sign(self, root: ET.Element) -> bytes:
        return signing.sign(root, self._key)

    def verified(self, raw: bytes) -> ET.Element | None:
        """The document if it is readable AIPG signed by BCB's key, else None."""
        try:
            root = wire.parse(raw)
        except (wire.WireError, ValueError):
            return None
        return root if signing.verify(root, self._bank_key) else None

    def call(self, trx: wire.TrxCode, req_sn: str, body: ET.Element) -> wire.Answer | None:
        document = self.sign(wire.document(trx, self.config.user_name, req_sn, body))
        try:
            response = self._http.post(self.config.base_url + PATH, content=document,
                                       headers={"Content-Type": CONTENT_TYPE})
        except httpx.HTTPError as exc:
            log.info("bcb call", trx_code=trx.value, req_sn=req_sn, result="no answer", error=type(exc).__name__)
            return None
        if response.status_code != 200:
            log.info("bcb call", trx_code=trx.value, req_sn=req_sn, result=f"http {response.status_code}")
            return None
        root = self.verified(response.content)
        if root is None:
            # An answer we cannot attribute to BCB proves nothing either way.
            log.warning("bcb call", trx_code=trx.value, req_sn=req_sn, result="unreadable or bad signature")
            return None
        answer = wire.answer_of(root)
        log.info("bcb call", trx_code=trx.value, req_sn=req_sn, ret_code=answer.ret_code)
        return answer
