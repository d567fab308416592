"""Audit log: each decision's outcome (accepted, rejected, unknown, not_enough_speech, replay).

Rows logged before outcomes existed get the one their decision gave: ``accepted``,
else ``unknown`` for an identify and ``rejected`` for a verify.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(32), nullable=True))
    op.execute(
        "UPDATE audit SET outcome = CASE WHEN accepted THEN 'accepted' "
        "WHEN operation = 'identify' THEN 'unknown' ELSE 'rejected' END"
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.alter_column("outcome", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_column("outcome")
