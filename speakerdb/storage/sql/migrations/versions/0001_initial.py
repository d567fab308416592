"""Initial schema: speakers, utterances, encoder, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "speakers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("template", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "utterances",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "speaker_id",
            sa.Integer,
            sa.ForeignKey("speakers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source", sa.String, nullable=True),
        sa.Column("audio_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_utterances_speaker_id", "utterances", ["speaker_id"])
    op.create_table(
        "encoder",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("revision", sa.String, nullable=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("sample_rate", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.String, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_table("encoder")
    op.drop_index("ix_utterances_speaker_id", "utterances")
    op.drop_table("utterances")
    op.drop_table("speakers")
