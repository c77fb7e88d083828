"""Sending e-mail through the configured SMTP server (aiosmtplib)."""
from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from foundation.config import Settings

logger = logging.getLogger(__name__)
SMTPError = aiosmtplib.SMTPException  # what a failed send raises (callers catch mail.SMTPError)


def build_message(
    settings: Settings, to: str, subject: str, body: str,
    *, calendar: bytes | None = None, calendar_method: str = "REQUEST",
) -> EmailMessage:
    """A plain-text message, with an ICS invitation attached when given."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if calendar is not None:
        message.add_attachment(
            calendar, maintype="text", subtype="calendar",
            params={"method": calendar_method, "charset": "utf-8"}, filename="invite.ics",
        )
    return message


async def send(
    settings: Settings, to: str, subject: str, body: str,
    *, calendar: bytes | None = None, calendar_method: str = "REQUEST",
) -> bool:
    """Send a message; False (and a log line) when no SMTP server is configured."""
    if not settings.smtp_host:
        logger.warning("no SMTP server configured; not sent to %s: %s\n%s", to, subject, body)
        return False
    message = build_message(settings, to, subject, body, calendar=calendar, calendar_method=calendar_method)
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        start_tls=settings.smtp_starttls,
        timeout=30,
    )
    return True
