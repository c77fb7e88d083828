"""Query-string filters shared by the JSON routes and the pages: the audit log's and the
statistics' date range."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from starlette.requests import Request

from audit import log
from foundation.database import utcnow
from foundation.errors import Invalid
from server.http import parse_count, parse_date, query_param


def audit_filter(request: Request) -> log.Filter:
    """The audit log filter from the query string (?entity, entity_id, actor, from, to, before_id, limit)."""
    tz = ZoneInfo(request.app.state.settings.timezone)

    def day_start(text: str) -> dt.datetime:
        return dt.datetime.combine(parse_date(text), dt.time(), tz)

    until = query_param(request, "to", day_start)
    return log.Filter(
        entity=request.query_params.get("entity") or None,
        entity_id=query_param(request, "entity_id", parse_count),
        actor=request.query_params.get("actor") or None,
        since=query_param(request, "from", day_start),
        until=until + dt.timedelta(days=1) if until else None,
        before_id=query_param(request, "before_id", parse_count),
        limit=query_param(request, "limit", parse_count, 100),
    )



def statistics_range(request: Request) -> tuple[dt.date, dt.date]:
    """?from= and ?to= (office dates, both included); default this month so far."""
    today = utcnow().astimezone(ZoneInfo(request.app.state.settings.timezone)).date()
    first = query_param(request, "from", parse_date, today.replace(day=1))
    last = query_param(request, "to", parse_date, today)
    if last < first:
        raise Invalid("'to' must not be before 'from'", field="to")
    return first, last
