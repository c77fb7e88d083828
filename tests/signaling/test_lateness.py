"""The server's own lateness is not blamed on people's links (signaling/media/lateness.py)."""
from __future__ import annotations

import asyncio
import socket
import time

from signaling.media import lateness
from signaling.media.bandwidth import WEAK_AFTER_S
from signaling.media.peers import ServerPeer


def test_a_datagram_read_late_keeps_the_time_it_reached_the_kernel() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        lateness.arrival_us(receiver.fileno())  # (the first call turns the stamps on)
        for _ in range(3):
            sent = time.monotonic_ns() // 1000
            sender.sendto(b"rtp", receiver.getsockname())
            time.sleep(0.1)  # the event loop is busy elsewhere
            receiver.recvfrom(100)
            read = time.monotonic_ns() // 1000
            arrived = lateness.arrival_us(receiver.fileno())
            assert sent <= arrived + 1000 and arrived - sent < 20_000, (sent, arrived)
            assert read - arrived >= 90_000
    finally:
        receiver.close()
        sender.close()


def test_media_sockets_get_a_large_buffer_and_their_drops_are_counted() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    small = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    small.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        lateness.receive_buffer(sock.fileno())
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 4 * before
        for _ in range(200):  # nobody reads: the small buffer overflows
            sender.sendto(bytes(1000), small.getsockname())
        drops = lateness.udp_drops()
        assert drops[lateness.socket_inode(small.fileno())] > 0
        assert drops[lateness.socket_inode(sock.fileno())] == 0
    finally:
        for s in (sock, small, sender):
            s.close()


async def test_the_loop_lag_sees_a_stalled_loop() -> None:
    lag = lateness.LoopLag()
    lag.start()
    try:
        await asyncio.sleep(0.2)
        assert not lag.late_lately and lag.late_total == 0
        time.sleep(0.3)  # a stall: other work on the loop, or the machine busy
        await asyncio.sleep(0.1)
        assert lag.late_lately and lag.late_total >= 1
        assert lag.take_worst() >= 200 and lag.take_worst() < 200
    finally:
        await lag.stop()


async def test_a_second_the_server_was_late_or_dropped_for_says_nothing_of_the_link() -> None:
    peer = ServerPeer("p0", [], lambda peer: asyncio.sleep(0))
    try:
        peer._socket_inodes = [7]
        for _ in range(WEAK_AFTER_S + 2):  # loss every second, all of it while the server was late
            peer._uplink_loss = 200
            assert not peer.judge_links(server_late=True)
        for n in range(WEAK_AFTER_S + 2):  # ... or while its own socket dropped packets
            peer._uplink_loss = 200
            assert not peer.judge_links(drops={7: 10 * (n + 1)})
        assert not peer.uplink_quality.weak
        changed = []
        for _ in range(WEAK_AFTER_S):  # the same loss with the server on time: the link is weak
            peer._uplink_loss = 200
            changed.append(peer.judge_links(drops={7: 10 * (WEAK_AFTER_S + 2)}))
        assert changed[-1] and peer.uplink_quality.weak
    finally:
        await peer.close()
