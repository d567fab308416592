"""How each enrolled clip's vector was made: from its words and ``spoken_margin_s``
either side, or (NULL) from the whole clip, as every clip enrolled before was.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL marks every existing clip as embedded whole: speakerdb cut none to its words
    # before this revision. Plain ADD COLUMN, as for `speakers` (no batch copy needed).
    op.add_column("utterances", sa.Column("spoken_margin_s", sa.Float, nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE utterances DROP COLUMN spoken_margin_s")
