"""Recording a room with aiortc's MediaRecorder, decoding only what is recorded, only while
recording.

While a room records, each publisher's streams get a tap: packets are reassembled into frames
(aiortc's JitterBuffer and depayloader), decoded on one thread per tap (so frames stay in order)
and handed to a MediaRecorder writing WebM (VP8 and Opus) under the recordings folder. When
recording stops the taps go away and forwarding is back to packets only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from pathlib import Path
from typing import Any

from aiortc.codecs import depayload, get_decoder
from aiortc.contrib.media import MediaRecorder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from foundation.aio import cancel_and_wait
from signaling.media.forwarding import KEYFRAME_RETRY_S, PublishedStream

logger = logging.getLogger(__name__)
CODECS = {
    "audio": RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111),
    "video": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
}
QUEUE_FRAMES = 250  # frames waiting for the recorder's encoder; older ones are dropped beyond
FIRST_FRAME_WAIT_S = 5.0


class _FrameTrack(MediaStreamTrack):
    """Decoded frames for the MediaRecorder."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_FRAMES)

    async def recv(self) -> Any:
        frame = await self.queue.get()
        if frame is None:
            raise MediaStreamError
        return frame


class StreamTap:
    """Decodes one published stream for the recorder."""

    def __init__(self, kind: str, stream: PublishedStream) -> None:
        self.kind = kind
        self.stream = stream
        # Video is recorded from a keyframe on; until one comes, the publisher is asked again.
        self.waiting = kind == "video"
        self._last_ask = 0.0
        self.track = _FrameTrack(kind)
        self._codec = CODECS[kind]
        self._decoder = get_decoder(self._codec)
        self._jitter = JitterBuffer(capacity=128, is_video=True) if kind == "video" else None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"record-{kind}")
        self._first_ts: int | None = None
        self._last_audio: int | None = None
        self._loop = asyncio.get_running_loop()

    def on_packet(self, payload: bytes, marker: int, seq: int, timestamp: int, keyframe: bool) -> None:
        """Feed one forwarded packet."""
        if self.waiting:
            if not keyframe:
                if time.monotonic() - self._last_ask > KEYFRAME_RETRY_S:
                    self._last_ask = time.monotonic()
                    self.stream.want_keyframe()
                return
            self.waiting = False
        if self._first_ts is None:
            self._first_ts = timestamp
        relative = (timestamp - self._first_ts) & 0xFFFFFFFF
        if relative >= 1 << 31:
            return  # older than the first packet (reordered): the muxer needs rising timestamps
        if self._jitter is None:
            if self._last_audio is not None and relative <= self._last_audio:
                return  # a late or repeated audio packet
            self._last_audio = relative
            frame: JitterFrame | None = JitterFrame(data=payload, timestamp=relative)
        else:
            packet = RtpPacket(payload_type=self._codec.payloadType or 0, marker=marker, sequence_number=seq, timestamp=relative)
            try:
                packet._data = depayload(self._codec, payload)  # type: ignore[attr-defined]
            except ValueError:
                return
            _, frame = self._jitter.add(packet)
        if frame is not None:
            self._loop.run_in_executor(self._thread, self._decode, frame)

    def _decode(self, frame: JitterFrame) -> None:
        try:
            frames = self._decoder.decode(frame)
        except Exception as exc:  # a frame before the first keyframe
            logger.debug("recording: could not decode a %s frame: %s", self.kind, exc)
            return
        for decoded in frames:
            self._loop.call_soon_threadsafe(self._offer, decoded)

    def _offer(self, frame: Any) -> None:
        if self.track.queue.full():
            self.track.queue.get_nowait()
        self.track.queue.put_nowait(frame)

    def close(self) -> None:
        self._thread.shutdown(wait=False)
        try:
            self.track.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass


class PublisherRecording:
    """One participant's audio and video into one WebM file."""

    def __init__(self, path: Path, audio: PublishedStream, video: PublishedStream) -> None:
        self.path = path
        self.started = time.time()
        self._streams = {"audio": audio, "video": video}
        self._taps = {kind: StreamTap(kind, stream) for kind, stream in self._streams.items()}
        self._recorder: MediaRecorder | None = None
        self._opening: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Tap the streams now and open the file in the background."""
        for kind, stream in self._streams.items():
            stream.taps.append(self._taps[kind])
        self._opening = asyncio.create_task(self._open(), name=f"open {self.path.name}")

    async def _open(self) -> None:
        """Open the file once the first video frame is decoded.

        MediaRecorder sizes its video stream from the first frame, and the container opens every
        codec at its first packet: so the video track goes first and has a frame waiting
        (a camera that stays off gives an audio-only file).
        """
        video = self._taps["video"].track.queue
        for _ in range(int(FIRST_FRAME_WAIT_S / 0.05)):
            if not video.empty():
                break
            await asyncio.sleep(0.05)
        self._recorder = MediaRecorder(str(self.path), format="webm")
        if not video.empty():
            self._recorder.addTrack(self._taps["video"].track)
        self._recorder.addTrack(self._taps["audio"].track)
        await self._recorder.start()

    async def stop(self) -> dict[str, Any]:
        """Stop and describe the file."""
        await cancel_and_wait(self._opening)
        for kind, stream in self._streams.items():
            if self._taps[kind] in stream.taps:
                stream.taps.remove(self._taps[kind])
            self._taps[kind].close()
        if self._recorder is not None:
            await self._recorder.stop()
        return {
            "file": str(self.path), "started": self.started, "stopped": time.time(),
            "bytes": self.path.stat().st_size if self.path.exists() else 0,
        }
