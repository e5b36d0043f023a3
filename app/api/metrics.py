"""`/metrics` in the Prometheus text format: the live hub, sockets, jobs and videos.

Global figures, so not for every user: enabled by `METRICS_TOKEN` and scraped with that bearer token.
"""

from __future__ import annotations

import gc
import hmac
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotAuthorizedException, NotFoundException
from sqlalchemy import text

from app.api.deps import AppRuntime
from app.auth import presented_token
from app.live.hub import Hub
from app.pgversion import read_server_version
from app.runtime import LiveCounters
from app.services import jobs as job_service
from app.services import quota as quota_service
from db.queries import queries

Sample = tuple[str, str, dict[str, str], float]
"""(name, help, labels, value)"""


def render(samples: list[Sample]) -> str:
    """(name, help, labels, value) → exposition format, one HELP/TYPE per metric name."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, help_text, labels, value in samples:
        if name not in seen:
            seen.add(name)
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        label_text = ",".join(f'{key}="{val}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return "\n".join(lines) + "\n"


def live_samples(hub: Hub, counters: LiveCounters) -> list[Sample]:
    status = hub.status()
    figures: list[tuple[str, str, float]] = [
        ("sockets_open", "Open progress WebSockets in this process.", counters.sockets_open),
        ("sockets_total", "Progress WebSockets opened since start.", counters.sockets_total),
        ("events_delivered_total", "Event frames sent (counted as sessions end).", counters.events_sent),
        ("snapshots_sent_total", "Snapshot frames sent (connect or overflow).", counters.snapshots_sent),
        ("hub_connected", "1 while the LISTEN connection is up.", float(status.connected)),
        ("hub_channels", "User channels LISTENed.", status.channels),
        ("hub_subscribers", "Hub subscriptions.", status.subscribers),
        ("hub_reconnects_total", "LISTEN connection losses recovered.", status.reconnects),
        (
            "hub_events_caught_up_total",
            "Events delivered from the table after a miss.",
            status.events_caught_up,
        ),
        ("hub_notifications_total", "Notifications received.", status.notifications),
        (
            "gc_frozen_objects",
            "Objects out of the cyclic GC's reach (app/gc_policy.py).",
            gc.get_freeze_count(),
        ),
    ]
    return [(f"bookmarks_{name}", help_text, {}, value) for name, help_text, value in figures]


def database_samples(rows: list[tuple[str, str, float]]) -> list[Sample]:
    samples: list[Sample] = []
    for kind, status, value in rows:
        if kind == "notify_queue":
            samples.append(
                ("bookmarks_pg_notification_queue_usage", "pg_notification_queue_usage().", {}, value)
            )
        else:
            samples.append(
                (f"bookmarks_{kind}", f"{kind.capitalize()} by status.", {"status": status}, value)
            )
    return samples


@get("/metrics", operation_id="metrics", include_in_schema=False)  # no media_type: errors stay JSON
async def metrics(request: Request[Any, Any, Any], runtime: AppRuntime) -> Response[str]:
    token = runtime.settings.metrics_token
    if token is None:
        raise NotFoundException("metrics are disabled; set METRICS_TOKEN to enable them")
    given = presented_token(request) or ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise NotAuthorizedException("metrics need 'Authorization: Bearer <METRICS_TOKEN>'")
    samples = live_samples(runtime.hub, runtime.counters)
    async with runtime.sessions() as session:
        rows = (await session.execute(text(queries["metrics_counts"]))).all()
        stalled = await job_service.count_stalled(session, runtime.settings.job_heartbeat_s)
        spent = await quota_service.today(session)
        samples += (await read_server_version(session)).metric_samples()
    samples += database_samples([(kind, status, value) for kind, status, value in rows])
    samples.append(
        ("bookmarks_jobs_stalled", "Jobs running with no live heartbeat (worker dead or hung).", {}, stalled)
    )
    samples += [
        (
            "bookmarks_youtube_quota_units_today",
            "Data API units spent today (Pacific time).",
            {},
            spent.units,
        ),
        (
            "bookmarks_youtube_quota_units_budget",
            "YOUTUBE_DAILY_QUOTA: units a day the workers may spend.",
            {},
            runtime.settings.youtube_daily_quota,
        ),
    ]
    return Response(render(samples), media_type="text/plain; version=0.0.4; charset=utf-8")
