"""SQLAlchemy and Alembic configuration derived from the settings' libpq URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)

if TYPE_CHECKING:
    from app.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        connection_string=settings.sqlalchemy_url,
        engine_config=EngineConfig(pool_size=settings.db_pool_size, max_overflow=5, pool_pre_ping=True),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name="alembic_version",
            script_config=str(MIGRATIONS_DIR / "alembic.ini"),
        ),
        create_all=False,
        before_send_handler="autocommit",
    )
