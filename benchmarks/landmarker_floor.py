"""The per-video chain's floor as a process of its own: PyAV decode + MediaPipe's FaceLandmarker.

    python benchmarks/landmarker_floor.py VIDEO MODEL_TASK

Decodes every frame of VIDEO's first video stream with PyAV (RGB, as facevox's
``media.iter_rgb_frames``) and hands each whole frame to MediaPipe's FaceLandmarker with
the options of facevox's ``mediapipe`` AU backend (``au_mediapipe.FaceLandmarkerAU``:
VIDEO mode, one face, blendshapes, facial transformation matrix, the same bundle read
from MODEL_TASK, timestamps in integer ms from the first frame, strictly increasing).
Nothing else: no dlib, no eGeMAPS, no tables.  ``mediapipe`` is imported as facevox
imports it (its drawing helpers, which pull matplotlib and cv2, loaded lazily), so the
interpreter start and the imports are the ones any process running the landmarker pays.
Prints "frames faces" to stdout.  bench_chain.py times it beside ``facevox extract``.

Standalone on purpose (no facevox import): the floor must not carry facevox's imports.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys

#: The modules facevox's ``au_mediapipe_install.import_mediapipe`` loads lazily (facevox never draws).
DRAWING_MODULES = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles")


class LazyDrawing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in DRAWING_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def main(video: str, model: str) -> int:
    sys.meta_path.insert(0, LazyDrawing())
    import av
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import BaseOptions, vision

    with open(model, "rb") as fh:
        data = fh.read()
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=data), running_mode=vision.RunningMode.VIDEO, num_faces=1,
        output_face_blendshapes=True, output_facial_transformation_matrixes=True)
    frames = faces = 0
    t0 = ms = None
    with vision.FaceLandmarker.create_from_options(options) as landmarker, av.open(video) as container:
        for frame in container.decode(container.streams.video[0]):
            t = float(frame.time or 0.0)
            t0 = t if t0 is None else t0
            now = int(round((t - t0) * 1000.0))
            ms = now if ms is None or now > ms else ms + 1
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
            faces += bool(landmarker.detect_for_video(image, ms).face_landmarks)
            frames += 1
    print(frames, faces)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
