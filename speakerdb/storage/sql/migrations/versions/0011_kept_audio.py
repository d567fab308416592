"""Re-embedding and idle expiry: the enrollment audio kept (encrypted) with
``--keep-audio``, and each speaker's last successful match.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kept_audio",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "utterance_id",
            sa.Integer,
            sa.ForeignKey("utterances.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    # Plain ADD COLUMN: a batch copy of `speakers` would cascade-delete the utterances.
    op.add_column("speakers", sa.Column("last_match_at", sa.DateTime(timezone=True), nullable=True))
    # Idleness counts from the enrollment until a first match is recorded.
    op.execute("UPDATE speakers SET last_match_at = created_at")
    op.create_index("ix_speakers_last_match_at", "speakers", ["last_match_at"])


def downgrade() -> None:
    op.drop_index("ix_speakers_last_match_at", "speakers")
    op.execute("ALTER TABLE speakers DROP COLUMN last_match_at")
    op.drop_table("kept_audio")
