"""The platform's SMS adapter: it records every message in the ``sms_outbox`` table.

There is no SMS gateway in this project, so the outbox is where messages "leave"; a deployment with
a real gateway replaces this class. Bodies carry live codes, so they are sealed by the vault; only
the development page (``Settings.dev_sms_outbox``) opens them, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, insert, select

from tianpay.adapters.db.tables import sms_outbox
from tianpay.adapters.vault import AesGcmVault
from tianpay.domain.member import SealedPii
from tianpay.ports.clock import Clock
from tianpay.ports.members import OutboxSms


class OutboxSmsSender:
    def __init__(self, engine: Engine, vault: AesGcmVault, clock: Clock) -> None:
        self._engine = engine
        self._vault = vault
        self._clock = clock

    def send(self, phone: str, sealed_phone: SealedPii, text: str) -> None:
        del phone  # A real gateway needs the number; the outbox finds messages by fingerprint.
        body = self._vault.seal(text.encode(), context=_context(sealed_phone.fingerprint))
        with self._engine.begin() as connection:
            connection.execute(
                insert(sms_outbox).values(
                    phone_fingerprint=sealed_phone.fingerprint,
                    phone_masked=sealed_phone.masked,
                    body_ciphertext=body,
                    created_at=self._clock.now(),
                )
            )

    def messages_to(self, phone_fingerprint: str, *, limit: int = 20) -> Sequence[OutboxSms]:
        """The latest messages to a phone, newest first, opened (for the development page and tests)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(sms_outbox)
                .where(sms_outbox.c.phone_fingerprint == phone_fingerprint)
                .order_by(sms_outbox.c.id.desc())
                .limit(limit)
            ).all()
        return [
            OutboxSms(
                row.phone_masked,
                self._vault.open(row.body_ciphertext, context=_context(row.phone_fingerprint)).decode(),
                row.created_at,
            )
            for row in rows
        ]


def _context(phone_fingerprint: str) -> str:
    return f"sms_outbox:{phone_fingerprint}"
