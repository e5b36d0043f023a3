"""A TRUNCATE of api_tokens or users is announced to every hub, like a revocation

Row triggers do not fire on TRUNCATE, so `TRUNCATE api_tokens` (or `users … CASCADE`) left open sockets
streaming and remembered tokens answering until their next reconnect. Statement triggers now notify
`auth_changes` with `{}`: every hub re-checks the token of every socket it holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TRUNCATED_FUNCTION = """
CREATE OR REPLACE FUNCTION auth_notify_truncated_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- No rows to name: every hub re-checks every socket's token (docs/design.md, "Revocation").
    PERFORM pg_notify('auth_changes', '{}');
    RETURN NULL;
END;
$$
"""
TRIGGERS = [
    """
CREATE TRIGGER api_tokens_truncated
    AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION auth_notify_truncated_v1()
""",
    """
CREATE TRIGGER users_truncated
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION auth_notify_truncated_v1()
""",
]


def upgrade() -> None:
    op.execute(TRUNCATED_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS users_truncated ON users")
    op.execute("DROP TRIGGER IF EXISTS api_tokens_truncated ON api_tokens")
    op.execute("DROP FUNCTION IF EXISTS auth_notify_truncated_v1()")
