"""Calendar invitations (RFC 5545) built with icalendar."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//Tiaojie//Remote mediation//ZH"


def session_uid(session_id: int, host: str) -> str:
    """A UID that stays the same across reschedules, so calendars update the one event."""
    return f"tiaojie-session-{session_id}@{host}"


def session_event(
    *, uid: str, sequence: int, start: dt.datetime, end: dt.datetime, summary: str, description: str,
    location: str, organizer: str, attendees: Iterable[tuple[str, str, str]], cancelled: bool = False,
) -> Event:
    """One VEVENT; attendees are (email, name, role label)."""
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", dt.datetime.now(dt.timezone.utc))
    event.add("dtstart", start.astimezone(dt.timezone.utc))
    event.add("dtend", end.astimezone(dt.timezone.utc))
    event.add("summary", summary)
    event.add("description", description)
    event.add("location", location)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organizer_address = vCalAddress(f"mailto:{organizer}")
    organizer_address.params["cn"] = vText("调解中心")
    event["organizer"] = organizer_address
    for email, name, role in attendees:
        address = vCalAddress(f"mailto:{email}")
        address.params["cn"] = vText(f"{name}（{role}）")
        address.params["role"] = vText("REQ-PARTICIPANT")
        address.params["partstat"] = vText("NEEDS-ACTION")
        event.add("attendee", address, encode=False)
    return event


def calendar(events: Iterable[Event], method: str | None = None) -> bytes:
    """A VCALENDAR with the events; METHOD for invitations (REQUEST, CANCEL), none for feeds."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    for event in events:
        cal.add_component(event)
    ical: bytes = cal.to_ical()
    return ical
