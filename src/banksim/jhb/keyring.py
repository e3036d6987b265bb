"""JHB's key management: its own SM2 key, partners' SM2 public keys, and the SM4 data keys it issues.

Onboarding registers the platform's SM2 public key in the core partner register and issues a
first SM4 data key; rotation issues a new one and leaves the older keys accepted for a grace
period, so the platform can switch over without a window in which requests fail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from tongsuopy.crypto.asymciphers import ec

from banksim.core.bank import BankContext
from banksim.core.clock import SHANGHAI
from banksim.core.partners import PartnerKey
from banksim.jhb import crypto
from banksim.jhb.codes import JhbError, RetCode
from banksim.jhb.store import JhbStore, StoredDataKey

BANK_KEY_NAME = "jhb-sm2-signing"
# Old data keys stay accepted for a day after a rotation unless the rotation asks otherwise.
DEFAULT_ROTATION_GRACE_S = 86_400.0


@dataclass(frozen=True, slots=True)
class OnboardingPack:
    """What JHB hands the platform at onboarding (docs/banks/jhb.md, "Onboarding")."""

    partner_id: str
    partner_name: str
    key_id: str
    data_key: bytes
    jhb_public_key_pem: str
    jhb_public_key_hex: str
    reserve_acc_no: str

    def __repr__(self) -> str:
        return f"OnboardingPack(partner_id={self.partner_id!r}, key_id={self.key_id!r}, data_key=<redacted>)"


@dataclass(frozen=True, slots=True)
class Rotation:
    partner_id: str
    key_id: str
    data_key: bytes
    previous_key_ids: tuple[str, ...]
    previous_valid_until: datetime | None


class Keyring:
    def __init__(self, context: BankContext, store: JhbStore) -> None:
        self._context = context
        self._store = store
        self.signing_key = self._load_or_create_bank_key()

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.signing_key.public_key()

    def _load_or_create_bank_key(self) -> ec.EllipticCurvePrivateKey:
        # The key lives in JHB's own books so a restarted bank keeps the key partners already trust.
        pem = self._store.bank_key_pem(BANK_KEY_NAME)
        if pem is None:
            fresh = crypto.private_key_to_pem(crypto.generate_sm2_private_key())
            pem = self._store.save_bank_key_pem(BANK_KEY_NAME, fresh, self._context.clock.now())
        return crypto.private_key_from_pem(pem)

    # Onboarding and rotation

    def onboard(
        self, *, name: str, public_key_text: str, partner_id: str | None, reserve_acc_no: str | None
    ) -> OnboardingPack:
        """Register the platform's SM2 public key; idempotent for the same key.

        Raises ValueError for a key that is not SM2 and `PartnerConflict` (core) when the key
        already belongs to another partner.
        """
        public_key = crypto.load_public_key(public_key_text)
        point_hex = crypto.public_key_to_hex(public_key)
        # The key's own fingerprint names it in the register, so registering it twice is harmless.
        key = PartnerKey(
            key_id="SM2-" + hashlib.sha256(bytes.fromhex(point_hex)).hexdigest()[:24],
            partner_id=partner_id or "",
            public_key_pem=crypto.public_key_to_pem(public_key),
            certificate_pem=None,
        )
        assigned = self._context.partners.register(
            partner_id=partner_id, key=key, name=name, assign_id=lambda number: f"JHB{number:08d}"
        )
        account = reserve_acc_no or self._context.profile.reserve_acc_no
        if self._store.reserve_acc_no(assigned) is None or reserve_acc_no:
            self._store.save_profile(assigned, account)
        current = self.current_key(assigned)
        if current is None:
            current = self._issue_key(assigned, retire_others_after_s=0.0)
        return OnboardingPack(
            partner_id=assigned,
            partner_name=self._context.partners.name(assigned) or name,
            key_id=current.key_id,
            data_key=current.key,
            jhb_public_key_pem=crypto.public_key_to_pem(self.public_key),
            jhb_public_key_hex=crypto.public_key_to_hex(self.public_key),
            reserve_acc_no=self._store.reserve_acc_no(assigned) or account,
        )

    def rotate(self, partner_id: str, grace_s: float = DEFAULT_ROTATION_GRACE_S) -> Rotation:
        if not self._context.partners.exists(partner_id):
            raise KeyError(partner_id)
        before = [k for k in self._store.data_keys(partner_id) if k.is_accepted_at(self._context.clock.timestamp())]
        fresh = self._issue_key(partner_id, retire_others_after_s=grace_s)
        valid_until = self._context.clock.timestamp() + grace_s
        return Rotation(
            partner_id=partner_id,
            key_id=fresh.key_id,
            data_key=fresh.key,
            previous_key_ids=tuple(k.key_id for k in before),
            previous_valid_until=datetime.fromtimestamp(valid_until, tz=SHANGHAI) if before else None,
        )

    def _issue_key(self, partner_id: str, *, retire_others_after_s: float) -> StoredDataKey:
        number = self._context.books.next_sequence("jhb_data_key")
        now = self._context.clock.now()
        key_id = f"K{now.astimezone(SHANGHAI).strftime('%Y%m%d')}{number:04d}"
        key = crypto.new_data_key()
        self._store.add_data_key(
            partner_id, key_id, key, now, retire_others_at_ts=self._context.clock.timestamp() + retire_others_after_s
        )
        stored = self._store.data_key(key_id)
        assert stored is not None
        return stored

    # Lookups used when opening and sealing envelopes

    def current_key(self, partner_id: str) -> StoredDataKey | None:
        keys = self._store.data_keys(partner_id)
        return keys[0] if keys else None

    def partner_public_keys(self, partner_id: str) -> list[ec.EllipticCurvePublicKey]:
        rows = self._context.books.query(
            "SELECT public_key_pem FROM partner_keys WHERE partner_id = ? ORDER BY created_at DESC", (partner_id,)
        )
        return [crypto.load_public_key(str(r["public_key_pem"])) for r in rows]

    def accepted_data_key(self, partner_id: str, key_id: str) -> StoredDataKey:
        """The data key named in a request head, if it is the partner's and still accepted."""
        stored = self._store.data_key(key_id)
        if stored is None or stored.partner_id != partner_id:
            raise JhbError(RetCode.DECRYPT_FAILED, f"unknown key_id {key_id}")
        if not stored.is_accepted_at(self._context.clock.timestamp()):
            raise JhbError(RetCode.DECRYPT_FAILED, f"key_id {key_id} was retired by a rotation")
        return stored

    def notification_key(self, partner_id: str) -> StoredDataKey:
        """The key to seal a notification with: the one the partner last used, while still accepted.

        A partner that has not yet switched to a freshly rotated key can still open notifications;
        once it uses the new key (or the old one retires), notifications follow.
        """
        now_ts = self._context.clock.timestamp()
        last = self._store.last_key_id(partner_id)
        if last:
            stored = self._store.data_key(last)
            if stored is not None and stored.is_accepted_at(now_ts):
                return stored
        current = self.current_key(partner_id)
        if current is None:
            raise JhbError(RetCode.PARTNER_UNKNOWN, f"partner {partner_id} has no data key")
        return current
