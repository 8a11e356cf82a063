"""Every per-video stage of one video in one process: ``facevox extract``.

The same stage functions as the Snakemake rules, in the rules' order (probe, egemaps,
landmarks, align, action_units, fau_windows, faces, qa), writing the same tables, with
one thing shared that separate jobs cannot share: with the ``mediapipe`` AU backend
the video is decoded once and each frame goes to both the landmark tracker (its grey
luma plane) and MediaPipe (RGB) - :class:`facevox.extract.landmarks.Track` and
:meth:`facevox.extract.au_mediapipe.FaceLandmarkerAU.session` take frames one at a time.
MediaPipe is shown only the target person's region: ``Track.add`` returns the provisional
target's box on each frame (None: no target there, and MediaPipe does not see the frame).
The target is final only at the end of the video; the separate AU stage shows MediaPipe
the final landmarks table's boxes.  So :func:`facevox.extract.action_units.run` compares,
frame by frame, the boxes MediaPipe was shown with the table's (success rows; both float32)
and, where any differs, runs MediaPipe again from the table (a second decode; one log
line says so): the chain's AU table is always the separate stage's.
The tables are the ones the separate stages write (tests/test_chain.py compares them).
The other backends read the landmarks table (pyfeat: its boxes) or no video at all
(openface, landmarks), so their stages run one after the other as in the rules.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from facevox.config import load_config
from facevox.errors import FacevoxError, InputError
from facevox.extract import action_units, align, egemaps, faces, fau_windows, landmarks, probe, qa
from facevox.media import iter_gray_rgb_frames, no_video_stream

#: Output name -> file extension, in the order the stages write them.
OUTPUTS = [("probe", "json"), ("egemaps", "parquet"), ("landmarks", "parquet"), ("aligned", "parquet"),
           ("action_units", "parquet"), ("fau_windows", "parquet"), ("faces", "parquet"), ("qa", "json")]
#: The outputs each output is made from (the stages' inputs); probe runs always (is there a video stream).
NEEDS = {"probe": (), "egemaps": (), "landmarks": (), "aligned": ("landmarks", "egemaps"),
         "action_units": ("landmarks",), "fau_windows": ("action_units", "egemaps"), "faces": ("landmarks",),
         "qa": ("landmarks", "egemaps", "action_units")}


def needed(outputs) -> list[str]:
    """The outputs (:data:`OUTPUTS` names, in their order) to make for ``outputs``: those and
    everything they are made from, and probe."""
    unknown = set(outputs) - set(NEEDS)
    if unknown:
        raise FacevoxError(f"extract: unknown output(s) {sorted(unknown)} (one of {', '.join(NEEDS)})")
    want, todo = {"probe"}, list(outputs)
    while todo:
        name = todo.pop()
        if name not in want:
            want.add(name)
            todo.extend(NEEDS[name])
    return [k for k, _ in OUTPUTS if k in want]


def say(msg: str) -> None:
    print(msg, file=sys.stderr)


#: shared_decode hands frames to the landmark tracker and to MediaPipe in runs of up to this many
#: frames (and at most :data:`BATCH_BYTES` of RGB): each keeps its model in the CPU's caches for a
#: run instead of the two evicting each other every frame (on the 94-s 640x360 clip of
#: benchmarks/bench_chain.py the tracker's time fell by ~12 %).  Same calls in the same order
#: for each of the two, so the same tables.
BATCH_FRAMES = 16
BATCH_BYTES = 32 << 20


def shared_decode(video, cfg: dict, total: int | None, progress: bool, reference=None):
    """One decode feeding the landmark tracker and MediaPipe (shown each frame's provisional
    target box): (landmarks' Track result, the mediapipe backend's per-frame output).  The
    tracker goes first over a run of frames (:data:`BATCH_FRAMES`), then MediaPipe over the
    same run with the boxes the tracker gave each frame."""
    from facevox.extract import au_mediapipe

    ref_desc, _ = landmarks.reference_face(cfg["target"], reference)
    track = landmarks.Track(cfg["landmarks"], cfg["target"], ref_desc)
    au = au_mediapipe.FaceLandmarkerAU(cfg["action_units"]["confidence_every"])
    frames = iter_gray_rgb_frames(video, threads=int(track.tracker.p["threads"]))
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=total, unit="frame", desc=f"landmarks + AUs {Path(video).name}")
    with au.session(video) as session:
        pending: list = []  # (RGB frame, its box) the tracker has done and MediaPipe not yet
        for gray, rgb in frames:
            pending.append((rgb, track.add(gray)))
            if len(pending) >= BATCH_FRAMES or len(pending) * rgb.image.nbytes >= BATCH_BYTES:
                for frame, box in pending:
                    session.add(frame, box)
                pending.clear()
        for frame, box in pending:
            session.add(frame, box)
        return track.result(), session.result()


def run(video, out, config=None, vid: str | None = None, openface_csv=None, progress: bool = False,
        reference=None, outputs=None) -> dict:
    """Every stage of ``video`` into folder ``out`` (``<vid>.<output>.<ext>``); ``config``: a
    config.yaml whose stage sections to use (None: the schema's defaults), or its sections as
    :func:`facevox.config.load_config` gives them; ``reference``: (path, time_s, sheet row) of
    the reference face under ``target.mode: reference`` (:func:`facevox.extract.landmarks.run`);
    ``outputs``: only these outputs and what they are made from (:func:`needed`; None: all,
    the faces only with ``faces.keep_face_images``).  Returns {output: path}."""
    cfg = config if isinstance(config, dict) else load_config(config)
    out = Path(out)
    vid = vid or Path(video).stem
    want = needed(outputs) if outputs is not None else [k for k, _ in OUTPUTS]
    paths = {k: out / f"{vid}.{k}.{ext}" for k, ext in OUTPUTS if k in want}
    if outputs is None and not cfg["faces"]["keep_face_images"]:
        del paths["faces"]
    t = time.perf_counter()
    info = probe.run(video, paths["probe"])
    if info["video"] is None:  # nothing for the other stages: stop before they decode the audio
        raise InputError(video, no_video_stream(info["audio"] is not None))
    total = info["video"].get("n_frames")
    say(f"probe: {total} frames")
    if "egemaps" in paths:
        status = egemaps.run(video, paths["egemaps"], cfg["egemaps"])
        say(f"egemaps: audio {status['audio_status']}")
    if "landmarks" not in paths:
        return paths
    tracked = mp_out = None
    au_cfg = cfg["action_units"]
    if "action_units" in paths and action_units.resolve_backend(au_cfg["backend"],
                                                                au_cfg["openface_models_dir"]) == "mediapipe":
        tracked, mp_out = shared_decode(video, cfg, total, progress, reference)
    lm = landmarks.run(video, paths["landmarks"], cfg["landmarks"], progress=progress, total=total, tracked=tracked,
                       target=cfg["target"], reference=reference)
    say(f"landmarks: face found in {100 * lm['face_found_rate']:.1f} % of frames; {landmarks.describe_promise(lm)}"
        + ("; one decode shared with the AU backend" if tracked is not None else ""))
    if "aligned" in paths:
        align.run(paths["landmarks"], paths["egemaps"], paths["aligned"], cfg["align"])
        say("align: done")
    if "action_units" in paths:
        au = action_units.run(video, paths["landmarks"], paths["action_units"], cfg["action_units"],
                              openface_csv=openface_csv, mediapipe_out=mp_out)
        if au.get("second_pass"):
            say(f"action_units: the final target's boxes differ on {au['second_pass_frames']} frames from the "
                "provisional ones MediaPipe was shown: MediaPipe ran again on the final landmarks table "
                "(a second decode)")
        say(f"action_units: backend {au['backend']} ({au['why']})")
    if "fau_windows" in paths:
        fau_windows.run(paths["action_units"], paths["fau_windows"], cfg["fau_windows"],
                        egemaps_path=paths["egemaps"])
        say("fau_windows: done")
    if "faces" in paths:
        faces.run(video, paths["landmarks"], paths["faces"], cfg["faces"])
        say("faces: done")
    if "qa" in paths:
        rec = qa.run(vid, paths["probe"], paths["landmarks"], paths["egemaps"], paths["qa"],
                     aus_path=paths["action_units"])
        say(f"qa: flags [{rec['flags']}]  ({time.perf_counter() - t:.1f} s)")
    return paths
