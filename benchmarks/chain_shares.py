"""Where the per-video chain's CPU time goes: ``facevox extract`` run once with timers around its parts.

    python benchmarks/chain_shares.py VIDEO CONFIG OUT_DIR SHARES_JSON

Runs ``facevox.cli.main(["extract", VIDEO, "--out", OUT_DIR, "--quiet", "--config", CONFIG])``
(the process should be pinned to one core: bench_chain.py does) with the process's CPU time
(``time.process_time``: every thread, MediaPipe's worker included) taken around public functions
and methods of facevox and MediaPipe, and writes {part: CPU s} to SHARES_JSON:

* ``start``: interpreter start and the imports before the first stage (``facevox.cli``,
  ``facevox.extract.chain``);
* ``decode``: PyAV decoding the frames (grey + RGB, ``media.iter_gray_rgb_frames``);
* ``landmarker``: MediaPipe's ``FaceLandmarker.detect_for_video`` (the floor's own work);
* ``detector``: MediaPipe's ``FaceDetector.detect_for_video`` (the AU table's confidence);
* ``track``: the landmarks stage's per-frame work (``landmarks.Track.add``), and inside it
  ``predictor`` (``FaceTracker.predict``), ``hog`` (``FaceTracker.detect_all`` + ``verify``) and
  ``descriptors`` (``identity.descriptor``);
* ``session``: the AU backend's per-frame work (the session's ``add``) - ``session_own`` is
  what is left of it without ``landmarker`` and ``detector`` (masking, result conversion, pose,
  gaze);
* ``egemaps``, ``probe``, ``tables`` (landmarks table, align, action_units, fau_windows, qa);
* ``total``: the process's CPU time at the end.

The wrappers cost ~1 us a call (~0.02 s a run).
"""
from __future__ import annotations

import functools
import json
import sys
import time

cpu = time.process_time
SHARES: dict[str, float] = {}


def timed(fn, key: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            SHARES[key] = SHARES.get(key, 0.0) + cpu() - t
    return wrapper


def wrap(owner, name: str, key: str) -> None:
    setattr(owner, name, timed(getattr(owner, name), key))


def main(video: str, config: str, out: str, shares_json: str) -> int:
    from facevox.cli import main as facevox
    from facevox.extract import (
        action_units,
        align,
        au_mediapipe,
        au_mediapipe_install,
        chain,
        egemaps,
        fau_windows,
        identity,
        landmarks,
        probe,
        qa,
    )
    from facevox.extract.face_tracker import FaceTracker

    SHARES["start"] = cpu()
    au_mediapipe_install.import_mediapipe()
    from mediapipe.tasks.python import vision

    wrap(vision.FaceLandmarker, "detect_for_video", "landmarker")
    wrap(vision.FaceDetector, "detect_for_video", "detector")
    wrap(landmarks.Track, "add", "track")
    wrap(FaceTracker, "predict", "predictor")
    wrap(FaceTracker, "detect_all", "hog")
    wrap(FaceTracker, "verify", "hog")
    wrap(identity, "descriptor", "descriptors")
    wrap(egemaps, "run", "egemaps")
    wrap(probe, "run", "probe")
    for module in (landmarks, align, action_units, fau_windows, qa):
        wrap(module, "run", "tables")

    frames = chain.iter_gray_rgb_frames

    def decoded(*args, **kwargs):
        it = frames(*args, **kwargs)
        while True:
            t = cpu()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                SHARES["decode"] = SHARES.get("decode", 0.0) + cpu() - t
            yield item

    chain.iter_gray_rgb_frames = decoded
    session = au_mediapipe.FaceLandmarkerAU.session

    def timed_session(self, *args, **kwargs):
        s = session(self, *args, **kwargs)
        s.add = timed(s.add, "session")
        return s

    au_mediapipe.FaceLandmarkerAU.session = timed_session
    facevox(["extract", video, "--out", out, "--quiet", "--config", config])
    SHARES["total"] = cpu()
    SHARES["session_own"] = SHARES.get("session", 0.0) - SHARES.get("landmarker", 0.0) - SHARES.get("detector", 0.0)
    with open(shares_json, "w") as fh:
        json.dump(SHARES, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
