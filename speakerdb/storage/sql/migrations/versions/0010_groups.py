"""Groups: named sets of speakers (a door's, a team's) that a query may be confined to,
and the group a service key is bound to.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "speaker_id",
            sa.Integer,
            sa.ForeignKey("speakers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_group_members_speaker_id", "group_members", ["speaker_id"])
    # Plain ADD COLUMN (no batch copy of the table), as 0003 does.
    op.add_column("api_keys", sa.Column("group_name", sa.String(64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE api_keys DROP COLUMN group_name")
    op.drop_table("group_members")
    op.drop_table("groups")
