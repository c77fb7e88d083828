"""The server's own lateness, kept apart from people's links.

A busy server (other work on the machine, a media worker behind on its packets) reads each
datagram late. Taken as the packet's arrival, that lateness looked to a publisher's send-side
estimate like a queue in its uplink, and to the link judgement like a weak network: people on
perfect links were told 您的网络较慢 and their browsers stopped sending their large layer.

- `arrival_us`: when the kernel received the datagram the socket gave last (SIOCGSTAMPNS, as
  libwebrtc's PhysicalSocket reads it), on the monotonic clock, however late the event loop
  reads it; transport-cc feedback reports that time.
- `LoopLag`: how late this process's event loop runs (a timer that should fire every
  TICK_S); while it was late lately, nobody's link is judged weak from what the server saw.
- `receive_buffer`: a media socket's kernel buffer, large enough that a stalled loop does not
  drop what arrives meanwhile (the loss was blamed on the sender's link).
- `udp_drops`: what the kernel dropped for want of room in each UDP socket's buffer
  (/proc/net/udp): a second in which the server's own socket dropped packets says nothing of
  the sender's link.
"""
from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import socket
import struct
import time
from pathlib import Path

from foundation.aio import cancel_and_wait

SIOCGSTAMPNS = 0x8907  # linux/sockios.h: the receive time of the last datagram read, as a timespec
SO_RCVBUFFORCE = 33  # asm-generic/socket.h: SO_RCVBUF past net.core.rmem_max (CAP_NET_ADMIN)
_TIMESPEC = bytes(16)
TICK_S = 0.05
LATE_MS = 60.0  # a tick this much later than due: the server, not a link, is slow
LATE_WITHIN_S = 3.0  # ... and its links are not judged for this long after
RECEIVE_BUFFER = 4 * 1024 * 1024  # ~8 s of a 4 Mbit/s room's uplinks


def arrival_us(fd: int) -> int:
    """When the last datagram read from this socket reached the kernel, in monotonic
    microseconds (now, where the kernel has no stamp for it)."""
    try:
        seconds, nanoseconds = struct.unpack("qq", fcntl.ioctl(fd, SIOCGSTAMPNS, _TIMESPEC))
    except OSError:  # the first call on a socket turns the stamps on; not a socket
        return time.monotonic_ns() // 1000
    stamp_ns: int = seconds * 1_000_000_000 + nanoseconds
    return (stamp_ns - time.time_ns() + time.monotonic_ns()) // 1000


def receive_buffer(fd: int, size: int = RECEIVE_BUFFER) -> None:
    """Ask for a large kernel receive buffer (SO_RCVBUFFORCE where allowed, else up to
    net.core.rmem_max)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError:
        pass
    finally:
        sock.close()


def socket_inode(fd: int) -> int:
    return os.fstat(fd).st_ino


def udp_drops(tables: tuple[Path, ...] = (Path("/proc/net/udp"), Path("/proc/net/udp6"))) -> dict[int, int]:
    """Datagrams each UDP socket (by inode) has dropped so far for a full receive buffer."""
    drops: dict[int, int] = {}
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13:
                drops[int(fields[9])] = int(fields[12])
    return drops


class LoopLag:
    """How late the event loop runs: a timer due every TICK_S, and how much later than due it
    fired. `start()` within the loop, `stop()` at the end."""

    def __init__(self, clock: collections.abc.Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.worst_ms = 0.0  # since the last `take_worst`
        self.late_total = 0  # ticks later than LATE_MS so far (for /metrics)
        self.behind_ms = 0.0  # every tick's lag added up: how long the loop has been behind so far
        self._late_at = float("-inf")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            due = self._clock() + TICK_S
            await asyncio.sleep(TICK_S)
            self.tick((self._clock() - due) * 1000)

    def tick(self, lag_ms: float) -> None:
        """One tick of the timer, `lag_ms` after it was due."""
        self.worst_ms = max(self.worst_ms, lag_ms)
        self.behind_ms += max(0.0, lag_ms)
        if lag_ms > LATE_MS:
            self.late_total += 1
            self._late_at = self._clock()

    def take_worst(self) -> float:
        """The worst lag since the last call (ms)."""
        worst, self.worst_ms = self.worst_ms, 0.0
        return worst

    @property
    def late_lately(self) -> bool:
        """Whether the loop ran late within the last LATE_WITHIN_S."""
        return self._clock() - self._late_at < LATE_WITHIN_S
