"""Stage `probe`: what is in a media file (container, streams, fps, duration, rotation).

``truncated`` is true when demuxing fails or the video stream holds fewer packets
than the container's index lists (a download cut off mid-stream decodes without
an error, so the count is the check); ``video.duration_s`` is then the duration
of the frames present and ``video.duration_header_s`` what the header claims.

Rule: workflow/rules/probe.smk · Tests: tests/test_probe.py
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from facevox.errors import InputError
from facevox.io import file_sha256, write_json
from facevox.media import error_reason, index_shortfall, no_video_stream, open_media
from facevox.provenance import provenance

if TYPE_CHECKING:
    import pandas as pd


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _frame_times(container, stream) -> tuple[np.ndarray, bool]:
    """Presentation times of every video packet (demux only, no decoding), sorted; and
    whether the file is truncated (a demux error, or fewer packets than its index lists)."""
    pts = []
    truncated = False
    n_packets = 0
    try:
        for packet in container.demux(stream):
            n_packets += bool(packet.size)
            if packet.pts is not None and packet.size:
                pts.append(packet.pts)
    except av.FFmpegError:
        truncated = True
    times = np.sort(np.asarray(pts, dtype=np.float64)) * float(stream.time_base or 0)
    return times, truncated or index_shortfall(stream, n_packets)


def probe(path) -> dict:
    """Describe the media file at ``path``; raise InputError if it cannot be read."""
    path = Path(path)
    with open_media(path) as container:
        streams = [
            {"index": s.index, "type": s.type, "codec": s.codec_context.name if s.codec_context else None}
            for s in container.streams
        ]
        info: dict = {
            "path": str(path),
            "size_bytes": path.stat().st_size,
            "sha256": file_sha256(path),
            "container": container.format.name,
            "duration_s": None if container.duration is None else container.duration / av.time_base,
            "bit_rate": container.bit_rate,
            "streams": streams,
            "video": None,
            "audio": None,
            "truncated": False,
        }
        if container.streams.audio:
            a = container.streams.audio[0]
            info["audio"] = {
                "codec": a.codec_context.name,
                "sample_rate": a.sample_rate,
                "channels": a.codec_context.layout.nb_channels if a.codec_context.layout else None,
                "start_s": _seconds(a.start_time, a.time_base),
                "duration_s": _seconds(a.duration, a.time_base),
            }
        if container.streams.video:
            v = container.streams.video[0]
            cc = v.codec_context
            rotation = 0
            try:  # the rotation lives in the frames' display matrix: decode one
                first = next(container.decode(v))
                rotation = int(getattr(first, "rotation", 0) or 0)
            except (StopIteration, av.FFmpegError) as exc:
                raise InputError(path, f"video stream has no decodable frame ({error_reason(exc)})") from None
            with open_media(path) as again:  # a fresh demuxer: seeking back fails on some streams
                times, truncated = _frame_times(again, again.streams.video[0])
            intervals = np.diff(times)
            tick = float(v.time_base or 0)
            if intervals.size:
                median = float(np.median(intervals))
                # Variable frame rate: an interval that differs from the median by
                # more than one tick of the time base (CFR files jitter by one tick).
                vfr = bool(np.any(np.abs(intervals - median) > tick + 1e-9))
                spread = {"min": float(intervals.min()), "median": median, "max": float(intervals.max())}
            else:
                vfr, spread = False, None
            avg = v.average_rate or v.guessed_rate
            width, height = cc.width, cc.height
            if rotation % 180:
                width, height = height, width
            header_duration = _seconds(v.duration, v.time_base) if v.duration else None
            seen_duration = (float(times[-1] - times[0] + (spread["median"] if spread else 0))
                             if times.size else None)
            info["video"] = {
                "codec": cc.name,
                "pix_fmt": cc.pix_fmt,
                "coded_width": cc.width,
                "coded_height": cc.height,
                "width": width,  # as displayed (rotation applied)
                "height": height,
                "rotation": rotation,
                "avg_fps": float(avg) if avg else None,
                "variable_frame_rate": vfr,
                "frame_interval_s": spread,
                "n_frames": int(times.size),
                "n_frames_header": int(v.frames or 0),
                "start_s": float(times[0]) if times.size else None,
                # A truncated file's header promises more than it holds: the frames decide.
                "duration_s": seen_duration if truncated or header_duration is None else header_duration,
                "duration_header_s": header_duration,
            }
            info["truncated"] = truncated
    return info


def run(video, out) -> dict:
    """Probe ``video`` and write the description (with provenance) as JSON to ``out``.
    A file without a video stream gets an ``excluded`` reason (facevox.extract.exclusion);
    an unreadable one raises InputError (the CLI writes its excluded record)."""
    info = probe(video)
    if info["video"] is None:  # readable, but nothing for the face stages (exclusion.py)
        info["excluded"] = {"stage": "probe", "path": str(video), "problem": no_video_stream(info["audio"] is not None)}
    info["provenance"] = provenance("probe", inputs={"video": video})
    write_json(info, out)
    return info


def probe_samples(samples: pd.DataFrame, sheet, source: str = "videos") -> dict:
    """Open every file of a sheet (:func:`read_samples`' result) the way the stages will.

    ``source`` videos: each ``path`` must open as media (container readable, a video
    stream with a decodable frame, not cut short: facevox.media.check_media); an
    ``openface_csv`` must pass the OpenFace reader; a ``reference`` face must show exactly
    one face (facevox.extract.identity.reference_descriptor).  ``source`` aligned: each
    ``path`` must be an aligned table (contract.ALIGNED_SCHEMA).  Every bad file is
    listed in one :class:`SampleSheetError`; otherwise returns
    ``{"with_audio": [ids], "without_audio": [ids]}`` (videos) or ``{}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from facevox.contract import ALIGNED_SCHEMA, check_table
    from facevox.errors import FacevoxError
    from facevox.extract.au_openface import read_openface_csv
    from facevox.media import check_media
    from facevox.samples import SampleSheetError, seconds_or_none

    name = Path(sheet).name
    lines = samples.attrs.get("line", {})
    problems: list[str] = []
    audio: dict[str, list] = {"with_audio": [], "without_audio": []}
    for vid, row in samples.iterrows():
        where = f"{name} line {lines.get(vid, '?')} (video_id {vid!r})"
        if source == "aligned":  # the footer and its schema; the data pages are read by the jobs
            try:
                check_table(pq.read_schema(row["path"]).empty_table(), ALIGNED_SCHEMA, row["path"])
            except (OSError, pa.ArrowInvalid) as exc:
                problems.append(f"{where}: {row['path']}: not a readable Parquet file ({exc})")
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
            continue
        try:
            info = check_media(row["path"])
            audio["with_audio" if info["audio"] else "without_audio"].append(vid)
        except InputError as exc:
            problems.append(f"{where}: {exc}")
        openface = row.get("openface_csv")
        if isinstance(openface, str) and openface:
            try:
                read_openface_csv(openface)
            except FacevoxError as exc:
                problems.append(f"{where}: openface_csv {exc}")
        reference = row.get("reference")
        if isinstance(reference, str) and reference:  # one face on it (target.mode reference)
            from facevox.extract.identity import reference_descriptor

            try:
                reference_descriptor(reference, seconds_or_none(row.get("reference_s")), where)
            except FacevoxError as exc:
                problems.append(str(exc))
    if problems:
        raise SampleSheetError(sheet, problems)
    return audio if source != "aligned" else {}
