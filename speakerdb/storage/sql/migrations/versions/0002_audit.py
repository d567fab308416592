"""Audit log: one row per identify or verify decision, written only while auditing is on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("claimed", sa.String(128), nullable=True),
        sa.Column("identified", sa.String(128), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("normalized", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_created_at"))
    op.drop_table("audit")
