"""The watchlist: a mark on a speaker whose voice is never to be admitted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch copy of `speakers` would cascade-delete the utterances.
    op.add_column(
        "speakers",
        sa.Column("watchlist", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_speakers_watchlist", "speakers", ["watchlist"])


def downgrade() -> None:
    op.drop_index("ix_speakers_watchlist", "speakers")
    op.execute("ALTER TABLE speakers DROP COLUMN watchlist")
