"""The report a researcher reads, built by Snakemake on a small video study (4 short
videos, train/test splits, one model) and then opened in headless Chromium.

* test_report_has_every_section - the report HTML holds every page and category, the
  per-video table has one row per sheet video, the privacy default keeps face images out;
* test_report_in_chromium - tests/browser/clickthrough.mjs (playwright-core driving
  Debian's /usr/bin/chromium) clicks study -> per-video table -> a timeline -> a model
  -> the link back -> the run card and fails on an empty section.  Skipped when
  chromium or tests/browser/node_modules is missing, unless FACEVOX_BROWSER_TEST=1 (CI,
  .ci/run), where a missing browser is a failure.  Screenshots go to
  $FACEVOX_BROWSER_SHOTS (default: the test's tmp folder).
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_workflow import REPO, snakemake

pytestmark = pytest.mark.slow
BROWSER_DIR = REPO / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
VIDEOS = {"talking": "train", "single": "train", "silent_clip": "test", "empty": "test"}


@pytest.fixture(scope="module")
def study(tmp_path_factory, talking_video, video_only, feat_media) -> Path:
    """A 4-video study (train: talking, single; test: silent_clip, empty), lr only, built with its report."""
    work = tmp_path_factory.mktemp("study")
    (work / "videos").mkdir()
    sources = {"talking": talking_video, "single": feat_media / "single_face.mp4", "silent_clip": video_only,
               "empty": feat_media / "no_face.mp4"}
    labels = {"talking": "depression", "single": "normal", "silent_clip": "depression", "empty": "normal"}
    rows = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender"]
    for i, (vid, src) in enumerate(sources.items()):
        shutil.copyfile(src, work / "videos" / f"{vid}{src.suffix}")
        rows.append(f"{vid}\tvideos/{vid}{src.suffix}\ts{i}\t{VIDEOS[vid]}\t{labels[vid]}\t{10 + i}\t{'fm'[i % 2]}")
    (work / "samples.tsv").write_text("\n".join(rows) + "\n")
    (work / "config.yaml").write_text(
        "samples: samples.tsv\nshards: {length: 24, hop: 12}\n"
        "models: {run: [lr], seeds: [0], device: cpu, max_missing_fraction: 1.0}\n"
        "report: {bootstrap_resamples: 20, timelines: {per_split: 1}}\n")
    snakemake(work, "--cores", "2")
    snakemake(work, "--report", "report.html")
    return work


def test_report_has_every_section(study):
    html = (study / "report.html").read_text()
    for category in ("1. Study", "2. Videos", "3. Timelines", "4. Metric tables", "5. Models",
                     "6. Quality control", "7. Run"):
        assert category in html, category
    for page in ("report/study.html", "report/videos.html", "report/models/lr.html", "report/run_card.html",
                 "report/timelines/talking.png", "report/landmarks/silent_clip.png", "tables/classification.html",
                 "plots/lr/roc.png", "plots/qa_overview.png"):
        assert f"results/{page}" in html, page
    assert "results/report/timelines/single.png" not in html  # per_split 1: the first of each split
    videos = (study / "results/report/videos.html").read_text()
    assert [v for v in VIDEOS if f'id="video-{v}"' in videos] == list(VIDEOS)
    assert re.search(r'id="video-silent_clip">.*?no_audio_stream', videos, re.S)  # QA of a video without audio
    study_page = (study / "results/report/study.html").read_text()
    for section in ("sheet", "splits", "settings", "excluded"):
        assert f'<section id="{section}">' in study_page
    assert "INVENTED" not in study_page and "INVENTED" not in html  # not the demo's sheet
    assert "neutral canvas" in (study / "results/logs/timeline/talking.log").read_text()  # privacy default
    assert not (study / "results/faces").exists()


def _browser_ready() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if not shutil.which("node"):
        return "node not installed"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core not installed (cd tests/browser && npm ci)"
    return None


def test_report_in_chromium(study, tmp_path):
    missing = _browser_ready()
    if missing:
        if os.environ.get("FACEVOX_BROWSER_TEST") == "1":
            pytest.fail(f"browser test required (FACEVOX_BROWSER_TEST=1) but {missing}")
        pytest.skip(missing)
    shots = Path(os.environ.get("FACEVOX_BROWSER_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["node", str(BROWSER_DIR / "clickthrough.mjs"), str(study / "report.html"), str(shots),
                           ",".join(VIDEOS), "talking", "lr"], capture_output=True, text=True, timeout=240,
                          cwd=BROWSER_DIR, env={**os.environ, "CHROMIUM": CHROMIUM})
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"click-through failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1])
    assert result["problems"] == []
    seen = result["seen"]
    assert seen["videos.rows"] == len(VIDEOS) and seen["model.link_to_videos"] == len(VIDEOS)
    assert seen["model.rows"] >= 1 and seen["run_card.stages"] == seen["run_card.bars"] > 0
    assert sorted(p.name for p in shots.glob("*.png")) == ["1_study.png", "2_videos.png", "3_landmarks.png",
                                                          "3_timeline.png", "4_model.png", "4_model_link.png",
                                                          "5_run_card.png"]
