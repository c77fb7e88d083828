"""The daily backup (foundation/backup.py) as a scheduled job, and what /metrics says of it.

The job only starts the backup in a thread and returns: a backup takes seconds to minutes, and
the job's transaction (its claim in `job_runs`) must not hold the database meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from foundation import backup
from foundation.config import Settings
from scheduling.scheduler import Scheduler, job_context

logger = logging.getLogger(__name__)
_running: set[asyncio.Task[None]] = set()


def source(settings: Settings) -> backup.Source:
    return backup.Source(settings.database_url, settings.data_dir, settings.secret_key)


def install(jobs: Scheduler) -> None:
    """Back up every day at TIAOJIE_BACKUP_HOUR into TIAOJIE_BACKUP_DIR, when it is set."""
    if jobs.settings.backup_dir:
        jobs.weekly("daily-backup", daily_backup, "*", jobs.settings.backup_hour, grace_s=12 * 3600)


def _back_up(settings: Settings) -> None:
    folder = Path(settings.backup_dir)
    archive = backup.create(source(settings), folder)
    removed = backup.prune(folder, settings.backup_keep)
    logger.info("backup written: %s (%d old ones removed)", archive, len(removed))


async def daily_backup(db: AsyncSession) -> None:
    """Start today's backup (in a thread; a failure is logged, and the backup's age in /metrics grows)."""
    del db
    settings = job_context().settings

    async def run() -> None:
        try:
            await asyncio.to_thread(_back_up, settings)
        except (backup.BackupError, OSError):
            logger.exception("the daily backup failed")

    task = asyncio.create_task(run(), name="daily-backup")
    _running.add(task)
    task.add_done_callback(_running.discard)


def age_s(settings: Settings) -> float | None:
    """Seconds since the newest backup in the backup folder (None: no folder, or none yet)."""
    if not settings.backup_dir:
        return None
    newest = backup.newest(Path(settings.backup_dir))
    return time.time() - newest.stat().st_mtime if newest is not None else None
