"""Replay check: the acoustic fingerprints of enrolled clips and recent queries, and
their index keys; the audit log's countermeasure and its score.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "utterance_id",
            sa.Integer,
            sa.ForeignKey("utterances.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "speaker_id",
            sa.Integer,
            sa.ForeignKey("speakers.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("session", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_fingerprints_utterance_id", "fingerprints", ["utterance_id"])
    op.create_index("ix_fingerprints_speaker_id", "fingerprints", ["speaker_id"])
    op.create_index("ix_fingerprints_created_at", "fingerprints", ["created_at"])
    op.create_table(
        "fingerprint_keys",
        sa.Column("key", sa.Integer, primary_key=True),
        sa.Column(
            "print_id",
            sa.Integer,
            sa.ForeignKey("fingerprints.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step", sa.Integer, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_fingerprint_keys_print_id", "fingerprint_keys", ["print_id"])
    # Plain ADD COLUMN (no batch copy of the table), as 0003 does.
    op.add_column("audit", sa.Column("countermeasure", sa.String(64), nullable=True))
    op.add_column("audit", sa.Column("countermeasure_score", sa.Float, nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE audit DROP COLUMN countermeasure_score")
    op.execute("ALTER TABLE audit DROP COLUMN countermeasure")
    op.drop_table("fingerprint_keys")
    op.drop_table("fingerprints")
