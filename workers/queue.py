"""The SAQ queue on Postgres, and how our jobs are put on it.

SAQ's defaults (10 s timeout, no retry) would kill any real import, so the job settings are explicit:
a task beside each running job heartbeats (`job.update()`), so a dead worker is noticed within the
heartbeat (`JOB_HEARTBEAT_S`, 15 s) by SAQ's sweep and the job is retried; the rerun resumes where the
last committed batch ended.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from saq import Job as SaqJob
from saq.queue.postgres import PostgresQueue

log = logging.getLogger(__name__)

QUEUE_NAME = "bookmarks"
PROCESS_JOB = "process_job"
JOB_TIMEOUT_S = 6 * 3600
"""Fits a 50,000-video job in oEmbed mode with room to spare; heartbeats catch dead workers sooner."""
JOB_RETRIES = 10
"""SAQ's own retries: of a job whose worker died (swept) or could not reach the database. Failed attempts
are the job runner's to retry, bounded by `jobs.attempts` (workers/processing.py), which every rerun
counts; these only have to outlast that bound."""
RETRY_DELAY_S = 2.0
RETRY_BACKOFF_MAX_S = 60.0


def saq_job_for(job_id: UUID, *, heartbeat_s: int) -> SaqJob:
    return SaqJob(
        function=PROCESS_JOB,
        key=str(job_id),  # a repeat enqueue of the same job is a no-op
        kwargs={"job_id": str(job_id)},
        timeout=JOB_TIMEOUT_S,
        heartbeat=heartbeat_s,
        retries=JOB_RETRIES,
        retry_delay=RETRY_DELAY_S,
        retry_backoff=RETRY_BACKOFF_MAX_S,
    )


def make_saq_queue(dsn: str, *, max_connections: int = 10) -> PostgresQueue:
    return PostgresQueue.from_url(dsn, name=QUEUE_NAME, min_size=1, max_size=max_connections)


class JobQueue:
    """What the web side needs from the queue: enqueue, abort, and a health probe."""

    def __init__(self, saq_queue: PostgresQueue, *, heartbeat_s: int) -> None:
        self.saq_queue = saq_queue
        self.heartbeat_s = heartbeat_s

    async def connect(self) -> None:
        await self.saq_queue.connect()

    async def disconnect(self) -> None:
        await self.saq_queue.disconnect()

    async def enqueue(self, job_id: UUID) -> bool:
        """False when SAQ already has this job (key = job id), which is harmless."""
        enqueued = await self.saq_queue.enqueue(saq_job_for(job_id, heartbeat_s=self.heartbeat_s))
        return enqueued is not None

    async def is_known(self, job_id: UUID) -> bool:
        saq_job = await self.saq_queue.job(str(job_id))
        return saq_job is not None and saq_job.status not in {"complete", "failed", "aborted"}

    async def ping(self) -> dict[str, Any]:
        info = await self.saq_queue.info()
        return {
            "queued": info.get("queued", 0),
            "active": info.get("active", 0),
            "workers": len(info.get("workers", {})),
        }
