"""Who is in a room and who may see and hear whom: plain state and rules, no media.

Hosts, experts and observers are in the room as soon as they join; parties and the on-site
terminal wait in the lobby until the host admits them. An observer receives but never sends and
appears in nobody's list. During a private caucus (背对背调解) the room is split in two sides
that receive nothing from each other; observers stay on the host's side.
"""
from __future__ import annotations

import dataclasses
from typing import Any

# Who joins straight into the room; everyone else waits in the lobby.
ADMITTED_ON_JOIN = frozenset({"host", "expert", "observer"})
MODERATORS = frozenset({"host"})


@dataclasses.dataclass
class Member:
    """A participant in a room, as the room sees them."""

    peer_id: str
    info: dict[str, Any]
    admitted: bool = False
    connected: bool = True
    reconnecting: bool = False
    audio_muted: bool = False
    video_muted: bool = False
    # Muted by the host: their audio is not forwarded until they unmute themselves.
    held_mute: bool = False
    hand_raised: bool = False
    screen_sharing: bool = False
    audio_only: bool = False  # asked to receive voices only (a slow phone)
    weak_link: bool = False  # the server finds their downlink or uplink weak
    problem: str | None = None  # why their browser cannot join (an error code), for the host

    @property
    def kind(self) -> str:
        return str(self.info.get("kind", ""))

    @property
    def is_moderator(self) -> bool:
        return self.kind in MODERATORS

    @property
    def is_observer(self) -> bool:
        return self.kind == "observer"

    def public(self) -> dict[str, Any]:
        """What others see of this member."""
        return {
            "peer_id": self.peer_id, **self.info, "admitted": self.admitted,
            "audio_muted": self.audio_muted or self.held_mute, "video_muted": self.video_muted,
            "hand_raised": self.hand_raised, "reconnecting": self.reconnecting,
            "screen_sharing": self.screen_sharing, "weak_link": self.weak_link, "problem": self.problem,
        }


@dataclasses.dataclass
class Room:
    """One session's room."""

    room_id: str
    members: dict[str, Member] = dataclasses.field(default_factory=dict)
    caucus: frozenset[str] | None = None
    recording: bool = False
    # While the host's request to record waits for the parties: each party's answer so far.
    consent: dict[str, bool | None] | None = None

    def host_side(self, member: Member) -> bool:
        """During a caucus: whether the member is on the caucus side."""
        assert self.caucus is not None
        if member.is_observer:
            return any(m.is_moderator and m.peer_id in self.caucus for m in self.members.values())
        return member.peer_id in self.caucus

    def parties(self) -> list[Member]:
        """The admitted parties (and on-site terminals), whose consent recording needs."""
        return [m for m in self.members.values() if m.admitted and m.kind in ("party", "onsite")]

    def in_room(self, member: Member) -> bool:
        """Admitted and connected: taking part in the media."""
        return member.admitted and member.connected and not member.reconnecting

    def receives(self, subscriber: Member, publisher: Member) -> bool:
        """Whether the subscriber gets the publisher's media."""
        if subscriber is publisher or publisher.is_observer:
            return False
        if not (self.in_room(subscriber) and self.in_room(publisher)):
            return False
        if self.caucus is not None and self.host_side(subscriber) != self.host_side(publisher):
            return False
        return True

    def listed_for(self, viewer: Member) -> list[dict[str, Any]]:
        """The participant list a member sees: moderators also see the lobby."""
        people = []
        for member in sorted(self.members.values(), key=lambda m: m.peer_id):
            if member.is_observer and member is not viewer:
                continue
            if not member.admitted and not viewer.is_moderator and member is not viewer:
                continue
            entry = member.public()
            if self.caucus is not None:
                entry["in_caucus"] = self.host_side(member)
            people.append(entry)
        return people
