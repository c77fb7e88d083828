"""Signaling over a real WebSocket on a real server, with real aiortc clients and invite tokens."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

import httpx
import pytest
import websockets

from foundation.config import Settings
from tests.conftest import STAFF_PASSWORD, Live, Running, add_staff, book
from tests.signaling.media_client import COLOURS, MediaClient
from tests.signaling.test_forwarding import close_to, wait_until


class WsClient:
    """A MediaClient speaking to the server over the signaling WebSocket."""

    def __init__(self, index: int, socket: Any) -> None:
        self.media = MediaClient(index)
        self.socket = socket
        self.messages: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.peer_id: str | None = None
        self._answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                self.messages.append(message)
                self.media.on_message(message)
                if message["type"] == "joined":
                    self.peer_id = message["peer_id"]
                elif message["type"] == "answer" and not self._answer.done():
                    self._answer.set_result(message["sdp"])
                elif message["type"] == "error":
                    self.errors.append(message)
        except websockets.ConnectionClosed:
            pass

    async def connect_media(self) -> None:
        await self.socket.send(json.dumps({"type": "offer", "sdp": await self.media.offer()}))
        await self.media.accept(await asyncio.wait_for(self._answer, 10))

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()
        await self.media.close()


async def admit(host: WsClient, *guests: WsClient) -> None:
    """The host lets people in from the lobby."""
    for guest in guests:
        await host.socket.send(json.dumps({"type": "moderate", "action": "admit", "peer_id": guest.peer_id}))
    await wait_until(lambda: all(any(m["type"] == "admitted" for m in g.messages) for g in guests), 5)


async def recorded(live: Live, kind: str, count: int = 1) -> None:
    """Wait until the room's record holds `count` events of this kind (the server has taken
    in what the test did, however busy the machine)."""
    from scheduling.room_record import session_record

    deadline = asyncio.get_running_loop().time() + 20
    while True:
        async with live.app.state.db_sessions() as db:
            if [e["kind"] for e in await session_record(db, live.session["id"])].count(kind) >= count:
                return
        assert asyncio.get_running_loop().time() < deadline, f"no {kind} recorded"
        await asyncio.sleep(0.05)


async def join(live: Live, index: int, token: str, session_id: int | None = None) -> WsClient:
    socket = await websockets.connect(live.ws_url(session_id))
    await socket.send(json.dumps({"type": "join", "token": token}))
    client = WsClient(index, socket)
    await wait_until(lambda: client.peer_id is not None or client.errors, 5)
    return client


async def test_three_participants_over_websocket(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    party = await join(live, 1, live.token("party"))
    expert = await join(live, 2, live.token("expert"))
    clients = [host, party, expert]
    try:
        for client in clients:
            assert client.errors == []
            await client.connect_media()
        assert any(m["type"] == "lobby" for m in party.messages)
        await admit(host, party)
        def listed() -> list[dict[str, Any]]:
            return next(m for m in reversed(expert.messages) if m["type"] == "participants")["participants"]

        await wait_until(lambda: len(listed()) == 3, 5)  # the party appears once admitted
        people = listed()
        assert sorted(p["role"] for p in people) == ["host", "legal_officer", "party"]
        assert {p["name"] for p in people} >= {"张建军", "专家0"}

        def all_media() -> bool:
            return all(
                c.peer_id and o.peer_id in c.media.slot_owner and c.media.received_from(o.peer_id).video_frames >= 5
                for c in clients for o in clients if o is not c
            )

        await wait_until(all_media, 20)
        for c in clients:
            for o in clients:
                if o is not c:
                    assert close_to(c.media.received_from(o.peer_id).last_yuv, COLOURS[o.media.index])

        # Chat reaches everyone, with the sender's name and role.
        await party.socket.send(json.dumps({"type": "chat", "text": "大家好"}))
        await wait_until(lambda: all(any(m["type"] == "chat" for m in c.messages) for c in clients), 5)
        chat = next(m for m in host.messages if m["type"] == "chat")
        assert chat["text"] == "大家好" and chat["name"] == "张建军" and chat["role"] == "party"

        # Bad messages get an error for that client only; media keeps flowing for all.
        for bad in ("{nope", json.dumps([1]), json.dumps({"type": "dance"}), json.dumps({"type": "offer", "sdp": "v=0 garbage"}),
                    json.dumps({"type": "chat", "text": 5})):
            await party.socket.send(bad)
        await wait_until(lambda: len(party.errors) == 5, 5)
        assert [e["code"] for e in party.errors] == ["bad_json", "bad_message", "unknown_type", "bad_state", "bad_message"]
        assert host.errors == [] and expert.errors == []
        before = host.media.received_from(party.peer_id).video_frames
        await wait_until(lambda: host.media.received_from(party.peer_id).video_frames > before + 10)

        # A bad first offer is refused; a good one afterwards still works.
        second = await join(live, 3, live.token("party", 1))
        await second.socket.send(json.dumps({"type": "offer", "sdp": "v=0 garbage"}))
        await wait_until(lambda: second.errors, 5)
        assert second.errors[0]["code"] == "bad_offer"
        await second.connect_media()
        await admit(host, second)
        await wait_until(lambda: second.peer_id in host.media.slot_owner
                         and host.media.received_from(second.peer_id).video_frames > 5)
        await second.close()

        # A goodbye frees the slot for the others.
        await expert.socket.send(json.dumps({"type": "leave"}))
        await wait_until(lambda: expert.peer_id not in host.media.slot_owner, 5)
    finally:
        for client in clients:
            await client.close()


async def test_bad_tokens_are_refused(live: Live) -> None:
    garbage = await join(live, 0, "not-a-token")
    assert garbage.errors[0]["code"] == "invite_401"
    wrong_room = await join(live, 1, live.token("party"), session_id=live.session["id"] + 1000)
    assert wrong_room.errors[0]["code"] == "invite_403"
    not_number = await join(live, 1, live.token("party"), session_id="abc")  # type: ignore[arg-type]
    assert not_number.errors[0]["code"] == "not_found"
    for client in (garbage, wrong_room, not_number):
        await wait_until(lambda c=client: c.socket.close_code is not None, 5)
        assert client.socket.close_code == 4403
        await client.close()


async def test_join_must_come_first(live: Live) -> None:
    socket = await websockets.connect(live.ws_url())
    await socket.send(json.dumps({"type": "offer", "sdp": "x"}))
    reply = json.loads(await socket.recv())
    assert reply["code"] == "join_first"
    await socket.close()


async def test_a_silent_socket_is_told_and_closed(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.api import rooms

    monkeypatch.setattr(rooms, "JOIN_TIMEOUT_S", 0.5)
    socket = await websockets.connect(live.ws_url())
    assert json.loads(await asyncio.wait_for(socket.recv(), 5))["code"] == "join_timeout"
    await asyncio.wait_for(socket.wait_closed(), 5)
    assert socket.close_code == 4408


async def test_room_closed_until_host_opens_it(live: Live) -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    dispute = (await live.staff.post("/api/disputes", json={"title": "租房", "dispute_type": "rental",
                                                            "parties": [{"name": "赵", "side": "applicant"}]})).json()
    expert = (await live.staff.post("/api/experts", json={"name": "王律师", "role": "lawyer", "email": "w@e.cn"})).json()
    session = await book(live.staff, later, [expert["id"]], dispute["id"])
    future = Live(live.base, live.staff, session)
    party = await join(future, 0, future.token("party"))
    assert party.errors[0]["code"] == "room_closed"
    host = await join(future, 1, future.token("host"))
    assert host.errors == [] and host.peer_id
    party = await join(future, 2, future.token("party"))
    assert party.errors == [] and party.peer_id
    await host.close()
    await party.close()


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest) -> Settings:
    return make_settings(media_workers=getattr(request, "param", 0))


async def host_and_party(live: Live) -> list[WsClient]:
    """The host and a party in the room with their media connected (the party not yet admitted)."""
    clients = [await join(live, 0, live.token("host")), await join(live, 1, live.token("party"))]
    for client in clients:
        await client.connect_media()
    return clients


async def media_flows(clients: list[WsClient]) -> None:
    """Wait until everyone receives everyone else's video."""
    await wait_until(lambda: all(
        o.peer_id in c.media.slot_owner and c.media.received_from(o.peer_id).video_frames >= 10
        for c in clients for o in clients if o is not c), 20)


