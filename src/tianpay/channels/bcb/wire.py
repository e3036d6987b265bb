"""BCB's messages as BCB names them (BANKS.md "BCB"; the mandate TRX codes and ``TRANS_SUM/NOTIFY_URL``
are docs/banks/bcb.md's extensions): building request documents and reading answers. No I/O here."""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class TrxCode(enum.StrEnum):
    PAYOUT = "100001"
    DEBIT = "100002"
    MANDATE_APPLY = "100010"
    MANDATE_CONFIRM = "100011"
    MANDATE_REVOKE = "100012"
    QUERY = "200004"
    STATEMENT = "200005"
    BOUNCE = "300001"  # BCB's notice that a payout came back (退票)


class WireError(ValueError):
    """BCB's answer cannot be read or is not signed by BCB."""


@dataclass(frozen=True, slots=True)
class Answer:
    ret_code: str
    err_msg: str
    body: ET.Element


def request(trx_code: TrxCode, user_name: str, req_sn: str, section: str, fields: Mapping[str, str]) -> ET.Element:
    root = ET.Element("AIPG")
    info = ET.SubElement(root, "INFO")
    for name, value in (("TRX_CODE", trx_code.value), ("VERSION", "03"), ("DATA_TYPE", "2"), ("LEVEL", "5"),
                        ("USER_NAME", user_name), ("REQ_SN", req_sn), ("SIGNED_MSG", "")):
        ET.SubElement(info, name).text = value
    body = ET.SubElement(root, "BODY")
    part = ET.SubElement(body, section)
    for name, value in fields.items():
        ET.SubElement(part, name).text = value
    return root


def document(trx_code: TrxCode, user_name: str, req_sn: str, body: ET.Element, **extra_info: str) -> ET.Element:
    """A document around a BODY built by the caller (a batch has nested sections); ``extra_info`` adds
    INFO fields after REQ_SN (an acknowledgement's RET_CODE and ERR_MSG)."""
    root = ET.Element("AIPG")
    info = ET.SubElement(root, "INFO")
    for name, value in (("TRX_CODE", trx_code.value), ("VERSION", "03"), ("DATA_TYPE", "2"), ("LEVEL", "5"),
                        ("USER_NAME", user_name), ("REQ_SN", req_sn), *extra_info.items(), ("SIGNED_MSG", "")):
        ET.SubElement(info, name).text = value
    root.append(body)
    return root


def payout_body(summary: Mapping[str, str], details: Sequence[Mapping[str, str]]) -> ET.Element:
    """``100001``'s BODY: ``TRANS_SUM`` then ``TRANS_DETAILS`` with one ``TRANS_DETAIL`` per item."""
    body = ET.Element("BODY")
    part = ET.SubElement(body, "TRANS_SUM")
    for name, value in summary.items():
        ET.SubElement(part, name).text = value
    items = ET.SubElement(body, "TRANS_DETAILS")
    for detail in details:
        item = ET.SubElement(items, "TRANS_DETAIL")
        for name, value in detail.items():
            ET.SubElement(item, name).text = value
    return body


def section(name: str, fields: Mapping[str, str]) -> ET.Element:
    """A BODY holding one flat section (``QTRANSREQ``, ``STMTREQ`` …)."""
    body = ET.Element("BODY")
    part = ET.SubElement(body, name)
    for field_name, value in fields.items():
        ET.SubElement(part, field_name).text = value
    return body


def parse(raw: bytes) -> ET.Element:
    # AIPG documents carry no DTD; refusing one closes the entity-expansion attacks S314 warns of.
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise WireError("a DTD in an AIPG document")
    try:
        root = ET.fromstring(_gbk_text(raw))  # noqa: S314 (no DTD, see above)
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise WireError(f"not an AIPG document: {exc}") from exc
    if root.tag != "AIPG" or root.find("INFO") is None:
        raise WireError("not an AIPG document")
    return root


def answer_of(root: ET.Element) -> Answer:
    body = root.find("BODY")
    return Answer(text(root, "INFO/RET_CODE"), text(root, "INFO/ERR_MSG"),
                  body if body is not None else ET.Element("BODY"))


def text(parent: ET.Element, path: str) -> str:
    found = parent.find(path)
    return "" if found is None or found.text is None else found.text.strip()


def _gbk_text(raw: bytes) -> str:
    """Expat reads no multi-byte encodings: decode GBK here and drop the declaration naming it."""
    text = raw.decode("gbk")
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2:]
    return text
