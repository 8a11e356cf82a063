"""Decoding with PyAV: containers, grey video frames with their timestamps, mono audio.

Every failure of FFmpeg to open or decode a file becomes an :class:`InputError`
that names the file and the problem.

A file cut off mid-stream (an interrupted download) often reads without any
FFmpeg error: the demuxer simply runs out of packets.  Where the container has
an index (MP4/MOV), its packet count is the check (:func:`index_shortfall`);
the probe and the audio decoder use it to flag truncation.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from facevox.errors import InputError

#: Pixel formats whose first plane is the 8-bit luma image: used as grey directly.
_LUMA_FORMATS = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
    "yuv411p", "yuv440p", "yuvj440p", "nv12", "nv21", "gray",
}


@contextlib.contextmanager
def open_media(path) -> Iterator[av.container.InputContainer]:
    """Open a media file with PyAV; an InputError saying why when it is missing, empty or not media."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        hint = sniff(path)
        raise InputError(path, f"not a readable media file ({error_reason(exc)})"
                         + (f": {hint}" if hint else "")) from None
    try:
        yield container
    finally:
        container.close()


def sniff(path) -> str | None:
    """Why FFmpeg could not open ``path``, where its bytes say: an MP4/MOV file (ISO base
    media boxes, ``ftyp`` first) without its index box ``moov`` or whose last box runs past
    the end of the file was cut off (e.g. ``head -c``, an interrupted download: the index
    is written last); a file whose first 4 KiB are UTF-8 without NUL bytes is text."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
        if head[4:8] == b"ftyp":
            offset, boxes = 0, []
            while offset + 8 <= size:
                fh.seek(offset)
                header = fh.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1 and len(header) == 16:  # 64-bit size
                    length = int.from_bytes(header[8:16], "big")
                if length < 8:
                    break
                boxes.append(kind)
                if offset + length > size:
                    return (f"cut off: an MP4/MOV file of {size} bytes whose '{kind.decode('latin-1')}' box "
                            f"needs {offset + length} (an interrupted download or copy?)")
                offset += length
            if b"moov" not in boxes:
                return "cut off: an MP4/MOV file without its index ('moov' box; an interrupted download or copy?)"
            return None
    if b"\0" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the 4 KiB boundary
                return None
        return "the file is text, not media"
    return None


def error_reason(exc: Exception) -> str:
    """The short reason an exception gives: its ``strerror`` (OSError, av.FFmpegError), else its text."""
    return getattr(exc, "strerror", None) or str(exc)


def no_video_stream(has_audio: bool) -> str:
    """The problem text for a file without a video stream (audio-only files say so)."""
    return "has no video stream (audio only)" if has_audio else "has no video stream"


def check_media(path) -> dict:
    """Open a media file the way the stages will, without decoding it all.

    Raises :class:`InputError` naming the problem when the container is unreadable,
    has no video stream, its first video frame does not decode, or the file holds
    fewer video packets than its index lists (cut off: :func:`index_shortfall`).
    Returns ``{"container", "audio" (bool), "n_video_packets"}``.
    """
    with open_media(path) as container:
        has_audio = bool(container.streams.audio)
        if not container.streams.video:
            raise InputError(path, no_video_stream(has_audio))
        fmt = container.format.name
        try:
            next(container.decode(container.streams.video[0]))
        except (StopIteration, av.FFmpegError) as exc:
            reason = error_reason(exc) if isinstance(exc, av.FFmpegError) else "the stream is empty"
            raise InputError(path, f"video stream has no decodable frame ({reason})") from None
    with open_media(path) as container:  # a fresh demuxer: count what the file holds
        stream = container.streams.video[0]
        n_packets = 0
        try:
            for packet in container.demux(stream):
                n_packets += bool(packet.size)
        except av.FFmpegError as exc:
            raise InputError(path, f"damaged after {n_packets} video packets ({error_reason(exc)})") from None
        if index_shortfall(stream, n_packets):
            raise InputError(path, f"cut off: holds {n_packets} of the {stream.frames} video frames its index lists")
    return {"container": fmt, "audio": has_audio, "n_video_packets": n_packets}


def index_shortfall(stream, n_packets: int) -> bool:
    """True when the container's index promised more packets of ``stream`` than the file
    holds (``stream.frames`` is 0 where the container keeps no count, e.g. Matroska)."""
    return bool(stream.frames) and n_packets < stream.frames


def _rotation_k(rotation: float | int | None) -> int:
    """Counter-clockwise quarter turns (np.rot90) that make a frame upright.

    PyAV reports the display rotation as the clockwise angle a player applies
    (the ``rotate`` tag; checked on a file made with ffmpeg).
    """
    if not rotation:
        return 0
    return int(round(-float(rotation) / 90.0)) % 4


def to_gray(frame: av.VideoFrame) -> np.ndarray:
    """The frame as a 2-D uint8 array: the luma plane where possible (no conversion)."""
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return buf[:, : frame.width]
    return frame.to_ndarray(format="gray")


@dataclass
class VideoFrame:
    index: int
    time_s: float
    image: np.ndarray  # uint8, upright: [H, W] grey, or [H, W, 3] RGB from iter_rgb_frames
    source: av.VideoFrame | None = None  # the decoded frame, for rgb() (kept by iter_gray_frames)
    turns: int = 0  # quarter turns that make `source` upright
    colour: np.ndarray | None = None  # the upright RGB frame, where the decoder made it anyway
    damaged: bool = False  # the decoder flagged the frame corrupt (partly concealed: a damaged or cut-off file)

    def rgb(self) -> np.ndarray:
        """The frame as upright RGB [H, W, 3] uint8: converted from the decoded frame only when
        asked (the landmark stage needs colour on the few frames whose identity it checks)."""
        if self.image.ndim == 3:
            return self.image
        if self.colour is not None:
            return self.colour
        if self.source is not None:
            return _upright(self.source.to_ndarray(format="rgb24"), self.turns)
        return np.repeat(self.image[:, :, None], 3, axis=2)


def _decoded(path, threads: int = 1):
    """(index, container time, av frame, quarter turns to upright) for every decoded frame.

    Timestamps come from each frame's pts (VFR-safe).  A frame without a pts
    gets the previous time plus one nominal frame interval.  A file that breaks
    off mid-stream ends the iteration early and raises :class:`InputError` only
    if no frame at all could be decoded.
    """
    with open_media(path) as container:
        if not container.streams.video:
            raise InputError(path, no_video_stream(bool(container.streams.audio)))
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        stream.codec_context.thread_count = max(1, int(threads))
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        step = 1.0 / float(rate)
        index = 0
        last_time = None
        try:
            for frame in container.decode(stream):
                t = frame.time
                if t is None:
                    t = 0.0 if last_time is None else last_time + step
                last_time = t
                yield index, float(t), frame, _rotation_k(getattr(frame, "rotation", 0))
                index += 1
        except av.FFmpegError as exc:
            if index == 0:
                raise InputError(path, f"no video frame could be decoded ({error_reason(exc)})") from None
            # Truncated file: keep the frames decoded so far (the probe flags it).


def _upright(image: np.ndarray, k: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def iter_gray_frames(path, threads: int = 1) -> Iterator[VideoFrame]:
    """Upright grey frames of the first video stream, with container times (see _decoded)."""
    for index, t, frame, k in _decoded(path, threads):
        yield VideoFrame(index, t, _upright(to_gray(frame), k), frame, k, damaged=frame.is_corrupt)


def iter_rgb_frames(path, stride: int = 1, threads: int = 1) -> Iterator[VideoFrame]:
    """Every ``stride``-th frame as upright RGB (uint8 [H, W, 3]); only those are converted."""
    for index, t, frame, k in _decoded(path, threads):
        if index % stride == 0:
            yield VideoFrame(index, t, _upright(frame.to_ndarray(format="rgb24"), k), damaged=frame.is_corrupt)


def iter_gray_rgb_frames(path, threads: int = 1) -> Iterator[tuple[VideoFrame, VideoFrame]]:
    """Each frame once decoded, as (:func:`iter_gray_frames`' frame, :func:`iter_rgb_frames`' frame):
    for a caller that feeds two stages from one decode."""
    for index, t, frame, k in _decoded(path, threads):
        rgb = _upright(frame.to_ndarray(format="rgb24"), k)
        damaged = frame.is_corrupt
        yield (VideoFrame(index, t, _upright(to_gray(frame), k), colour=rgb, damaged=damaged),
               VideoFrame(index, t, rgb, damaged=damaged))


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    start_s: float  # container time of the first sample
    truncated: bool  # decoding stopped at a damaged packet, or the file ends before its index does


def decode_audio(path, sample_rate: int) -> Audio | None:
    """The first audio stream as mono float32 at ``sample_rate``; None if there is none."""
    with open_media(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        start = None
        truncated = False
        n_packets = 0
        try:
            for packet in container.demux(stream):
                n_packets += bool(packet.size)
                for frame in packet.decode():  # the empty packet at the end flushes the decoder
                    if start is None and frame.time is not None:
                        start = float(frame.time)
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError:
            truncated = True
        truncated = truncated or index_shortfall(stream, n_packets)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        return Audio(samples, sample_rate, start or 0.0, truncated)