@pytest.mark.parametrize("settings", [2], indirect=True)
async def test_rooms_run_in_worker_processes(live: Live) -> None:
    clients = await host_and_party(live)
    host, party = clients
    try:
        await admit(host, party)
        await media_flows(clients)
        assert close_to(host.media.received_from(party.peer_id).last_yuv, COLOURS[1])
        hub = live.app.state.media
        stats = await hub.stats()
        assert stats["workers"] == 2 and stats["peers"] == 2 and stats["forwarded_packets"] > 0
        busy = [w for w in stats["per_worker"] if w["peers"]]
        assert len(busy) == 1  # the whole room is pinned to one worker
        await party.socket.send("{broken")
        await wait_until(lambda: party.errors, 5)
        assert party.errors[0]["code"] == "bad_json"
    finally:
        for client in clients:
            await client.close()


async def test_removed_link_cannot_rejoin_and_the_record_is_kept(live: Live) -> None:
    from scheduling.room_record import session_record

    host = await join(live, 0, live.token("host"))
    expert = await join(live, 1, live.token("expert"))
    party = await join(live, 2, live.token("party"))
    await admit(host, party)
    await party.socket.send(json.dumps({"type": "chat", "text": "请专家讲讲法律规定"}))
    await host.socket.send(json.dumps({"type": "moderate", "action": "remove", "peer_id": expert.peer_id, "revoke": True}))
    await wait_until(lambda: any(m["type"] == "removed" and m["revoked"] for m in expert.messages), 5)
    await expert.close()
    await recorded(live, "remove")
    again = await join(live, 1, live.token("expert"))
    assert again.errors and again.errors[0]["code"] == "invite_403"
    async with live.app.state.db_sessions() as db:
        events = await session_record(db, live.session["id"])
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["join", "join"] and "admit" in kinds and "chat" in kinds and "remove" in kinds
    chat = next(e for e in events if e["kind"] == "chat")
    assert chat["data"]["text"] == "请专家讲讲法律规定" and chat["participant_id"] is not None
    for client in (host, party, again):
        await client.close()


