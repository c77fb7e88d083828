"""The room's rules: lobby, observers, caucus, participant lists."""
from __future__ import annotations

from signaling.room.state import Member, Room


def room(*members: Member) -> Room:
    return Room("1", {m.peer_id: m for m in members})


def member(peer_id: str, kind: str, admitted: bool = True) -> Member:
    return Member(peer_id=peer_id, info={"kind": kind, "name": peer_id}, admitted=admitted)


def test_lobby_members_neither_receive_nor_are_received() -> None:
    host, waiting = member("h", "host"), member("p", "party", admitted=False)
    r = room(host, waiting)
    assert not r.receives(waiting, host) and not r.receives(host, waiting)
    waiting.admitted = True
    assert r.receives(waiting, host) and r.receives(host, waiting)


def test_observer_receives_but_is_never_received_or_listed() -> None:
    host, judge, party = member("h", "host"), member("o", "observer"), member("p", "party")
    r = room(host, judge, party)
    assert r.receives(judge, host) and r.receives(judge, party)
    assert not r.receives(host, judge) and not r.receives(party, judge)
    assert [p["peer_id"] for p in r.listed_for(party)] == ["h", "p"]
    assert [p["peer_id"] for p in r.listed_for(host)] == ["h", "p"]


def test_caucus_splits_the_room_and_observer_follows_the_host() -> None:
    host, lawyer, a, b, judge = member("h", "host"), member("l", "expert"), member("a", "party"), member("b", "party"), member("o", "observer")
    r = room(host, lawyer, a, b, judge)
    r.caucus = frozenset({"h", "l", "a"})
    assert r.receives(a, host) and r.receives(host, a) and r.receives(lawyer, a)
    assert not r.receives(b, host) and not r.receives(b, a) and not r.receives(host, b)
    assert r.receives(judge, a) and not r.receives(judge, b)
    r.caucus = None
    assert r.receives(b, a) and r.receives(judge, b)


def test_moderator_sees_the_lobby_others_do_not() -> None:
    host, party, waiting = member("h", "host"), member("p", "party"), member("w", "party", admitted=False)
    r = room(host, party, waiting)
    assert [p["peer_id"] for p in r.listed_for(host)] == ["h", "p", "w"]
    assert [p["peer_id"] for p in r.listed_for(party)] == ["h", "p"]
    assert [p["peer_id"] for p in r.listed_for(waiting)] == ["h", "p", "w"]


def test_reconnecting_member_is_out_of_the_media_but_listed() -> None:
    host, party = member("h", "host"), member("p", "party")
    party.reconnecting = True
    r = room(host, party)
    assert not r.receives(host, party)
    assert next(p for p in r.listed_for(host) if p["peer_id"] == "p")["reconnecting"] is True
