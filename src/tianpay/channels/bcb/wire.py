"""BCB's messages as BCB names them (BANKS.md "BCB"; the mandate TRX codes are docs/banks/bcb.md's
extension): building request documents and reading answers. No I/O here."""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass


class TrxCode(enum.StrEnum):
    PAYOUT = "100001"  # next issue
    DEBIT = "100002"
    MANDATE_APPLY = "100010"
    MANDATE_CONFIRM = "100011"
    MANDATE_REVOKE = "100012"
    QUERY = "200004"
    STATEMENT = "200005"  # next issue


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