async def test_admitted_once_admitted_for_the_session_and_removed_for_now_back_to_the_lobby(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    party = await join(live, 2, live.token("party"))
    await admit(host, party)
    await party.socket.send(json.dumps({"type": "leave"}))  # 离开, or a reload: the page leaves
    await party.close()
    await recorded(live, "leave")
    again = await join(live, 2, live.token("party"))
    assert next(m for m in again.messages if m["type"] == "joined")["admitted"] is True
    assert not any(m["type"] == "lobby" for m in again.messages)

    await host.socket.send(json.dumps({"type": "moderate", "action": "remove", "peer_id": again.peer_id}))
    await wait_until(lambda: any(m["type"] == "removed" and not m["revoked"] for m in again.messages), 5)
    await again.close()
    await recorded(live, "leave", 2)
    back = await join(live, 2, live.token("party"))  # the link still opens the room: the lobby
    assert not back.errors and next(m for m in back.messages if m["type"] == "joined")["admitted"] is False
    for client in (host, back):
        await client.close()


@pytest.mark.parametrize("settings", [0], indirect=True)
async def test_ice_servers_reach_the_client(live: Live) -> None:
    import dataclasses

    state = live.app.state
    state.settings = dataclasses.replace(
        state.settings, stun_urls=("stun:127.0.0.1:3478",), turn_urls=("turn:127.0.0.1:3478",), turn_secret="k",
    )
    client = await join(live, 0, live.token("host"))
    config = next(m for m in client.messages if m["type"] == "config")
    assert config["ice_servers"][0]["urls"] == ["stun:127.0.0.1:3478"]
    assert config["ice_servers"][1]["username"].endswith(f":{client.peer_id}")
    await client.close()


async def test_no_rejoining_an_ended_session(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    await host.socket.send(json.dumps({"type": "moderate", "action": "end"}))
    await wait_until(lambda: any(m["type"] == "ended" for m in host.messages), 5)
    await host.close()
    await recorded(live, "end")
    party = await join(live, 1, live.token("party"))
    assert party.errors and party.errors[0]["code"] == "ended"
    await party.close()


async def test_a_flood_from_the_lobby_is_rate_limited(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    party = await join(live, 1, live.token("party"))
    try:
        await wait_until(lambda: any(m["type"] == "participants" and any(p["kind"] == "party" for p in m["participants"])
                                     for m in host.messages), 5)
        before = len(host.messages)
        for n in range(3000):
            await party.socket.send(json.dumps({"type": "hand", "raised": n % 2 == 0}))
        await party.socket.send(json.dumps({"type": "chat", "text": "x" * 2001}))
        await wait_until(lambda: any(e["code"] == "rate_limited" for e in party.errors), 10)
        await asyncio.sleep(1.5)  # what the server relays of the flood (an upper bound: a busy machine relays less)
        relayed = len(host.messages) - before
        assert relayed < 150, f"the host received {relayed} messages from 3,000 toggles"
        limited = [e for e in party.errors if e["code"] == "rate_limited"]
        assert len(limited) < 50, len(limited)
        # Chat has its own, stricter limit: six messages at once, the sixth is dropped.
        await asyncio.sleep(6)
        admitted = party.peer_id
        await host.socket.send(json.dumps({"type": "moderate", "action": "admit", "peer_id": admitted}))
        await wait_until(lambda: any(m["type"] == "admitted" for m in party.messages), 5)
        told = len([e for e in party.errors if e["code"] == "rate_limited"])
        for n in range(6):
            await party.socket.send(json.dumps({"type": "chat", "text": f"第{n}条"}))
        # The sixth is refused (its sender told so), after the five before it were relayed.
        await wait_until(lambda: len([e for e in party.errors if e["code"] == "rate_limited"]) > told, 10)
        await wait_until(lambda: len([m for m in host.messages if m["type"] == "chat"]) >= 5, 10)
        chats = [m["text"] for m in host.messages if m["type"] == "chat"]
        assert chats == [f"第{n}条" for n in range(5)], chats
    finally:
        await host.close()
        await party.close()


async def test_binary_and_deeply_nested_frames_get_errors_and_the_socket_stays(live: Live) -> None:
    socket = await websockets.connect(live.ws_url())
    await socket.send(b"\x00\x01binary")
    assert json.loads(await socket.recv())["code"] == "bad_message"
    await socket.wait_closed()  # a bad first frame is a refusal
    party = await join(live, 1, live.token("party"))
    try:
        await party.socket.send(b"\x00\x01binary")
        await party.socket.send("[" * 5000 + "]" * 5000)
        await party.socket.send(json.dumps({"type": "hand", "raised": True}))
        await wait_until(lambda: len(party.errors) >= 2, 5)
        assert [e["code"] for e in party.errors[:2]] == ["bad_message", "bad_json"]
        assert party.socket.close_code is None
    finally:
        await party.close()


async def test_an_offer_without_vp8_gets_a_clear_error_and_the_host_sees_why(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    party = await join(live, 1, live.token("party"))
    try:
        offer = await party.media.offer()
        h264_only = offer.replace("VP8/90000", "H264/90000")
        assert "VP8" not in h264_only
        await party.socket.send(json.dumps({"type": "offer", "sdp": h264_only}))
        await wait_until(lambda: party.errors, 10)
        assert party.errors[0]["code"] == "unsupported_codec" and party.errors[0]["missing"] == ["video/VP8"]

        def problem() -> object:
            listed = [m for m in host.messages if m["type"] == "participants"]
            return listed and {p["peer_id"]: p["problem"] for p in listed[-1]["participants"]}.get(party.peer_id)

        await wait_until(lambda: problem() == "unsupported_codec", 10)  # the host is told why, not 重新连接中
    finally:
        await party.close()
        await host.close()


@pytest.mark.parametrize("settings", [2], indirect=True)
async def test_a_killed_media_worker_is_replaced_and_its_room_comes_back(live: Live, caplog: Any) -> None:
    clients = await host_and_party(live)
    host, party = clients
    try:
        await admit(host, party)
        hub = live.app.state.media
        room = str(live.session["id"])
        dead = hub.process_of(room)
        caplog.set_level(logging.INFO, logger="signaling.cluster.workers")
        dead.kill()
        await wait_until(lambda: all(any(e["code"] == "media_restart" for e in c.errors) for c in clients), 10)
        # The standby worker took its place (no new process to wait for); the pages reconnect at
        # once with the same links; media flows again, the party is still admitted.
        for client in clients:
            await client.close()
        clients = await host_and_party(live)
        host, party = clients
        fresh = hub.process_of(room)
        assert fresh is not None and fresh is not dead and fresh.is_alive() and hub.workers_down() == 0
        async with httpx.AsyncClient(base_url=live.base) as client:
            assert (await client.get("/healthz")).json()["status"] == "ok"
        await media_flows(clients)
        assert not any(m["type"] == "lobby" for m in party.messages)
        assert (await hub.stats())["workers"] == 2
        assert any("the standby takes its place" in r.getMessage() for r in caplog.records)
        assert not [r for r in caplog.records if r.exc_info], "the web process logged a traceback"
    finally:
        for client in clients:
            await client.close()


async def test_disabling_the_staff_account_that_holds_the_host_link_ends_the_hosts_place(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    expert = await join(live, 1, live.token("expert", 0))
    try:
        assert host.errors == [] and host.peer_id is not None
        await add_staff(Running(app=live.app, clients=[]), "boss", role="admin")
        async with httpx.AsyncClient(base_url=live.base) as boss:
            csrf = (await boss.get("/api/auth/csrf")).json()["csrf_token"]
            login = await boss.post("/api/auth/login", json={"username": "boss", "password": STAFF_PASSWORD}, headers={"X-CSRF-Token": csrf})
            boss.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            clerk = next(a for a in (await boss.get("/api/staff")).json() if a["username"] == "staff1")
            assert (await boss.patch(f"/api/staff/{clerk['id']}", json={"active": False})).status_code == 200
        # Before: the host link, held by no account, stayed in the room after its holder was disabled.
        await wait_until(lambda: any(m["type"] == "removed" for m in host.messages), 2)
        assert next(m for m in host.messages if m["type"] == "removed")["reason"] == "account_disabled"
        await asyncio.wait_for(host.socket.wait_closed(), 2)
        again = await join(live, 2, live.token("host"))
        assert [e["code"] for e in again.errors] == ["invite_403"]
        await again.close()
        assert expert.errors == [] and not any(m["type"] == "removed" for m in expert.messages)
    finally:
        for client in (host, expert):
            await client.close()


async def test_a_link_that_ends_ends_its_holders_place_in_the_room_at_once(live: Live) -> None:
    host = await join(live, 0, live.token("host"))
    first, second = await join(live, 1, live.token("expert", 0)), await join(live, 2, live.token("expert", 1))
    try:
        for client in (host, first, second):
            await client.connect_media()
        await wait_until(lambda: all(host.peer_id in c.media.slot_owner and c.media.received_from(host.peer_id).video_frames >= 5
                                     for c in (first, second)), 20)
        experts = [p for p in live.session["participants"] if p["kind"] == "expert"]

        # Revoked on this node: the holder is told why, their socket closes, nothing more reaches them.
        revoked = await live.staff.post(f"/api/sessions/{live.session['id']}/revoke", json={"participant_id": experts[0]["id"]})
        assert revoked.status_code == 200
        await wait_until(lambda: any(m["type"] == "removed" for m in first.messages), 2)
        assert next(m for m in first.messages if m["type"] == "removed")["reason"] == "revoked"
        await asyncio.wait_for(first.socket.wait_closed(), 2)
        assert first.socket.close_code == 4403
        frames = first.media.received_from(host.peer_id).video_frames
        await host.socket.send(json.dumps({"type": "chat", "text": "撤销之后"}))
        await asyncio.sleep(1.5)
        assert first.media.received_from(host.peer_id).video_frames <= frames + 2  # what was on the wire already
        assert not any(m["type"] == "chat" for m in first.messages)
        await wait_until(lambda: first.peer_id not in {
            p["peer_id"] for p in next(m for m in reversed(host.messages) if m["type"] == "participants")["participants"]}, 5)

        # Changed elsewhere (another node, the command line): the sweep finds it within seconds.
        from sqlalchemy import update

        from experts.models import Expert

        async with live.app.state.db_sessions() as db, db.begin():
            await db.execute(update(Expert).where(Expert.id == experts[1]["expert_id"]).values(active=False))
        await wait_until(lambda: any(m["type"] == "removed" for m in second.messages), 5)
        assert next(m for m in second.messages if m["type"] == "removed")["reason"] == "account_disabled"
        assert host.errors == [] and not any(m["type"] == "removed" for m in host.messages)
    finally:
        for client in (host, first, second):
            await client.close()


@pytest.mark.parametrize("settings", [2], indirect=True)
async def test_a_socket_that_closes_after_its_person_was_removed_logs_no_traceback(live: Live, caplog: Any) -> None:
    """The worker lets a removed person go; their socket closing afterwards raised `join first`
    from the hub (a traceback for every such socket)."""
    host = await join(live, 0, live.token("host"))
    party = await join(live, 2, live.token("party"))
    await admit(host, party)
    await host.socket.send(json.dumps({"type": "moderate", "action": "remove", "peer_id": party.peer_id, "revoke": True}))
    await wait_until(lambda: any(m["type"] == "removed" for m in party.messages), 5)
    await asyncio.sleep(0.5)  # the worker's word that the person is gone reaches the hub
    await party.close()
    await recorded(live, "remove")
    await asyncio.sleep(0.5)
    await host.close()
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
