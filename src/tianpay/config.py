"""Settings for every Tianpay process, read from ``TIANPAY_*`` environment variables.

Secrets are ``SecretStr`` so they never appear in a repr, a log line or an error message. The
database URL defaults to the embedded SQLite file under the data directory, as the CLI contract in
DESIGN.md §2 requires.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Standard Webhooks retry schedule of DESIGN.md §6: 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m,
# 3h, 3h, 3h, 6h, 6h. The first delivery is immediate; these are the waits before each retry.
_RETRY_MINUTES = (3, 10, 20, 30, 30, 30, 60, 180, 180, 180, 360, 360)
WEBHOOK_RETRY_SCHEDULE_S: tuple[int, ...] = (15, 15, 30, *(60 * minutes for minutes in _RETRY_MINUTES))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIANPAY_", extra="ignore")

    data_dir: Path = Path("tianpay-data")
    database_url: str | None = None
    # A read replica for lists, exports and statistics (docs/statistics.md); unset: the primary.
    read_database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = None

    # Demos and end-to-end tests only: a JSON file holding an offset every process adds to the system
    # clock, so a whole running platform can be moved to the next business day (adapters/clock.py).
    clock_file: Path | None = None

    log_level: str = "INFO"
    log_json: bool = True

    # A scale applied to the webhook retry schedule: 1.0 in production, e.g. 0.001 in tests.
    webhook_retry_scale: float = Field(default=1.0, gt=0)
    webhook_timeout_s: float = 10.0
    signature_window_s: int = 300
    # How long the platform waits for a bank's synchronous answer before calling it UNKNOWN.
    bank_timeout_s: float = 10.0
    # When an attempt still processing is first re-queried, and the longest wait between queries.
    requery_first_after_s: float = 60.0
    requery_max_interval_s: float = 1800.0
    # How long after a payment's expiry a bank's "no such order" becomes final (docs/gateway.md,
    # "Absent orders"). Only a demo or a test on compressed time should shorten it.
    absent_order_margin_s: float = Field(default=900.0, ge=0)
    worker_poll_interval_s: float = 1.0
    # The statistics job re-reads changes younger than this, since a transition id handed out before
    # a slow commit can appear after higher ones (docs/statistics.md, "Watermarks").
    statistics_settle_margin_s: float = Field(default=60.0, ge=0)

    # Quick-pay circuit breaker per channel (docs/routing.md): opens after this many bad results in a
    # row within the window, lets one probe through after the cool-down.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_window_s: float = Field(default=60.0, gt=0)
    breaker_cool_down_s: float = Field(default=30.0, gt=0)

    # The key that encrypts card and ID numbers at rest (AES-256-GCM, 32 bytes hex). When unset the
    # platform creates one under the data directory at first start and keeps it there.
    vault_key_hex: SecretStr | None = None

    # Members and the wallet (docs/members.md, docs/wallet.md). The argon2id cost defaults to the RFC
    # 9106 low-memory profile; tests lower it. The SMS outbox page is for `tianpay up` and tests only.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    # At most this many argon2id hashes or checks run at once per process (unset: one per CPU), so a
    # burst of confirmations queues for the cores instead of holding 64 MiB each (docs/performance.md).
    argon2_max_concurrent: int | None = Field(default=None, ge=1)
    sms_send_limits: str = "1/minute;10/day"
    dev_sms_outbox: bool = False
    member_session_lifetime_s: int = Field(default=12 * 3600, gt=0)
    # A wallet payment above this many fen also needs an SMS code; unset: the payment password suffices.
    wallet_sms_threshold_minor: int | None = Field(default=None, ge=0)
    # A member's withdrawal of at least this many fen waits in ``pending_review`` for an operator
    # (docs/payouts.md "Review"); ¥50,000.00 by default. Merchants' thresholds are set per merchant in
    # the console. None (in code) turns the review of withdrawals off.
    withdrawal_review_threshold_minor: int | None = Field(default=5_000_000, ge=1)

    # Reconciliation (docs/reconciliation.md): the worker fetches a bank's statement this long after
    # the business date's cutoff (Shanghai midnight), for dates up to this many days back; a statement
    # not published yet is tried again after the retry wait; a run's lease outlives a slow run.
    reconciliation_delay_s: float = Field(default=3600.0, ge=0)
    reconciliation_window_days: int = Field(default=3, ge=1)
    reconciliation_retry_s: float = Field(default=300.0, gt=0)
    reconciliation_lease_s: float = Field(default=1800.0, gt=0)

    # Housekeeping (docs/worker.md): how often an idle worker looks for rows past their use, how many
    # it deletes per table per run, and how long a delivered webhook event stays readable (the event
    # log, the portal and `resend`). Pending and failed events are never purged. Idempotency records
    # answer a repeated request with its first answer for this many days; at least 8, since a wallet
    # form's key must outlive the 7-day CSRF nonce that keeps the form submittable
    # (services/housekeeping.MIN_IDEMPOTENCY_RETENTION). Outbox SMS go after this many hours.
    housekeeping_interval_s: float = Field(default=60.0, gt=0)
    housekeeping_batch_size: int = Field(default=500, ge=1)
    event_retention_days: int = Field(default=30, ge=1)
    idempotency_retention_days: int = Field(default=30, ge=8)
    sms_outbox_retention_hours: int = Field(default=24, ge=1)
    # A scheduled debit's claim left `claimed` this long is taken over by another worker: longer than
    # any debit can take (one bank call, bounded by bank_timeout_s), docs/direct-debit.md.
    debit_claim_lease_s: float = Field(default=900.0, gt=0)

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or the embedded SQLite file in the data dir."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'tianpay.sqlite3').resolve()}"

    @property
    def resolved_read_database_url(self) -> str:
        """Where queries read: the replica when one is configured, else the primary."""
        if self.read_database_url:
            return normalise_database_url(self.read_database_url)
        return self.resolved_database_url

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"


def normalise_database_url(url: str) -> str:
    """Accepts the ``postgresql://`` form people paste and selects the psycopg 3 driver for it."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
