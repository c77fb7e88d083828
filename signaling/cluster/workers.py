"""Media worker processes: one per core, each room pinned to one of them.

One Python process forwards on one core. The web process keeps the WebSockets and relays each
participant's messages to the worker that holds their room, over a Unix socket pair carrying
newline-delimited JSON; a worker runs the rooms (signaling/room/rooms.py) and sends back the messages for each
participant. A room goes to the worker with the fewest participants when its first participant
arrives (one that says it is overloaded only if all are) and stays there until it is empty.

A worker that dies is replaced at once, by a standby worker started beforehand (and a new standby
is started), or by a new one if there is none: its rooms move to the new process, and each of their
participants is told (`media_restart`) so that the page reconnects by itself; whoever the host
had admitted comes back admitted (the room's record in the database says so).
"""
from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import signal
import socket
import time
from collections import Counter
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer

from foundation import aio
from signaling.cluster.hub import REJOIN, Send
from signaling.errors import SignalingError
from signaling.room.rooms import Record, Rooms, no_record

logger = logging.getLogger(__name__)
_LIMIT = 4 * 1024 * 1024  # one line carries at most an SDP
READY_TIMEOUT_S = 60  # a worker imports aiortc and its codecs before it can take rooms


class _Worker:
    """The web process's end of one worker."""

    def __init__(
        self, index: int, ice_servers: list[dict[str, Any]], reconnect_timeout_s: float, recordings_dir: str | None,
    ) -> None:
        self.index = index
        parent, child = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(
            target=worker_main, args=(child, ice_servers, reconnect_timeout_s, recordings_dir), name=f"tiaojie-media-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self._socket = parent
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        """Connect to the worker and wait until it is ready (its imports done, its signals set)."""
        self.reader, self.writer = await asyncio.open_unix_connection(sock=self._socket, limit=_LIMIT)
        async with asyncio.timeout(READY_TIMEOUT_S):
            ready = await self.reader.readline()
        if json.loads(ready or b"{}").get("op") != "ready":
            raise RuntimeError(f"media worker {self.index} did not start (exit code {self.process.exitcode})")

    def send(self, command: dict[str, Any]) -> None:
        """Send a command; to a worker that has died (being replaced) it goes nowhere, and that is
        no error: its rooms start afresh on the new worker."""
        assert self.writer is not None
        if self.writer.is_closing():
            logger.debug("media worker %d is gone: %s dropped", self.index, command.get("op"))
            return
        self.writer.write(json.dumps(command).encode() + b"\n")


class WorkerHub:
    """Rooms spread over media worker processes."""

    def __init__(
        self, count: int, ice_servers: list[dict[str, Any]] | None = None, record: Record = no_record,
        reconnect_timeout_s: float = 30.0, recordings_dir: Path | None = None,
    ) -> None:
        self._count = count
        self._reconnect_timeout_s = reconnect_timeout_s
        self._recordings_dir = str(recordings_dir) if recordings_dir else None
        self._record = record
        self._ice_servers = ice_servers or []
        self._workers: list[_Worker] = []
        self._readers: list[asyncio.Task[None]] = []
        self._senders: dict[str, Send] = {}
        self._peer_room: dict[str, str] = {}
        self._room_worker: dict[str, _Worker] = {}
        self._load: Counter[int] = Counter()
        self._overloaded: set[int] = set()  # workers shedding video (their index)
        self._stats: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._starting: dict[int, asyncio.Future[_Worker]] = {}  # workers being replaced, by index
        # One more worker started and idle, to take a dead one's place at once (starting one
        # imports aiortc: seconds, and on a busy machine the most of a restart).
        self._standby: _Worker | None = None
        self._standby_starting: _Worker | None = None
        self._standby_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the worker processes."""
        for index in range(self._count):
            self._workers.append(await self._spawn(index))
        self._start_standby()

    def _start_standby(self) -> None:
        worker = self._standby_starting = self._new_worker(self._count)  # (its index until it takes a place)

        async def start() -> None:
            try:
                await self._attach(worker)
                self._standby = worker
            except Exception:
                worker.process.kill()
                # (a service being stopped signals every process at once, this one still starting
                # among them: the stop cancels this wait, and nothing is said)
                await asyncio.sleep(2)
                logger.exception("the standby media worker did not start; a dead worker is replaced by a new one")
        self._standby_task = asyncio.create_task(start(), name="media-worker-standby")

    def _new_worker(self, index: int) -> _Worker:
        return _Worker(index, self._ice_servers, self._reconnect_timeout_s, self._recordings_dir)

    async def _spawn(self, index: int) -> _Worker:
        worker = self._new_worker(index)
        await self._attach(worker)
        return worker

    async def _attach(self, worker: _Worker) -> None:
        """Wait until a started worker is ready, and read what it says from then on."""
        await worker.connect()
        self._readers.append(asyncio.create_task(self._read(worker), name=f"media-worker-{worker.index}"))

    async def _replace(self, dead: _Worker) -> None:
        """Start a worker in place of one that died (or whose output could not be read: it is
        stopped) and move its rooms there. Its rooms' people are told at once, before the new
        worker has started (seconds: it imports aiortc), so that their pages reconnect meanwhile
        rather than each wait out its own ICE timeout; a join that comes before the new worker
        is ready waits for it."""
        starting: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._starting[dead.index] = starting
        for peer_id, room in list(self._peer_room.items()):
            send = self._senders.get(peer_id)
            if self._room_worker.get(room) is dead and send is not None:
                try:
                    await send({"type": "error", "code": "media_restart",
                                "message": "the media server restarted; reconnect to continue"})
                except Exception:
                    logger.debug("could not tell %s about the restart", peer_id)
        if dead.process.is_alive():
            dead.process.kill()
            await asyncio.to_thread(dead.process.join, 5)
        standby, self._standby = self._standby, None
        logger.error("media worker %d stopped (exit code %s); %s", dead.index, dead.process.exitcode,
                     "the standby takes its place" if standby else "starting a new one")
        try:
            if standby is not None:
                standby.index = dead.index
                fresh = standby
                self._start_standby()
            else:
                fresh = await self._spawn(dead.index)
                if self._standby_task is None or self._standby_task.done():
                    self._start_standby()
        except BaseException as exc:
            starting.set_exception(exc)
            raise
        finally:
            del self._starting[dead.index]
        self._workers[dead.index] = fresh
        self._overloaded.discard(dead.index)
        for room, worker in list(self._room_worker.items()):
            if worker is dead:
                self._room_worker[room] = fresh
        starting.set_result(fresh)
        logger.info("media worker %d is back", dead.index)

    async def _read(self, worker: _Worker) -> None:
        """Act on each line the worker writes, until its output ends; then replace it. A line
        that cannot be read, or whose handling fails, is logged and skipped: it must not stop the
        rooms of the worker (before, it ended this loop and the worker's rooms went silent)."""
        assert worker.reader is not None
        try:
            async for line in worker.reader:
                try:
                    await self._reply(worker, json.loads(line))
                except Exception:
                    logger.exception("media worker %d: could not handle %.200r", worker.index, line)
        except (OSError, ValueError):  # a line over the limit, a broken socket: the stream is lost
            logger.exception("media worker %d: its output can no longer be read", worker.index)
        if self._closing:
            return
        if worker is self._standby:  # it held no rooms: another stands by
            logger.error("the standby media worker stopped (exit code %s); starting another", worker.process.exitcode)
            self._standby = None
            self._start_standby()
        else:
            await self._replace(worker)

    async def _reply(self, worker: _Worker, reply: dict[str, Any]) -> None:
        """One message from a worker: a message for a participant, a room event, or statistics."""
        if reply["op"] == "emit":
            send = self._senders.get(reply["peer"])
            if send is not None:
                try:
                    await send(reply["message"])
                except Exception:
                    logger.debug("could not deliver to %s", reply["peer"])
        elif reply["op"] == "record":
            event = reply["event"]
            if event.get("kind") == "leave":
                self._forget(event["peer_id"])
            await self._record(reply["room"], event)
        elif reply["op"] == "overloaded":  # new rooms go to the others meanwhile (signaling/media/overload.py)
            if reply["busy"]:
                self._overloaded.add(worker.index)
            else:
                self._overloaded.discard(worker.index)
        elif reply["op"] == "stats":
            future = self._stats.pop(worker.index, None)
            if future is not None and not future.done():
                future.set_result(reply["stats"])

    def process_of(self, room_id: str) -> BaseProcess | None:
        """The worker process hosting a room, if any (for monitoring and tests)."""
        worker = self._room_worker.get(room_id)
        return worker.process if worker is not None else None

    def _worker_for(self, peer_id: str) -> _Worker:
        room = self._peer_room.get(peer_id)
        if room is None:
            raise SignalingError("join first", code="bad_state")
        return self._room_worker[room]

    async def join(self, room_id: str, peer_id: str, info: dict[str, Any], send: Send) -> None:
        worker = self._room_worker.get(room_id)
        if worker is None:
            worker = min(self._workers, key=lambda w: (w.index in self._overloaded, self._load[w.index], w.index))
            self._room_worker[room_id] = worker
        if worker.index in self._starting:  # its worker died: wait for the new one (the room moves there)
            await asyncio.shield(self._starting[worker.index])
            worker = self._room_worker.get(room_id, self._workers[worker.index])
        self._senders[peer_id] = send
        if peer_id not in self._peer_room:
            self._peer_room[peer_id] = room_id
            self._load[worker.index] += 1
        worker.send({"op": "join", "room": room_id, "peer": peer_id, "info": info})

    async def handle(self, peer_id: str, message: dict[str, Any]) -> None:
        self._worker_for(peer_id).send({"op": "msg", "peer": peer_id, "message": message})

    async def leave(self, peer_id: str, send: Send | None = None) -> None:
        if send is not None and self._senders.get(peer_id) is not send:
            return  # an older connection of someone who has reconnected since
        room = self._peer_room.get(peer_id)
        if room is not None:
            self._senders.pop(peer_id, None)
            self._room_worker[room].send({"op": "leave", "peer": peer_id})

    async def disconnected(self, peer_id: str, send: Send) -> None:
        if self._senders.get(peer_id) is send:
            del self._senders[peer_id]
            room = self._peer_room.get(peer_id)
            if room is None:  # the worker had let them go already (a closing socket is no error)
                logger.debug("%s disconnected after leaving", peer_id)
                return
            self._room_worker[room].send({"op": "disconnected", "peer": peer_id})

    def _forget(self, peer_id: str) -> None:
        """The worker says this participant is gone for good."""
        room = self._peer_room.pop(peer_id, None)
        if room is None:
            return
        self._load[self._room_worker[room].index] -= 1
        if room not in self._peer_room.values():
            del self._room_worker[room]

    async def evict(self, room_ids: list[str] | None) -> None:
        """Send everyone in these rooms (None: all) to rejoin through the site, and close the rooms here."""
        leaving = [(peer_id, room) for peer_id, room in self._peer_room.items() if room_ids is None or room in room_ids]
        for peer_id, room in leaving:
            send = self._senders.pop(peer_id, None)
            if send is not None:
                try:
                    await send(REJOIN)
                except Exception:
                    logger.debug("could not send %s away", peer_id)
            self._room_worker[room].send({"op": "leave", "peer": peer_id, "reason": "moved"})

    def workers_down(self) -> int:
        return 0 if self._closing else sum(1 for worker in self._workers if not worker.process.is_alive())

    async def stats(self) -> dict[str, Any]:
        totals: dict[str, Any] = {"workers": len(self._workers), "per_worker": []}
        for worker in self._workers:
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._stats[worker.index] = future
            worker.send({"op": "stats"})
            async with asyncio.timeout(10):  # not wait_for: see scheduling/outbox.py, Deliverer._run
                stats = await future
            totals["per_worker"].append(stats)
            for key, value in stats.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
                elif isinstance(value, list):
                    totals[key] = sorted([*totals.get(key, []), *value])
        return totals

    async def close(self) -> None:
        self._closing = True
        await aio.cancel_and_wait(self._standby_task)
        starting = self._standby_starting
        if self._standby is not None:
            self._workers.append(self._standby)
        elif starting is not None and starting not in self._workers and starting.process.is_alive():
            starting.process.kill()  # (still starting: it takes no command yet)
        for worker in self._workers:
            try:
                worker.send({"op": "stop"})
                assert worker.writer is not None
                await worker.writer.drain()
            except (ConnectionError, AssertionError):
                pass
        for task in self._readers:
            task.cancel()
        for worker in self._workers:
            await asyncio.get_running_loop().run_in_executor(None, worker.process.join, 10)
            if worker.process.is_alive():
                worker.process.kill()


def worker_main(
    sock: socket.socket, ice_servers: list[dict[str, Any]], reconnect_timeout_s: float, recordings_dir: str | None,
) -> None:
    """Entry point of a media worker process. It stops when the web process tells it to, not on
    the signals a service manager sends the whole group (the web process would take that for a
    crash and start another)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    aio.run(_serve(sock, ice_servers, reconnect_timeout_s, recordings_dir))


async def _serve(
    sock: socket.socket, ice_servers: list[dict[str, Any]], reconnect_timeout_s: float, recordings_dir: str | None,
) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_LIMIT)
    writer.write(b'{"op": "ready"}\n')

    async def emit(peer_id: str, message: dict[str, Any]) -> None:
        writer.write(json.dumps({"op": "emit", "peer": peer_id, "message": message}).encode() + b"\n")

    async def record(room_id: str, event: dict[str, Any]) -> None:
        writer.write(json.dumps({"op": "record", "room": room_id, "event": event}).encode() + b"\n")

    async def overloaded(busy: bool) -> None:
        writer.write(json.dumps({"op": "overloaded", "busy": busy}).encode() + b"\n")

    engine = Rooms(
        emit, [RTCIceServer(**server) for server in ice_servers], record=record, reconnect_timeout_s=reconnect_timeout_s,
        recordings_dir=Path(recordings_dir) if recordings_dir else None, on_overload=overloaded,
    )
    async for line in reader:
        command = json.loads(line)
        op = command["op"]
        try:
            if op == "join":
                await engine.join(command["room"], command["peer"], command["info"])
            elif op == "msg":
                await engine.handle(command["peer"], command["message"])
            elif op == "leave":
                await engine.leave(command["peer"], reason=command.get("reason", "left"))
            elif op == "disconnected":
                await engine.disconnected(command["peer"])
            elif op == "stats":
                stats = {**engine.stats(), "cpu_s": time.process_time()}
                writer.write(json.dumps({"op": "stats", "stats": stats}).encode() + b"\n")
            elif op == "stop":
                break
        except SignalingError as exc:
            if "peer" in command:
                await emit(command["peer"], exc.to_message())
        except Exception:
            logger.exception("media worker failed on %s", op)
            if "peer" in command:
                await emit(command["peer"], {"type": "error", "code": "internal", "message": "media error"})
    await engine.close()
