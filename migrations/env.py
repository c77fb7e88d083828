"""Alembic environment: runs migrations on the application's (async) database URL."""
from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import accounts.models  # noqa: F401, E402

# Every package's tables, so that the metadata is complete (autogenerate compares against it).
import audit.models  # noqa: F401, E402
import disputes.models  # noqa: F401, E402
import experts.models  # noqa: F401, E402
import outcomes.models  # noqa: F401, E402
import scheduling.models  # noqa: F401, E402
import scheduling.outbox  # noqa: F401, E402
import scheduling.room_record  # noqa: F401, E402
import scheduling.scheduler  # noqa: F401, E402
import signaling.cluster.placement  # noqa: F401, E402
from foundation.database import Base, create_engine, lock_schema

config = context.config
target_metadata = Base.metadata


def _include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # APScheduler creates and owns its job table; migrations leave it alone.
    return not (type_ == "table" and name == "apscheduler_jobs")


def _run(connection: Connection) -> None:
    lock_schema(connection)  # nodes that start together upgrade one after another
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
