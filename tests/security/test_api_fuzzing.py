"""Schemathesis against the running platform's ``/openapi.json``: every operation, every request signed.

Each generated request (valid and deliberately invalid data) is signed the way a merchant signs
(RFC 9421 with Content-Digest, by the independent ``requests-http-signature`` client) for a merchant
created for that case, so the fuzzer reaches the handlers instead of stopping at authentication. The
checks: no 5xx, every 4xx answered with the error envelope, status codes, content types and bodies as
the schema declares. SQLite only: this suite is about the HTTP surface, which is the same code on
both databases (the database tests of each area run on both).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import requests
import requests.auth
import schemathesis
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
from hypothesis import HealthCheck, settings
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, CheckContext
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.api.conftest import ApiServer
from tests.api.rfc9421_client import (
    MERCHANT_ID_HEADER,
    MerchantCredentials,
    PlatformKey,
    signature_auth,
    verify_platform_signature,
)

from .conftest import new_ed25519_merchant

pytestmark = pytest.mark.e2e

# Enough to try every operation with valid and invalid data in a few minutes on two cores. Invalid data
# is generated to reach the error paths, but schemathesis's "negative data is rejected" check is not
# run: the signer adds the Signature and merchant headers the negative cases deliberately leave out,
# and a query string cannot tell the integer 0 from the string "0", so that check reports noise.
EXAMPLES_PER_OPERATION = 10
ENVELOPE_FIELDS = {"type", "code", "message", "param"}
STREAMED_COMPONENTS = ("@status", "content-type", "request-id")


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ApiServer) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(fuzz_server.url("/openapi.json"))
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def an_error_is_in_the_envelope(ctx: CheckContext, response: schemathesis.Response, case: Case[Any]) -> bool | None:
    """Every 4xx and 5xx body is ``{"error": {type, code, message, param}}``, nothing else."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict), f"an error body that is not an object: {response.text[:200]}"
    assert set(body) == {"error"}, f"an error body outside the envelope: {response.text[:200]}"
    error = body["error"]
    assert set(error) >= ENVELOPE_FIELDS, f"an envelope without {ENVELOPE_FIELDS - set(error)}"
    assert all(isinstance(error[key], str) for key in ("type", "code", "message"))
    return True


CHECKS: list[Callable[..., bool | None]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    an_error_is_in_the_envelope,
]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_signed_requests_within_its_schema_and_never_with_a_5xx(
    case: Case[Any], fuzz_server: ApiServer
) -> None:
    credentials = new_ed25519_merchant(fuzz_server)
    if case.headers is None:
        case.headers = CaseInsensitiveDict()
    case.headers[MERCHANT_ID_HEADER] = credentials.merchant_id
    with requests.Session() as session:
        response = case.call(base_url=fuzz_server.base_url, session=session, auth=_MerchantSigner(credentials),
                             timeout=30)
    case.validate_response(response, checks=CHECKS)  # type: ignore[arg-type]
    _verify_platform_signature(_as_requests_response(response), fuzz_server.platform_key)


def _verify_platform_signature(response: requests.Response, platform_key: PlatformKey) -> None:
    """Every answer is signed by the platform: over its digest, or, for a streamed export (whose body
    is not known when the header fields go out), over its status and header fields."""
    if "Content-Digest" in response.headers:
        verify_platform_signature(response, platform_key)
        return
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(
            public_keys={platform_key.key_id: platform_key.public_key_pem}, private_keys={}
        ),
    )
    verifier.verify(response, max_age=datetime.timedelta(minutes=5), require_components=STREAMED_COMPONENTS)


class _MerchantSigner(requests.auth.AuthBase):
    """Signs the request as it will be sent: with Content-Digest and content-type when it has a body."""

    def __init__(self, credentials: MerchantCredentials) -> None:
        self._credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        has_body = bool(request.body) and "Content-Type" in request.headers
        result: requests.PreparedRequest = signature_auth(self._credentials, has_body=has_body)(request)
        return result


def _as_requests_response(response: schemathesis.Response) -> requests.Response:
    """The same answer as a ``requests`` response, for the independent signature verifier."""
    converted = requests.Response()
    converted.status_code = response.status_code
    converted.headers = CaseInsensitiveDict({name: ", ".join(values) for name, values in response.headers.items()})
    converted._content = response.content
    return converted
