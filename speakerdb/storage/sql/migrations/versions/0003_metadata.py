"""Speaker metadata: an external id (unique where set) and JSON attributes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy of the table: copying `speakers` would drop it,
    # and with foreign keys on, dropping it deletes every utterance (ON DELETE CASCADE).
    op.add_column("speakers", sa.Column("external_id", sa.String(128), nullable=True))
    op.add_column("speakers", sa.Column("attributes", sa.Text, nullable=True))
    # Unique where set: SQLite and PostgreSQL both let any number of rows hold NULL.
    op.create_index("ix_speakers_external_id", "speakers", ["external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_speakers_external_id", "speakers")
    # SQLite 3.35+ drops a column in place (no batch copy: see upgrade).
    op.execute("ALTER TABLE speakers DROP COLUMN attributes")
    op.execute("ALTER TABLE speakers DROP COLUMN external_id")
