"""The migrations, applied one revision at a time, build exactly the declared schema: the models plus the
current function and trigger definitions in db/sql/progress_triggers.sql and auth_triggers.sql (which no
migration runs)."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from app import database
from app.settings import Settings
from db.models import metadata
from db.queries import queries
from tests.conftest import scratch_database

DECLARED_FUNCTIONS_AND_TRIGGERS = (
    "create_sequence_and_notify_function",
    "create_sequence_and_notify_trigger",
    "create_token_changed_function",
    "create_user_deleted_function",
    "create_token_changed_trigger",
    "create_token_deleted_trigger",
    "create_user_deleted_trigger",
    "create_truncated_function",
    "create_tokens_truncated_trigger",
    "create_users_truncated_trigger",
)
SCHEMA = {
    "columns": """
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default,
               is_identity, identity_generation
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> 'alembic_version'""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'alembic_version'""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'""",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = 'public'::regnamespace""",
    "sequences": "SELECT sequencename, data_type::text FROM pg_sequences WHERE schemaname = 'public'",
}


async def schema_of(dsn: str) -> dict[str, set[tuple[object, ...]]]:
    """Every column, constraint, index, trigger, function and sequence of the public schema, with its
    full definition as Postgres renders it (so a changed function body or CHECK shows up)."""
    conn = await asyncpg.connect(dsn)
    try:
        return {kind: {tuple(row) for row in await conn.fetch(sql)} for kind, sql in SCHEMA.items()}
    finally:
        await conn.close()


async def build_declared_schema(dsn: str) -> None:
    engine = create_async_engine(Settings(database_url=dsn).sqlalchemy_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            for name in DECLARED_FUNCTIONS_AND_TRIGGERS:
                await conn.exec_driver_sql(queries[name])
    finally:
        await engine.dispose()


def revisions_in_order() -> list[str]:
    script = ScriptDirectory(str(database.MIGRATIONS_DIR))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


async def test_migrating_step_by_step_gives_exactly_the_declared_schema(empty_database: str) -> None:
    """Each revision applied on its own, from an empty database, ends in the declared schema, definitions
    included; so a changed trigger or model without its migration (or the reverse) fails here."""
    revisions = revisions_in_order()
    assert revisions[0] == "0001" and len(revisions) >= 3
    settings = Settings(database_url=empty_database)
    for revision in revisions:
        await asyncio.to_thread(database.upgrade, settings, revision)
    migrated = await schema_of(empty_database)

    async with scratch_database("bm_declared") as declared_url:
        await build_declared_schema(declared_url)
        declared = await schema_of(declared_url)

    for kind in SCHEMA:
        assert migrated[kind] == declared[kind], (
            f"{kind} differ: only migrated {sorted(map(str, migrated[kind] - declared[kind]))}, "
            f"only declared {sorted(map(str, declared[kind] - migrated[kind]))}"
        )
