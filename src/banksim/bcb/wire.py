"""BCB's AIPG documents (BANKS.md "BCB"): GBK XML, ``<AIPG><INFO/><BODY/></AIPG>``, signed in place.

``SIGNED_MSG`` is hex RSA-SHA256 (PKCS#1 v1.5) over the whole document serialised in GBK with an
empty ``SIGNED_MSG`` element. Both directions use the same rule; the answer is signed by BCB's key.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ENCODING = "GBK"
VERSION = "03"
DATA_TYPE = "2"
LEVEL = "5"
INFO_ORDER = ("TRX_CODE", "VERSION", "DATA_TYPE", "LEVEL", "USER_NAME", "REQ_SN", "RET_CODE", "ERR_MSG",
              "SIGNED_MSG")


class WireError(ValueError):
    """The document cannot be read (not GBK XML, no INFO, a missing field)."""


@dataclass(frozen=True, slots=True)
class Document:
    info: dict[str, str]
    body: ET.Element


def build(info: Mapping[str, str], body: ET.Element) -> ET.Element:
    root = ET.Element("AIPG")
    info_el = ET.SubElement(root, "INFO")
    for name in INFO_ORDER:
        if name in info or name == "SIGNED_MSG":
            ET.SubElement(info_el, name).text = info.get(name, "")
    root.append(body)
    return root


def serialise(root: ET.Element) -> bytes:
    document: bytes = ET.tostring(root, encoding=ENCODING, xml_declaration=False)
    return b'<?xml version="1.0" encoding="GBK"?>' + document


def _signed_bytes(root: ET.Element) -> bytes:
    signed = root.find("INFO/SIGNED_MSG")
    if signed is None:
        raise WireError("INFO/SIGNED_MSG is missing")
    kept = signed.text
    signed.text = ""
    try:
        return serialise(root)
    finally:
        signed.text = kept


def sign(root: ET.Element, key: rsa.RSAPrivateKey) -> bytes:
    signature = key.sign(_signed_bytes(root), padding.PKCS1v15(), hashes.SHA256())
    signed = root.find("INFO/SIGNED_MSG")
    assert signed is not None
    signed.text = signature.hex()
    return serialise(root)


def parse(raw: bytes) -> tuple[ET.Element, Document]:
    # AIPG documents carry no DTD; refusing one closes entity-expansion attacks.
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise WireError("a DTD in an AIPG document")
    try:
        root = ET.fromstring(_gbk_text(raw))
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise WireError(f"not an AIPG document: {exc}") from exc
    info_el, body = root.find("INFO"), root.find("BODY")
    if root.tag != "AIPG" or info_el is None:
        raise WireError("not an AIPG document")
    info = {child.tag: (child.text or "") for child in info_el}
    return root, Document(info, body if body is not None else ET.Element("BODY"))


def verify(root: ET.Element, key: rsa.RSAPublicKey) -> bool:
    signed = root.find("INFO/SIGNED_MSG")
    if signed is None or not signed.text:
        return False
    try:
        signature = bytes.fromhex(signed.text)
        key.verify(signature, _signed_bytes(root), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        return False
    return True


def text(parent: ET.Element, path: str) -> str:
    found = parent.find(path)
    return "" if found is None or found.text is None else found.text.strip()


def element(tag: str, fields: Mapping[str, str]) -> ET.Element:
    el = ET.Element(tag)
    for name, value in fields.items():
        ET.SubElement(el, name).text = value
    return el


def _gbk_text(raw: bytes) -> str:
    """Expat reads no multi-byte encodings: decode GBK here and drop the declaration naming it."""
    text = raw.decode("gbk")
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2:]
    return text
