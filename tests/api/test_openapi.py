"""The OpenAPI document describes the signature scheme and the error envelope on every operation;
``tianpay serve`` runs the migrations and serves the signed API as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tianpay.entrypoints.launcher import free_port

from .conftest import ApiServer
from .rfc9421_client import PlatformKey, verify_platform_signature


def test_every_operation_documents_the_error_envelope_and_its_security(api_server: ApiServer) -> None:
    response = requests.get(api_server.url("/openapi.json"), timeout=10)
    assert response.status_code == 200
    verify_platform_signature(response, api_server.platform_key)
    document = response.json()
    scheme = document["components"]["securitySchemes"]["HttpMessageSignature"]
    for needle in ('"@method"', '"@target-uri"', '"content-digest"', '"content-type"', "created", "keyid",
                   "nonce", "rsa-v1_5-sha256", "ecdsa-p256-sha256", "ed25519", "hmac-sha256",
                   "Tianpay-Merchant-Id", '"@status"'):
        assert needle in scheme["description"], needle
    assert "ErrorEnvelope" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            assert "422" not in responses
            for status in ("400", "404", "500"):
                assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith(
                    "/ErrorEnvelope"), (path, status)
            if path != "/v1/platform-keys":
                assert operation["security"] == [{"HttpMessageSignature": []}], path
    assert "security" not in document["paths"]["/v1/platform-keys"]["get"]
    assert requests.get(api_server.url("/docs"), timeout=10).status_code == 200



def test_tianpay_serve_upgrades_the_database_and_serves_signed_responses(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIANPAY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tianpay.entrypoints.cli", "serve", "--data-dir", str(tmp_path), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/v1/platform-keys", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "tianpay serve did not answer"
                time.sleep(0.1)
        (key,) = response.json()["data"]
        verify_platform_signature(response, PlatformKey(key["key_id"], key["public_key_pem"].encode()))
        assert (tmp_path / "keys" / "platform_ed25519.pem").exists()
        assert (tmp_path / "tianpay.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
