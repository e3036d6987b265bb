"""Onboarding at JHB: our SM2 key, JHB's pack (partner id, JHB's public key, SM4 data keys), rotation.

At a real bank this is paperwork; the simulator takes it at `POST /_sim/partners` and rotates data
keys at `POST /_sim/partners/{partner_id}/rotate-key` (docs/banks/onboarding.md). Everything is
kept under `<data-dir>/channels/jhb/`: the private key and `onboarding.json` (which holds the data
keys) are secrets, written atomically with mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tianpay.channels.jhb.config import JhbConfig
from tianpay.channels.jhb.signing import SM2_USER_ID, SigningKey, VerifyingKey

PRIVATE_KEY_FILE = "platform-sm2.pem"
ONBOARDING_FILE = "onboarding.json"
DEFAULT_PARTNER_NAME = "天付支付有限公司"
# JHB keeps a rotated-out data key accepted this long unless told otherwise (docs/banks/jhb.md).
DEFAULT_ROTATION_GRACE_S = 86_400.0


class OnboardingError(Exception):
    """JHB refused onboarding, or its pack is not something this adapter can speak."""


@dataclass(frozen=True, slots=True)
class OnboardingRecord:
    """What we keep from JHB's pack (and later rotations); `data_keys` are hex, by `key_id`."""

    base_url: str
    partner_id: str
    partner_name: str
    jhb_public_key_pem: str
    current_key_id: str
    data_keys: Mapping[str, str] = field(repr=False)
    reserve_acc_no: str = ""
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "bank": "JHB",
            "base_url": self.base_url,
            "partner_id": self.partner_id,
            "partner_name": self.partner_name,
            "jhb_public_key_pem": self.jhb_public_key_pem,
            "current_key_id": self.current_key_id,
            "data_keys": dict(self.data_keys),
            "reserve_acc_no": self.reserve_acc_no,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OnboardingRecord:
        try:
            return cls(
                base_url=str(data["base_url"]),
                partner_id=str(data["partner_id"]),
                partner_name=str(data.get("partner_name", "")),
                jhb_public_key_pem=str(data["jhb_public_key_pem"]),
                current_key_id=str(data["current_key_id"]),
                data_keys={str(k): str(v) for k, v in dict(data["data_keys"]).items()},
                reserve_acc_no=str(data.get("reserve_acc_no", "")),
                updated_at=str(data.get("updated_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OnboardingError(f"{ONBOARDING_FILE} is incomplete: {exc}") from exc


def channel_dir(data_dir: Path) -> Path:
    return data_dir / "channels" / "jhb"


def load_or_create_platform_key(data_dir: Path) -> SigningKey:
    """Our SM2 key for JHB, created once; the same key on every later call (and every restart)."""
    path = channel_dir(data_dir) / PRIVATE_KEY_FILE
    if path.exists():
        return SigningKey.from_pem(path.read_text(encoding="ascii"))
    key = SigningKey.generate()
    _write_private(path, key.to_pem().encode("ascii"))
    return key


def onboard(
    data_dir: Path,
    jhb_url: str,
    *,
    partner_name: str = DEFAULT_PARTNER_NAME,
    http: httpx.Client | None = None,
) -> OnboardingRecord:
    """Registers our public key with JHB and persists the pack; safe to run again.

    JHB answers the same partner and current key for a key it already knows, so a second run only
    refreshes the record (keeping any data keys we hold from earlier rotations).
    """
    key = load_or_create_platform_key(data_dir)
    request = {"public_key": key.public_key.to_pem(), "name": partner_name}
    pack = _post_json(http, f"{jhb_url.rstrip('/')}/_sim/partners", request)
    _check_pack(pack)
    try:
        previous = load_onboarding(data_dir)
    except OnboardingError:
        previous = None
    data_keys = dict(previous.data_keys) if previous is not None and previous.partner_id == pack["partner_id"] else {}
    data_keys[str(pack["key_id"])] = str(pack["data_key"])
    record = OnboardingRecord(
        base_url=str(pack.get("api_base_url") or jhb_url).rstrip("/"),
        partner_id=str(pack["partner_id"]),
        partner_name=str(pack.get("partner_name", partner_name)),
        jhb_public_key_pem=str(pack["jhb_public_key_pem"]),
        current_key_id=str(pack["key_id"]),
        data_keys=data_keys,
        reserve_acc_no=str(pack.get("reserve_acc_no", "")),
        updated_at=datetime.now(UTC).isoformat(),
    )
    save_onboarding(data_dir, record)
    return record


def rotate_data_key(
    data_dir: Path,
    *,
    grace_s: float = DEFAULT_ROTATION_GRACE_S,
    http: httpx.Client | None = None,
) -> OnboardingRecord:
    """Asks JHB for a new data key and makes it current; keeps the keys JHB still accepts.

    The older keys stay because JHB seals notifications with the key we last used until it retires
    (docs/banks/jhb.md), so a notification may arrive under the old key after the switch.
    """
    record = load_onboarding(data_dir)
    url = f"{record.base_url}/_sim/partners/{record.partner_id}/rotate-key"
    rotation = _post_json(http, url, {"grace_s": grace_s})
    try:
        key_id, data_key = str(rotation["key_id"]), str(rotation["data_key"])
        still_accepted = {str(k) for k in rotation.get("previous_key_ids") or []}
    except (KeyError, TypeError) as exc:
        raise OnboardingError(f"JHB's rotation answer is incomplete: {exc}") from exc
    _check_data_key(data_key)
    data_keys = {k: v for k, v in record.data_keys.items() if k in still_accepted}
    data_keys[key_id] = data_key
    rotated = OnboardingRecord(
        base_url=record.base_url,
        partner_id=record.partner_id,
        partner_name=record.partner_name,
        jhb_public_key_pem=record.jhb_public_key_pem,
        current_key_id=key_id,
        data_keys=data_keys,
        reserve_acc_no=record.reserve_acc_no,
        updated_at=datetime.now(UTC).isoformat(),
    )
    save_onboarding(data_dir, rotated)
    return rotated


def load_onboarding(data_dir: Path) -> OnboardingRecord:
    path = channel_dir(data_dir) / ONBOARDING_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OnboardingError(f"JHB is not onboarded: {path} does not exist") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise OnboardingError(f"{path} is not JSON") from exc
    if not isinstance(data, dict):
        raise OnboardingError(f"{path} is not a JSON object")
    return OnboardingRecord.from_json(data)


def save_onboarding(data_dir: Path, record: OnboardingRecord) -> None:
    text = json.dumps(record.to_json(), ensure_ascii=False, indent=2) + "\n"
    _write_private(channel_dir(data_dir) / ONBOARDING_FILE, text.encode("utf-8"))


def config_from_onboarding(data_dir: Path, *, timeout_s: float = 10.0) -> JhbConfig:
    """The adapter's configuration from what onboarding (and rotations) left on disk."""
    record = load_onboarding(data_dir)
    return JhbConfig(
        base_url=record.base_url,
        partner_id=record.partner_id,
        platform_private_key=load_or_create_platform_key(data_dir),
        jhb_public_key=VerifyingKey.from_text(record.jhb_public_key_pem),
        data_keys={key_id: bytes.fromhex(hex_key) for key_id, hex_key in record.data_keys.items()},
        current_key_id=record.current_key_id,
        timeout_s=timeout_s,
    )


def _check_pack(pack: Mapping[str, Any]) -> None:
    for name in ("partner_id", "key_id", "data_key", "jhb_public_key_pem"):
        if not isinstance(pack.get(name), str) or not pack[name]:
            raise OnboardingError(f"JHB's pack lacks {name}")
    # We sign and verify DER with the default user ID only; a pack asking otherwise must stop here
    # rather than produce signatures JHB would reject one request at a time.
    if pack.get("signature_encoding", "DER") != "DER":
        raise OnboardingError(f"unsupported signature encoding {pack.get('signature_encoding')!r}")
    if pack.get("sm2_user_id", SM2_USER_ID.decode()) != SM2_USER_ID.decode():
        raise OnboardingError("JHB asks for an SM2 user ID other than the default")
    VerifyingKey.from_text(str(pack["jhb_public_key_pem"]))
    _check_data_key(str(pack["data_key"]))


def _check_data_key(hex_key: str) -> None:
    try:
        if len(bytes.fromhex(hex_key)) != 16:
            raise OnboardingError("the data key is not 16 bytes")
    except ValueError as exc:
        raise OnboardingError("the data key is not hex") from exc


def _post_json(http: httpx.Client | None, url: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    client = http if http is not None else httpx.Client(timeout=10.0)
    try:
        response = client.post(url, json=dict(payload))
    except httpx.HTTPError as exc:
        raise OnboardingError(f"could not reach JHB at {url}: {type(exc).__name__}") from exc
    finally:
        if http is None:
            client.close()
    if response.status_code != 200:
        # JHB's error text never contains key material (we sent only our public key).
        raise OnboardingError(f"JHB refused ({response.status_code}): {response.text[:200]}")
    try:
        data = response.json()
    except ValueError as exc:
        raise OnboardingError("JHB's answer is not JSON") from exc
    if not isinstance(data, dict):
        raise OnboardingError("JHB's answer is not a JSON object")
    return data


def _write_private(path: Path, content: bytes) -> None:
    """Writes a secret atomically: a 0600 temporary file in a 0700 directory, then a rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # A leftover temporary file keeps its old mode through O_CREAT, so set it explicitly.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
