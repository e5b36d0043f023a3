"""Alembic environment: runs migrations on the async engine advanced-alchemy hands us."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

import db.models  # noqa: F401  (registers the tables on the metadata)
from db.models import metadata

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

config: AlembicCommandConfig = context.config  # type: ignore[assignment]


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """SAQ creates and migrates its own `saq_*` tables; autogenerate must not propose dropping them."""
    return not (type_ == "table" and name is not None and name.startswith("saq_"))


def configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        include_object=include_object,
        compare_type=True,
        version_table=config.version_table_name,
        render_as_batch=False,
        user_module_prefix=config.user_module_prefix,
        transaction_per_migration=True,
        **kwargs,
    )


MIGRATION_LOCK_KEY = 7_318_004_211
"""Several processes may start at once (`bookmarks run` migrates on start): they take turns."""


def do_run_migrations(connection: Connection) -> None:
    connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
    connection.commit()
    try:
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
        connection.commit()


async def run_migrations_online() -> None:
    # A private, unpooled engine: a pooled connection left open would keep the database busy (tests clone
    # the migrated database as a template, which Postgres refuses while anyone is connected to it).
    engine = async_engine_from_config(
        {"sqlalchemy.url": config.db_url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    configure(url=config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_migrations_online())
