"""Reconciliation: imported statement files and their staged lines, runs, exceptions and parked items.

Revision ID: 0010_reconciliation
Revises: 0009_debit_schedules
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_reconciliation"
down_revision = "0009_debit_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statement_files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("statement_date", sa.String(length=10), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_files")),
        sa.UniqueConstraint("bank", "statement_date", "sha256", name="uq_statement_files_bank_date_sha256"),
    )
    op.create_table(
        "statement_lines",
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("bank_ref", sa.String(length=80), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_ref", sa.String(length=64), nullable=True),
        sa.Column("switch_ref", sa.String(length=40), nullable=True),
        sa.Column("match_ref", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["file_id"], ["statement_files.id"],
                                name=op.f("fk_statement_lines_file_id_statement_files")),
        sa.PrimaryKeyConstraint("file_id", "line_no", name=op.f("pk_statement_lines")),
    )
    op.create_index("ix_statement_lines_bank_match_ref", "statement_lines", ["bank", "match_ref"])
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("lease_owner", sa.String(length=120), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["statement_files.id"],
                                name=op.f("fk_reconciliation_runs_file_id_statement_files")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint("bank", "business_date", name="uq_reconciliation_runs_bank_business_date"),
    )
    op.create_index(
        "ix_reconciliation_runs_business_date_status", "reconciliation_runs", ["business_date", "status"]
    )
    op.create_table(
        "reconciliation_exceptions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("bank_ref", sa.String(length=80), nullable=True),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("statement_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("platform_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("suspense_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("resolution_entry_id", sa.String(length=40), nullable=True),
        sa.Column("resolved_by", sa.String(length=60), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"],
                                name=op.f("fk_reconciliation_exceptions_run_id_reconciliation_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_exceptions")),
        sa.UniqueConstraint("dedupe_key", name="uq_reconciliation_exceptions_dedupe_key"),
    )
    op.create_index(
        "ix_reconciliation_exceptions_status_created", "reconciliation_exceptions", ["status", "created_at"]
    )
    op.create_index("ix_reconciliation_exceptions_run", "reconciliation_exceptions", ["run_id"])
    op.create_table(
        "reconciliation_parked",
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("record_kind", sa.String(length=20), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("resolved_run_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"],
                                name=op.f("fk_reconciliation_parked_run_id_reconciliation_runs")),
        sa.PrimaryKeyConstraint("bank", "record_id", name=op.f("pk_reconciliation_parked")),
    )
    op.create_index(
        "ix_reconciliation_parked_bank_status", "reconciliation_parked", ["bank", "status", "business_date"]
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_parked_bank_status", table_name="reconciliation_parked")
    op.drop_table("reconciliation_parked")
    op.drop_index("ix_reconciliation_exceptions_run", table_name="reconciliation_exceptions")
    op.drop_index("ix_reconciliation_exceptions_status_created", table_name="reconciliation_exceptions")
    op.drop_table("reconciliation_exceptions")
    op.drop_index("ix_reconciliation_runs_business_date_status", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_statement_lines_bank_match_ref", table_name="statement_lines")
    op.drop_table("statement_lines")
    op.drop_table("statement_files")
