"""Cohort of outside voices: embeddings of people never enrolled (AS-norm's cohort, and
calibration's strangers), each with its voice's label, clip length and audio hash.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cohort",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("audio_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cohort")
