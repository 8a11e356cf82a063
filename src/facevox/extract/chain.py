"""Every per-video stage of one video in one process: ``facevox extract``.

The same stage functions as the Snakemake rules, in the rules' order (probe, egemaps,
landmarks, align, action_units, fau_windows, faces, qa), writing the same tables, with
one thing shared that separate jobs cannot share: with the ``mediapipe`` AU backend
the video is decoded once and each frame goes to both the landmark tracker (its grey
luma plane) and MediaPipe (RGB) - :class:`facevox.extract.landmarks.Track` and
:meth:`facevox.extract.au_mediapipe.FaceLandmarkerAU.session` take frames one at a time.
The tables are the ones the separate stages write (tests/test_chain.py compares them).
The other backends read the landmarks table (pyfeat: its boxes) or no video at all
(openface, landmarks), so their stages run one after the other as in the rules.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from facevox.config import load_config
from facevox.errors import InputError
from facevox.extract import action_units, align, egemaps, faces, fau_windows, landmarks, probe, qa
from facevox.media import iter_gray_rgb_frames, no_video_stream

#: Output name -> file extension, in the order the stages write them.
OUTPUTS = [("probe", "json"), ("egemaps", "parquet"), ("landmarks", "parquet"), ("aligned", "parquet"),
           ("action_units", "parquet"), ("fau_windows", "parquet"), ("faces", "parquet"), ("qa", "json")]


def say(msg: str) -> None:
    print(msg, file=sys.stderr)


def shared_decode(video, cfg: dict, total: int | None, progress: bool):
    """One decode feeding the landmark tracker and MediaPipe: (landmarks' Track result,
    the mediapipe backend's per-frame output)."""
    from facevox.extract import au_mediapipe

    track = landmarks.Track(cfg["landmarks"])
    au = au_mediapipe.FaceLandmarkerAU(cfg["action_units"]["confidence_every"])
    frames = iter_gray_rgb_frames(video, threads=int(track.tracker.p["threads"]))
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=total, unit="frame", desc=f"landmarks + AUs {Path(video).name}")
    with au.session(video) as session:
        for gray, rgb in frames:
            track.add(gray)
            session.add(rgb)
        return track.result(), session.result()


def run(video, out, config=None, vid: str | None = None, openface_csv=None, progress: bool = False) -> dict:
    """Every stage of ``video`` into folder ``out`` (``<vid>.<output>.<ext>``); ``config``: a
    config.yaml whose stage sections to use (None: the schema's defaults).  Returns {output: path}."""
    cfg = load_config(config)
    out = Path(out)
    vid = vid or Path(video).stem
    paths = {k: out / f"{vid}.{k}.{ext}" for k, ext in OUTPUTS}
    if not cfg["faces"]["keep_face_images"]:
        del paths["faces"]
    t = time.perf_counter()
    info = probe.run(video, paths["probe"])
    if info["video"] is None:  # nothing for the other stages: stop before they decode the audio
        raise InputError(video, no_video_stream(info["audio"] is not None))
    total = info["video"].get("n_frames")
    say(f"probe: {total} frames")
    status = egemaps.run(video, paths["egemaps"], cfg["egemaps"])
    say(f"egemaps: audio {status['audio_status']}")
    backend = action_units.resolve_backend(cfg["action_units"]["backend"])
    tracked = mp_out = None
    if backend == "mediapipe":
        tracked, mp_out = shared_decode(video, cfg, total, progress)
    lm = landmarks.run(video, paths["landmarks"], cfg["landmarks"], progress=progress, total=total, tracked=tracked)
    say(f"landmarks: face found in {100 * lm['face_found_rate']:.1f} % of frames; {landmarks.describe_promise(lm)}"
        + ("; one decode shared with the AU backend" if tracked is not None else ""))
    align.run(paths["landmarks"], paths["egemaps"], paths["aligned"], cfg["align"])
    say("align: done")
    au = action_units.run(video, paths["landmarks"], paths["action_units"], cfg["action_units"],
                          openface_csv=openface_csv, mediapipe_out=mp_out)
    say(f"action_units: backend {au['backend']} ({au['why']})")
    fau_windows.run(paths["action_units"], paths["fau_windows"], cfg["fau_windows"])
    say("fau_windows: done")
    if "faces" in paths:
        faces.run(video, paths["landmarks"], paths["faces"], cfg["faces"])
        say("faces: done")
    rec = qa.run(vid, paths["probe"], paths["landmarks"], paths["egemaps"], paths["qa"],
                 aus_path=paths["action_units"])
    say(f"qa: flags [{rec['flags']}]  ({time.perf_counter() - t:.1f} s)")
    return paths
