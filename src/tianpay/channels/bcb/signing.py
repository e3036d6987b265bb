"""AIPG signatures (BANKS.md "BCB"): hex RSA-SHA256 (PKCS#1 v1.5) over the GBK document with an
empty ``SIGNED_MSG``; our requests are signed with our key, BCB's answers verified with BCB's."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

DECLARATION = b'<?xml version="1.0" encoding="GBK"?>'


def serialise(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="GBK", xml_declaration=False)
    return DECLARATION + body


def _unsigned(root: ET.Element) -> bytes:
    element = root.find("INFO/SIGNED_MSG")
    if element is None:
        raise ValueError("INFO/SIGNED_MSG is missing")
    kept, element.text = element.text, ""
    try:
        return serialise(root)
    finally:
        element.text = kept


def sign(root: ET.Element, key: rsa.RSAPrivateKey) -> bytes:
    signature = key.sign(_unsigned(root), padding.PKCS1v15(), hashes.SHA256())
    element = root.find("INFO/SIGNED_MSG")
    assert element is not None
    element.text = signature.hex()
    return serialise(root)


def verify(root: ET.Element, key: rsa.RSAPublicKey) -> bool:
    element = root.find("INFO/SIGNED_MSG")
    if element is None or not element.text:
        return False
    try:
        key.verify(bytes.fromhex(element.text), _unsigned(root), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        return False
    return True
