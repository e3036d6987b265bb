"""The platform's response signer builds RFC 9421 signatures itself: they must be the library's, byte for byte.

ed25519 signatures are deterministic, so for the same key, time, fields and body the hand-built
signature base gives exactly the ``Signature`` that ``http-message-signatures`` would have given; any
difference in the base (a quote, a parameter's order, a trimmed value) would show here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver, algorithms
from http_message_signatures.exceptions import InvalidSignature as LibraryInvalidSignature

from tianpay.adapters.keys import PlatformSigningKey
from tianpay.entrypoints.api.auth import HeaderFields
from tianpay.entrypoints.api.signing import (
    RESPONSE_COMPONENTS,
    RESPONSE_SIGNATURE_LABEL,
    STREAMED_RESPONSE_COMPONENTS,
    ResponseSigner,
)

WHEN = datetime(2026, 11, 27, 8, 30, 15, tzinfo=UTC)


@dataclass
class Response:
    status_code: int
    headers: HeaderFields
    request: None = None


def platform_key() -> PlatformSigningKey:
    private_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return PlatformSigningKey(key_id="pk_test", private_key=private_key)


def library_signer(key: PlatformSigningKey) -> HTTPMessageSigner:
    resolver = MappingKeyResolver(public_keys={}, private_keys={key.key_id: key.private_key})
    return HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver)


def fields(*pairs: tuple[str, str]) -> HeaderFields:
    return HeaderFields(list(pairs))


@pytest.mark.parametrize(
    ("status", "pairs", "body"),
    [
        (200, [("content-type", "application/json"), ("Request-Id", "req_1")], b'{"id":"pay_1","amount":100}'),
        (402, [("content-type", "application/json; charset=utf-8")], b'{"error":{"type":"card_error"}}'),
        (204, [], b""),
        (500, [("content-type", "  application/json  ")], b"{}"),
    ],
)
def test_a_signed_response_is_what_the_library_would_have_signed(
    status: int, pairs: list[tuple[str, str]], body: bytes
) -> None:
    key = platform_key()
    ours = fields(*pairs)
    ResponseSigner(key, now=lambda: WHEN).sign(status, ours, body)

    theirs = fields(*pairs)
    covered = [c for c in RESPONSE_COMPONENTS if c.startswith("@") or c == "content-digest" or c in theirs]
    library_signer(key).sign(
        Response(status, theirs), key_id=key.key_id, created=WHEN, label=RESPONSE_SIGNATURE_LABEL,
        covered_component_ids=covered, body=body,
    )
    for name in ("Content-Digest", "Signature-Input", "Signature"):
        assert ours.get(name) == theirs.get(name), name


def test_a_streamed_response_is_signed_over_its_fields_as_the_library_would() -> None:
    key = platform_key()
    pairs = [("content-type", "text/csv"), ("content-disposition", 'attachment; filename="p.csv"'),
             ("request-id", "req_2")]
    ours = fields(*pairs)
    ResponseSigner(key, now=lambda: WHEN).sign_headers(200, ours)

    theirs = fields(*pairs)
    library_signer(key).sign(
        Response(200, theirs), key_id=key.key_id, created=WHEN, label=RESPONSE_SIGNATURE_LABEL,
        covered_component_ids=list(STREAMED_RESPONSE_COMPONENTS),
    )
    assert ours.get("Signature-Input") == theirs.get("Signature-Input")
    assert ours.get("Signature") == theirs.get("Signature")
    assert ours.get("Content-Digest") is None


def test_the_library_verifies_what_the_signer_signed_and_refuses_an_altered_status() -> None:
    key = platform_key()
    headers = fields(("content-type", "application/json"))
    ResponseSigner(key, now=lambda: WHEN).sign(201, headers, b'{"ok":true}')
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={key.key_id: key.public_key}, private_keys={}),
    )
    results = verifier.verify(Response(201, headers), max_age=None)
    assert [r.label for r in results] == [RESPONSE_SIGNATURE_LABEL]
    # The library may raise its own InvalidSignature or let cryptography's through: both are a refusal.
    with pytest.raises((InvalidSignature, LibraryInvalidSignature)):
        verifier.verify(Response(200, headers), max_age=None)


def test_a_field_with_a_line_break_is_refused_rather_than_signed() -> None:
    headers = fields(("content-type", "application/json\n\"@status\": 200"))
    with pytest.raises(ValueError, match="content-type"):
        ResponseSigner(platform_key(), now=lambda: WHEN).sign(200, headers, b"{}")
