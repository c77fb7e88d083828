"""Signed, expiring tokens (itsdangerous): expert magic links and personal invite links."""
from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from foundation.errors import Gone, Unauthorized


@dataclasses.dataclass(frozen=True)
class MagicLink:
    """What an expert's sign-in link carries."""

    expert_id: int
    token_id: str


@dataclasses.dataclass(frozen=True)
class Invite:
    """What a personal join link carries: one person, one role, one session."""

    session_id: int
    participant_id: int
    role: str
    expires_at: dt.datetime
    version: int = 1


class TokenSigner:
    """Makes and reads the application's signed tokens; each kind has its own salt."""

    def __init__(self, secret_key: str) -> None:
        self._magic = URLSafeTimedSerializer(secret_key, salt="tiaojie.magic-link")
        self._invite = URLSafeSerializer(secret_key, salt="tiaojie.invite")
        self._feed = URLSafeSerializer(secret_key, salt="tiaojie.calendar-feed")
        self._device = URLSafeTimedSerializer(secret_key, salt="tiaojie.known-device")
        # Invite tokens signed lately: a booking's answer, its messages and its pages each show
        # every participant's link, and the same invite always signs to the same token.
        self._invites: dict[tuple[int, int, str, int, int], str] = {}

    def magic_link(self, expert_id: int) -> str:
        """A sign-in token for an expert; single use is enforced by its token id."""
        return self._magic.dumps({"e": expert_id, "j": secrets.token_urlsafe(16)})

    def read_magic_link(self, token: str, max_age_s: int) -> MagicLink:
        """The link's content; Unauthorized when tampered with or expired."""
        try:
            data = self._magic.loads(token, max_age=max_age_s)
        except SignatureExpired:
            raise Unauthorized("this sign-in link has expired; ask for a new one") from None
        except BadSignature:
            raise Unauthorized("this sign-in link is not valid") from None
        return MagicLink(expert_id=int(data["e"]), token_id=str(data["j"]))

    def invite(
        self, session_id: int, participant_id: int, role: str, expires_at: dt.datetime, version: int = 1
    ) -> str:
        """A personal join link token that expires at the given time."""
        key = (session_id, participant_id, role, int(expires_at.timestamp()), version)
        token = self._invites.get(key)
        if token is None:
            if len(self._invites) >= 4096:
                self._invites.clear()
            s, p, r, x, v = key
            token = self._invites[key] = self._invite.dumps({"s": s, "p": p, "r": r, "x": x, "v": v})
        return token

    def read_invite(self, token: str, now: dt.datetime) -> Invite:
        """The invite's content; Unauthorized when tampered with, Gone when expired."""
        try:
            data = self._invite.loads(token)
            invite = Invite(
                session_id=int(data["s"]), participant_id=int(data["p"]), role=str(data["r"]),
                expires_at=dt.datetime.fromtimestamp(int(data["x"]), dt.timezone.utc),
                version=int(data.get("v", 1)),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            raise Unauthorized("this invitation link is not valid") from None
        if now >= invite.expires_at:
            raise Gone("this invitation link has expired")
        return invite

    def known_device(self, usernames: tuple[str, ...]) -> str:
        """A token that says which staff accounts logged in on this browser before."""
        return self._device.dumps(list(usernames))

    def read_known_device(self, token: str, max_age_s: int) -> tuple[str, ...]:
        """The accounts a device token names; none when tampered with or too old."""
        try:
            data = self._device.loads(token, max_age=max_age_s)
        except BadSignature:  # SignatureExpired included
            return ()
        return tuple(str(u) for u in data) if isinstance(data, list) else ()

    def calendar_feed(self, expert_id: int) -> str:
        """A token for an expert's calendar subscription."""
        return self._feed.dumps({"e": expert_id})

    def read_calendar_feed(self, token: str) -> int:
        """The expert id of a calendar subscription token."""
        try:
            return int(self._feed.loads(token)["e"])
        except (BadSignature, KeyError, TypeError, ValueError):
            raise Unauthorized("this calendar link is not valid") from None
