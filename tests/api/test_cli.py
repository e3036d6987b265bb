"""``tianpay merchant create --json`` as scripts use it (DESIGN.md §2)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from typer.testing import CliRunner

from tianpay.entrypoints.cli import app

runner = CliRunner()


def _create(data_dir: Path, db_url: str, *extra: str) -> dict[str, object]:
    result = runner.invoke(
        app, ["merchant", "create", "--name", "CLI shop", "--data-dir", str(data_dir), "--json", *extra],
        env={"TIANPAY_DATABASE_URL": db_url},
    )
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return payload


def test_merchant_create_prints_the_contract_json(tmp_path: Path, db_url: str) -> None:
    payload = _create(tmp_path, db_url)
    assert set(payload) == {"merchant_id", "key_id", "private_key_path", "webhook_secret"}
    assert str(payload["merchant_id"]).startswith("mch_")
    assert str(payload["key_id"]).startswith("key_")
    path = Path(str(payload["private_key_path"]))
    assert path == (tmp_path / "merchants" / str(payload["merchant_id"]) / f"{payload['key_id']}.pem").resolve()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert str(payload["webhook_secret"]).startswith("whsec_")


def test_merchant_create_with_a_public_key_writes_no_private_key(tmp_path: Path, db_url: str) -> None:
    key_file = tmp_path / "merchant.pub.pem"
    key_file.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    payload = _create(tmp_path, db_url, "--public-key", str(key_file))
    assert payload["private_key_path"] is None
    assert not (tmp_path / "merchants").exists()


def test_merchant_create_with_hmac_shows_the_secret_once(tmp_path: Path, db_url: str) -> None:
    payload = _create(tmp_path, db_url, "--hmac")
    assert payload["private_key_path"] is None
    assert len(bytes.fromhex(str(payload["hmac_secret"]))) == 32


@pytest.mark.parametrize("args", [["--hmac", "--public-key", "x.pem"], ["--name", " "]])
def test_merchant_create_refuses_bad_input(tmp_path: Path, db_url: str, args: list[str]) -> None:
    (tmp_path / "x.pem").write_text("junk")
    result = runner.invoke(
        app, ["merchant", "create", "--name", "A", *args, "--data-dir", str(tmp_path), "--json"],
        env={"TIANPAY_DATABASE_URL": db_url},
    )
    assert result.exit_code != 0
    assert "{" not in result.stdout
