"""The merchant repository over ``merchants``, ``merchant_keys`` and ``fee_plans``.

Only public keys and vault-sealed shared secrets are ever written here; private keys stay with the
merchant (or in the file the platform handed over when it generated the pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from tianpay.domain.merchant import (
    FeePlan,
    FeeRate,
    KeyAlgorithm,
    KeyStatus,
    Merchant,
    MerchantKey,
    MerchantStatus,
)

from .tables import fee_plans, merchant_keys, merchants


class SqlMerchantRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, merchant: Merchant) -> None:
        self._connection.execute(
            insert(merchants).values(
                id=merchant.id,
                name=merchant.name,
                status=merchant.status.value,
                webhook_url=merchant.webhook_url,
                webhook_secret=merchant.webhook_secret,
                created_at=merchant.created_at,
            )
        )

    def get(self, merchant_id: str) -> Merchant | None:
        row = self._connection.execute(select(merchants).where(merchants.c.id == merchant_id)).first()
        if row is None:
            return None
        return Merchant(
            id=row.id,
            name=row.name,
            status=MerchantStatus(row.status),
            webhook_url=row.webhook_url,
            webhook_secret=row.webhook_secret,
            created_at=row.created_at,
        )

    def add_key(self, key: MerchantKey) -> None:
        self._connection.execute(
            insert(merchant_keys).values(
                key_id=key.key_id,
                merchant_id=key.merchant_id,
                algorithm=key.algorithm.value,
                public_key_pem=key.public_key_pem,
                secret_ciphertext=key.secret_ciphertext,
                status=key.status.value,
                created_at=key.created_at,
                expires_at=key.expires_at,
            )
        )

    def get_key(self, key_id: str) -> MerchantKey | None:
        row = self._connection.execute(select(merchant_keys).where(merchant_keys.c.key_id == key_id)).first()
        return None if row is None else _key_from(row)

    def get_key_with_merchant(self, key_id: str) -> tuple[MerchantKey, Merchant] | None:
        # One statement instead of two on every signed request (docs/performance.md); the
        # merchant's columns are labelled where their names clash with the key's.
        query = select(
            merchant_keys,
            merchants.c.name.label("merchant_name"),
            merchants.c.status.label("merchant_status"),
            merchants.c.webhook_url,
            merchants.c.webhook_secret,
            merchants.c.created_at.label("merchant_created_at"),
        ).join(merchants, merchants.c.id == merchant_keys.c.merchant_id).where(merchant_keys.c.key_id == key_id)
        row = self._connection.execute(query).first()
        if row is None:
            return None
        merchant = Merchant(
            id=row.merchant_id,
            name=row.merchant_name,
            status=MerchantStatus(row.merchant_status),
            webhook_url=row.webhook_url,
            webhook_secret=row.webhook_secret,
            created_at=row.merchant_created_at,
        )
        return _key_from(row), merchant

    def keys_of(self, merchant_id: str) -> Sequence[MerchantKey]:
        rows = self._connection.execute(
            select(merchant_keys)
            .where(merchant_keys.c.merchant_id == merchant_id)
            .order_by(merchant_keys.c.created_at, merchant_keys.c.key_id)
        )
        return [_key_from(row) for row in rows]

    def expire_key(self, key_id: str, expires_at: datetime) -> None:
        self._connection.execute(
            update(merchant_keys).where(merchant_keys.c.key_id == key_id).values(expires_at=expires_at)
        )

    def set_webhook_secret(self, merchant_id: str, webhook_secret: str) -> bool:
        result = self._connection.execute(
            update(merchants).where(merchants.c.id == merchant_id).values(webhook_secret=webhook_secret)
        )
        return result.rowcount == 1

    def set_webhook_url(self, merchant_id: str, webhook_url: str | None) -> bool:
        result = self._connection.execute(
            update(merchants).where(merchants.c.id == merchant_id).values(webhook_url=webhook_url)
        )
        return result.rowcount == 1

    def set_fee_plan(self, plan: FeePlan) -> None:
        self._connection.execute(delete(fee_plans).where(fee_plans.c.merchant_id == plan.merchant_id))
        self._connection.execute(
            insert(fee_plans),
            [
                {
                    "merchant_id": plan.merchant_id,
                    "method": rate.method,
                    "rate_bps": rate.rate_bps,
                    "minimum_minor": rate.minimum_minor,
                }
                for rate in plan.rates
            ],
        )

    def fee_plan(self, merchant_id: str) -> FeePlan | None:
        rows = self._connection.execute(
            select(fee_plans.c.method, fee_plans.c.rate_bps, fee_plans.c.minimum_minor).where(
                fee_plans.c.merchant_id == merchant_id
            )
        ).all()
        if not rows:
            return None
        return FeePlan.of(merchant_id, (FeeRate(r.method, int(r.rate_bps), int(r.minimum_minor)) for r in rows))


def _key_from(row: Any) -> MerchantKey:
    return MerchantKey(
        key_id=row.key_id,
        merchant_id=row.merchant_id,
        algorithm=KeyAlgorithm(row.algorithm),
        public_key_pem=row.public_key_pem,
        secret_ciphertext=row.secret_ciphertext,
        status=KeyStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
