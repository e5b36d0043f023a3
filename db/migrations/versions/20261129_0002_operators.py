"""operators: users.is_admin, for the queue console at /saq

The oldest user (the one `bookmarks run` creates on first start, or the first one an operator made)
becomes the first operator, so an existing installation keeps someone who can open the console.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("is_admin", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.execute(
        "UPDATE users SET is_admin = true WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1)"
    )


def downgrade() -> None:
    op.drop_column("users", "is_admin")
