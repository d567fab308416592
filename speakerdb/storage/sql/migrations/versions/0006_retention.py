"""Retention: a per-speaker expiry date, and the tombstones of people who opted out.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch copy of `speakers` would cascade-delete the utterances.
    op.add_column("speakers", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_speakers_expires_at", "speakers", ["expires_at"])
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("name_key", sa.String, nullable=False),
        sa.Column("folded_key", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tombstones_external_id", "tombstones", ["external_id"])
    op.create_index("ix_tombstones_name_key", "tombstones", ["name_key"])
    op.create_index("ix_tombstones_folded_key", "tombstones", ["folded_key"])


def downgrade() -> None:
    op.drop_table("tombstones")
    op.drop_index("ix_speakers_expires_at", "speakers")
    op.execute("ALTER TABLE speakers DROP COLUMN expires_at")
