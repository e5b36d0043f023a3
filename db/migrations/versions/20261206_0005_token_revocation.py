"""api_tokens.expires_at, and triggers that tell every hub when a token or user stops being valid

A token revoked, deleted or given a new expiry, and a user deleted, notify the `auth_changes` channel;
every web process's hub LISTENs there and closes the sockets opened with that token (4401) within 2 s.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHANGE_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION api_tokens_notify_change_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Every web process's hub LISTENs here and re-checks the sockets opened with this token, so a
    -- revoked token stops receiving events within 2 s on every process (docs/design.md, "Revocation").
    PERFORM pg_notify('auth_changes', json_build_object('token_id', OLD.id, 'user_id', OLD.user_id)::text);
    RETURN NULL;
END;
$$
"""
USER_DELETED_FUNCTION = """
CREATE OR REPLACE FUNCTION users_notify_deleted_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auth_changes', json_build_object('user_id', OLD.id)::text);
    RETURN NULL;
END;
$$
"""
TRIGGERS = [
    """
CREATE TRIGGER api_tokens_changed
    AFTER UPDATE OF revoked_at, expires_at ON api_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION api_tokens_notify_change_v1()
""",
    """
CREATE TRIGGER api_tokens_deleted
    AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_notify_change_v1()
""",
    """
CREATE TRIGGER users_deleted
    AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_notify_deleted_v1()
""",
]


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(CHANGE_NOTIFY_FUNCTION)
    op.execute(USER_DELETED_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS users_deleted ON users")
    op.execute("DROP TRIGGER IF EXISTS api_tokens_deleted ON api_tokens")
    op.execute("DROP TRIGGER IF EXISTS api_tokens_changed ON api_tokens")
    op.execute("DROP FUNCTION IF EXISTS users_notify_deleted_v1()")
    op.execute("DROP FUNCTION IF EXISTS api_tokens_notify_change_v1()")
    op.drop_column("api_tokens", "expires_at")
