"""The Snakemake workflow end to end: DAG, a real 2-video run, stale-only reruns."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from facevox.contract import ALIGNED_SCHEMA, FAU_WINDOWS_SCHEMA
from facevox.extract.action_units import resolve_backend
from facevox.io import read_table

REPO = Path(__file__).resolve().parents[1]
PER_VIDEO_RULES = ("probe", "egemaps", "landmarks", "align", "action_units", "fau_windows", "qa_video")
PER_VIDEO_OUTPUTS = [("probe", "json"), ("egemaps", "parquet"), ("landmarks", "parquet"), ("align", "parquet"),
                     ("action_units", "parquet"), ("fau_windows", "parquet"), ("qa", "json")]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args],
        capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_outputs(workdir: Path, *args: str) -> set[str]:
    """Outputs of the jobs a dry run would execute."""
    out = snakemake(workdir, "-n", *args).stdout
    return {o for line in re.findall(r"^\s+output: (.+)$", out, flags=re.M) for o in line.split(", ")} - {""}


def write_project(workdir: Path, videos: dict[str, Path], **config) -> None:
    (workdir / "videos").mkdir(parents=True, exist_ok=True)
    rows = ["video_id\tpath\tsubject_id\tsplit\tlabel\tscore\tgender"]
    for i, (vid, src) in enumerate(videos.items()):
        shutil.copyfile(src, workdir / "videos" / src.name)
        rows.append(f"{vid}\tvideos/{src.name}\ts{i}\t\t\t\t")
    (workdir / "samples.tsv").write_text("\n".join(rows) + "\n")
    lines = ["samples: samples.tsv"] + [f"{k}: {v}" for k, v in config.items()]
    (workdir / "config.yaml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory, talking_video, feat_media):
    workdir = tmp_path_factory.mktemp("project")
    write_project(workdir, {"talking": talking_video, "single": feat_media / "single_face.mp4"})
    return workdir


def test_dry_run_dag(project):
    outputs = planned_outputs(project)
    for vid in ("talking", "single"):
        assert f"results/probe/{vid}.json" in outputs
        assert f"results/landmarks/{vid}.parquet" in outputs
        assert f"results/align/{vid}.parquet" in outputs
    assert {"results/qa.tsv", "results/inputs.tsv"} <= outputs  # inputs: which videos the aggregates read
    report = {"results/plots/qa_overview.png", "results/run_card.json", "results/report/run_card.html",
              "results/report/study.html", "results/report/videos.html"}  # no splits: no models, no tables
    report |= {f"results/report/{kind}/{vid}.png" for kind in ("timelines", "landmarks") for vid in ("talking", "single")}
    # + qa.tsv, identity_overlap.tsv, and the gate's inputs.tsv and samples.included.tsv
    assert "results/identity_overlap.tsv" in outputs
    assert report <= outputs and len(outputs) == 2 * len(PER_VIDEO_RULES) + 4 + len(report)
    assert not any(o.startswith("results/faces/") for o in outputs)  # privacy default


def test_keep_face_images_adds_the_crops(tmp_path, feat_media):
    write_project(tmp_path, {"one": feat_media / "single_face.mp4"}, faces="{keep_face_images: true}")
    assert "results/faces/one.parquet" in planned_outputs(tmp_path)


@pytest.mark.slow
def test_real_run_then_stale_only_reruns(project, feat_media):
    snakemake(project, "--cores", "2")
    qa = pd.read_csv(project / "results/qa.tsv", sep="\t")
    assert list(qa["video_id"]) == ["single", "talking"]
    talking = qa.set_index("video_id").loc["talking"]
    assert talking["face_found_rate"] >= 0.95 and talking["audio_status"] == "ok"
    assert talking["voiced_fraction"] > 0.2
    aligned, meta = read_table(project / "results/align/talking.parquet", ALIGNED_SCHEMA)
    assert len(aligned) == 72 and aligned["audio_success"].mean() > 0.95
    assert meta["params"]["rate_hz"] == "native"
    windows, wmeta = read_table(project / "results/fau_windows/talking.parquet", FAU_WINDOWS_SCHEMA)
    auto = resolve_backend("auto")  # mediapipe where it is installed: no py-feat weights here
    assert len(windows) == (72 - 1) // 5 + 1 and wmeta["au_backend"] == auto
    # turns: the rule hands the stage the eGeMAPS table; the talking video speaks in every window
    assert wmeta["turns"]["audio_status"] == "ok" and windows["turns"].between(0.3, 1).all()
    assert talking["au_backend"] == auto
    for rule in PER_VIDEO_RULES:  # every rule logs and benchmarks
        assert (project / f"results/logs/{rule}/talking.log").exists()
        assert (project / f"results/benchmarks/{rule}/talking.tsv").exists()
    assert "landmarks" in (project / "results/logs/landmarks/talking.log").read_text()

    # Nothing to do on a second run.
    assert planned_outputs(project) == set()
    # touch alone (same content) makes nothing stale (Snakemake checksums small inputs).
    os.utime(project / "videos/single_face.mp4")
    assert planned_outputs(project) == set()

    # New content for one video: only its chain and the aggregate rerun.
    shutil.copyfile(feat_media / "no_face.mp4", project / "videos/single_face.mp4")
    assert planned_outputs(project) == {
        *(f"results/{d}/single.{ext}" for d, ext in PER_VIDEO_OUTPUTS),
        "results/qa.tsv", "results/inputs.tsv", "results/samples.included.tsv", "results/plots/qa_overview.png",
        "results/identity_overlap.tsv",
        "results/run_card.json",
        "results/report/timelines/single.png", "results/report/landmarks/single.png",
        "results/report/study.html", "results/report/videos.html", "results/report/run_card.html",
    }

    # A changed stage parameter reruns that stage and what depends on it, for every video.
    config = project / "config.yaml"
    config.write_text(config.read_text() + "align:\n  rate_hz: 1\n")
    assert planned_outputs(project) >= {"results/align/talking.parquet", "results/align/single.parquet"}
    assert "results/landmarks/talking.parquet" not in planned_outputs(project)


def test_bad_sample_sheet_fails_with_row_message(tmp_path, feat_media):
    write_project(tmp_path, {"ok": feat_media / "single_face.mp4"})
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(sheet.read_text() + "bad id\tvideos/missing.mp4\ts9\t\t\t\t\n")
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "samples.tsv line 3 (video_id 'bad id')" in text
    assert "video file not found" in text


def test_label_outside_the_configured_set_fails_the_dry_run(tmp_path, feat_media):
    write_project(tmp_path, {"ok": feat_media / "single_face.mp4"})
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(sheet.read_text().replace("\ts0\t\t\t\t", "\ts0\ttrain\tNormal\t\t"))
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert ("samples.tsv line 2 (video_id 'ok'): label 'Normal' is not one of the configured labels "
            "['depression', 'normal'] (config `labels:`); nearest valid: 'normal'") in proc.stdout + proc.stderr


def test_override_typo_fails_the_dry_run(tmp_path, feat_media):
    """Before any job runs - so before Snakemake deletes the previous checkpoint."""
    write_project(tmp_path, {"ok": feat_media / "single_face.mp4"}, models="{overrides: {stst: {epoch: 2}}}")
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "models.overrides.stst: unknown key 'epoch' (did you mean 'epochs'?)" in proc.stdout + proc.stderr


def test_bad_config_value_is_rejected(tmp_path, feat_media):
    write_project(tmp_path, {"ok": feat_media / "single_face.mp4"}, landmarks="{detect_scale: 3}")
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "detect_scale" in proc.stdout + proc.stderr


def test_config_typo_is_a_few_lines_naming_the_key_and_the_file(tmp_path, feat_media):
    """Not Snakemake's schema and config dump: the problem, the nearest key, the files to fix."""
    write_project(tmp_path, {"ok": feat_media / "single_face.mp4"}, landmarks="{redetect_evry: 30}")
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert ("config landmarks: unknown key 'redetect_evry'; nearest valid: 'redetect_every'") in text
    assert f"Fix them in {tmp_path / 'config.yaml'}" in text
    assert "Failed validating" not in text and len(text.splitlines()) < 15, text


def test_degenerate_study_warns_once_at_dag_time(tmp_path, feat_media):
    """One train and one test video, no dev split: one line each, before any job."""
    write_project(tmp_path, {"a": feat_media / "single_face.mp4", "b": feat_media / "single_face.mp4"})
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(sheet.read_text().replace("\ts0\t\t\t\t", "\ts0\ttrain\tnormal\t\t")
                     .replace("\ts1\t\t\t\t", "\ts1\ttest\tdepression\t\t"))
    text = snakemake(tmp_path, "-n").stderr
    warnings = [ln for ln in text.splitlines() if ln.startswith("facevox study warning: ")]
    assert warnings == ["facevox study warning: " + w for w in [
        "split train: 1 video(s), fewer than models.min_split_videos (3) - its metrics rest on very few videos",
        "split train: one class only ('normal', 1 video(s)) - AUC undefined, F1 of one class",
        "split dev: no video - training keeps the last epoch, no early stopping (give some subjects split dev)",
        "split test: 1 video(s), fewer than models.min_split_videos (3) - its metrics rest on very few videos",
        "split test: one class only ('depression', 1 video(s)) - AUC undefined, F1 of one class",
        "label 'depression': no train video has it - models cannot learn it",
    ]]


@pytest.mark.slow
def test_dvlog_features_run_through_the_same_dag(tmp_path):
    """source: dvlog - D-Vlog's released features are imported by a rule and go on to the shards;
    source: aligned - the same tables imported by the CLI beforehand."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fake_dvlog", REPO / "benchmarks" / "make_fake_dvlog.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    fake.make_fake_dvlog(tmp_path / "dvlog", n=12, seed=1, min_t=200, max_t=700)
    (tmp_path / "config.yaml").write_text(f"source: dvlog\ndvlog_root: {tmp_path / 'dvlog'}\n"
                                          "models: {run: [lr], seeds: [0]}\n")
    outputs = planned_outputs(tmp_path)
    assert {"results/imported/samples.tsv", "results/shards/landmarks_egemaps"} <= outputs
    assert not any(o.startswith(("results/landmarks/", "results/qa")) for o in outputs)
    snakemake(tmp_path, "--cores", "2")
    manifest = json.loads((tmp_path / "results/shards/landmarks_egemaps/manifest.json").read_text())
    sheet = pd.read_csv(tmp_path / "results/imported/samples.tsv", sep="\t", comment="#")
    assert sum(s["videos"] for s in manifest["splits"].values()) == len(sheet) == 12
    assert manifest["splits"]["train"]["slices"] > 0
    assert planned_outputs(tmp_path) == set()

    other = tmp_path / "aligned_source"
    other.mkdir()
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    subprocess.run([sys.executable, "-m", "facevox", "import-dvlog", str(tmp_path / "dvlog"),
                    str(other / "imported"), str(other / "samples.tsv")], check=True, env=env)
    (other / "config.yaml").write_text("samples: samples.tsv\nsource: aligned\n")
    outputs = planned_outputs(other)
    assert "results/shards/landmarks_egemaps" in outputs and "results/align/0.parquet" in outputs


def test_dvlog_export_is_on_demand(tmp_path, feat_media):
    """Not in `rule all`; from videos at the native rate it gets its own 1 Hz alignment."""
    write_project(tmp_path, {"single": feat_media / "single_face.mp4"})
    assert not any(o.startswith("results/export/") for o in planned_outputs(tmp_path))
    planned = planned_outputs(tmp_path, "results/export/dvlog/labels.csv")
    assert {"results/export/aligned_1hz/single.parquet", "results/export/dvlog/labels.csv"} <= planned
    assert "results/align/single.parquet" not in planned


@pytest.mark.slow
def test_dvlog_import_and_export_rules(tmp_path):
    """source: dvlog with a subjects file -> import.json; the export rule writes the layout back."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fake_dvlog", REPO / "benchmarks" / "make_fake_dvlog.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    fake.make_fake_dvlog(tmp_path / "dvlog", n=4, seed=2, min_t=20, max_t=40)
    (tmp_path / "subjects.csv").write_text("index,subject_id\n0,a\n1,a\n2,b\n3,c\n")
    (tmp_path / "config.yaml").write_text(f"source: dvlog\ndvlog_root: {tmp_path / 'dvlog'}\n"
                                          f"dvlog: {{subjects: {tmp_path / 'subjects.csv'}}}\n")
    snakemake(tmp_path, "--cores", "1", "results/export/dvlog/labels.csv")
    summary = json.loads((tmp_path / "results/imported/import.json").read_text())
    assert summary["warnings"] == [] and summary["landmark_orders"] == {"interleaved": 4}
    labels = (tmp_path / "results/export/dvlog/labels.csv").read_text()
    assert labels.splitlines()[0] == "index,label,duration,gender,fold" and len(labels.splitlines()) == 5
    assert (tmp_path / "results/export/dvlog/subjects.csv").read_text() == (tmp_path / "subjects.csv").read_text()
    assert (tmp_path / "results/logs/export_dvlog.log").exists()
    assert (tmp_path / "results/benchmarks/export_dvlog.tsv").exists()


def test_openface_folder_is_imported_by_a_rule(tmp_path, feat_media):
    folder = tmp_path / "openface"
    folder.mkdir()
    shutil.copyfile(feat_media / "OpenFace_Test.csv", folder / "OpenFace_Test.csv")
    (tmp_path / "config.yaml").write_text(f"source: openface\nopenface_dir: {folder}\n")
    assert planned_outputs(tmp_path) == {"results/imported/samples.tsv", "results/align/OpenFace_Test.parquet",
                                         "results/run_card.json", "results/report/run_card.html",
                                         "results/report/study.html", "results/report/videos.html"}
    snakemake(tmp_path, "--cores", "1")
    aligned, meta = read_table(tmp_path / "results/align/OpenFace_Test.parquet", ALIGNED_SCHEMA)
    assert len(aligned) > 0 and not aligned["audio_success"].any()


def test_source_without_its_input_is_a_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("source: dvlog\n")
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "source dvlog needs `dvlog_root:`" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_models_train_evaluate_and_rerun_only_what_changed(tmp_path):
    """Imported features with splits: every (model, seed) trains and evaluates, the tables and
    the report follow; changing one model's override reruns that model's jobs (and the
    aggregates) only; adding a seed adds that seed's jobs only."""
    from facevox.dataset.synthetic import planted_project

    planted_project(tmp_path, {"train": 4, "dev": 2, "test": 2}, rows=330)
    tiny = "{epochs: 1, batch_size: 4, hidden_size: 8}"
    (tmp_path / "config.yaml").write_text(
        "samples: samples.tsv\nsource: aligned\nshards: {length: 60}\n"
        f"models: {{run: [lr, blstm], seeds: [0], device: cpu, overrides: {{blstm: {tiny}}}}}\n"
        "report: {bootstrap_resamples: 50}\n")
    planned = planned_outputs(tmp_path)
    assert {"results/models/blstm/seed0.ckpt", "results/metrics/lr/seed0.json",
            "results/tables/classification.md", "results/plots/blstm"} <= planned
    snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    metrics = json.loads((tmp_path / "results/metrics/blstm/seed0.json").read_text())
    assert metrics["task"] == "classification" and metrics["splits"]["test"]["n"] == 2
    assert (tmp_path / "results/logs/train/blstm/seed0.log").exists()
    assert (tmp_path / "results/benchmarks/train/blstm/seed0.tsv").exists()
    table = (tmp_path / "results/tables/classification.md").read_text()
    assert "BLSTM" in table and "LR" in table
    assert planned_outputs(tmp_path) == set()
    # one HTML report: the tables and every model's plots embedded in it
    snakemake(tmp_path, "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "classification.html" in html and "Metric tables" in html and "run_card.html" in html
    for page in ("study.html", "videos.html", "models/lr.html", "models/blstm.html"):
        assert f"results/report/{page}" in html, page
    videos_page = (tmp_path / "results/report/videos.html").read_text()
    sheet = pd.read_csv(tmp_path / "samples.tsv", sep="\t", comment="#")
    assert all(f'id="video-{v}"' in videos_page for v in sheet["video_id"])
    for model, figure in (("blstm", "confusion.png"), ("blstm", "training.png"), ("lr", "roc.png")):
        assert f"results/plots/{model}/{figure}" in html, (model, figure)
    assert html.count("data:image/png;base64") >= 6 or html.count("image/png") >= 6

    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("hidden_size: 8", "hidden_size: 6"))
    aggregates = {"results/tables/classification.csv", "results/run_card.json"}
    again = planned_outputs(tmp_path)
    assert {"results/models/blstm/seed0.ckpt", "results/metrics/blstm/seed0.json"} <= again
    assert aggregates <= again and not any("/lr/" in o for o in again)

    config.write_text(config.read_text().replace("hidden_size: 6", "hidden_size: 8").replace(
        "seeds: [0]", "seeds: [0, 1]"))
    again = planned_outputs(tmp_path)
    assert {"results/models/lr/seed1.ckpt", "results/models/blstm/seed1.ckpt"} <= again
    assert not any("seed0" in o for o in again)


@pytest.mark.slow
def test_bad_inputs_are_excluded_and_reported(tmp_path, talking_video, speech_wav):
    """Issue 18.1: 4 good videos + a 0-byte file + a cut-off MP4 + a text file named .mp4 + an
    audio-only file, with the workstation profile (--keep-going, retries). on_bad_input: fail
    stops before the shards with the four reasons (the good videos' extraction done); then
    exclude (the default) runs on from there, recomputing none of it, to the model and the
    report, and every listing (inputs.tsv, qa.tsv, run card, report, last lines) names the four."""
    import base64

    from tests.conftest import read_audio, write_media

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(1, 5):
        shutil.copyfile(talking_video, videos / f"g{i}.mp4")
    (videos / "empty.mp4").write_bytes(b"")
    data = talking_video.read_bytes()  # PyAV writes the index (moov) last: a cut loses it
    (videos / "cut.mp4").write_bytes(data[: len(data) // 2])
    (videos / "text.mp4").write_text("This is a text file renamed to .mp4.\n")
    write_media(videos / "voice.mp4", audio=read_audio(speech_wav))
    rows = [("g1", "train", "depression"), ("g2", "train", "normal"), ("g3", "dev", "depression"),
            ("g4", "test", "normal"), ("empty", "train", "normal"), ("cut", "train", "depression"),
            ("text", "dev", "normal"), ("voice", "test", "depression")]
    (tmp_path / "samples.tsv").write_text("video_id\tpath\tsubject_id\tsplit\tlabel\n" + "".join(
        f"{vid}\tvideos/{vid}.mp4\ts{vid}\t{split}\t{label}\n" for vid, split, label in rows))
    base = ("samples: samples.tsv\nshards: {length: 20}\nreport: {bootstrap_resamples: 20}\n"
            "models: {run: [lr], seeds: [0], device: cpu}\n")
    reasons = {"empty": "file is empty (0 bytes)",
               "cut": "not a readable media file (Invalid data found when processing input): cut off: an MP4/MOV "
                      f"file of {len(data) // 2} bytes whose 'mdat' box needs",
               "text": "not a readable media file (Invalid data found when processing input): the file is text, "
                       "not media",
               "voice": "has no video stream (audio only)"}
    profile = ("--profile", str(REPO / "workflow/profiles/workstation"), "--cores", "2")

    (tmp_path / "config.yaml").write_text(base + "on_bad_input: fail\n")
    failed = snakemake(tmp_path, *profile, check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "4 of 8 input(s) cannot be read (on_bad_input: fail" in text
    for vid, reason in reasons.items():
        assert f"  {vid}: {reason}" in text, vid
    assert text.count("Error in rule inputs") == 1  # not retried, and the only failed job
    assert not (tmp_path / "results/shards").exists() and not (tmp_path / "results/models").exists()
    made = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*/g*.*")}
    assert len(made) == 4 * len(PER_VIDEO_RULES)  # the good videos' extraction completed

    (tmp_path / "config.yaml").write_text(base)  # on_bad_input: exclude, the default
    done = snakemake(tmp_path, *profile)
    assert {p: p.stat().st_mtime_ns for p in made} == made  # nothing recomputed
    lines = done.stderr.strip().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("facevox: 4 input(s) EXCLUDED"))
    last = lines[start:]
    assert last[0].startswith("facevox: 4 input(s) EXCLUDED, they cannot be read (the run went on without them")
    for vid, reason in reasons.items():
        assert any(line.startswith(f"  {vid}: {reason}") for line in last[1:5]), vid
    # g1-g4 are one video (one face) under four subject ids in train, train, dev and test: the
    # identity check reports the 5 pairs across splits (issue 28.5), at distance 0
    # the only dev 'normal' and test 'depression' videos are excluded: study warnings from the QA records
    # (issue 29), then the identity check
    assert last[5].startswith("facevox study warning: split dev: every 'normal' video is unusable for the face "
                              "models (text: excluded: not a readable media file")
    assert last[6].startswith("facevox study warning: split test: every 'depression' video is unusable for the "
                              "face models (voice: excluded: has no video stream (audio only)")
    assert last[7].startswith("facevox: 5 pair(s) of videos in different splits show the SAME FACE")
    overlap = pd.read_csv(tmp_path / "results/identity_overlap.tsv", sep="\t")
    leaks = overlap[overlap["cross_split"]]
    assert len(leaks) == 5 and (leaks["distance"] < 1e-6).all()
    qa = pd.read_csv(tmp_path / "results/qa.tsv", sep="\t", keep_default_na=False).set_index("video_id")
    assert sorted(qa.index) == sorted(v for v, _, _ in rows)
    for vid, reason in reasons.items():
        assert qa.loc[vid, "flags"] == "excluded" and qa.loc[vid, "excluded_reason"].startswith(reason), vid
    assert (qa.loc[["g1", "g2", "g3", "g4"], "flags"] != "excluded").all()
    assert all("same_face_other_subject" in qa.loc[v, "flags"] for v in ("g1", "g2", "g3", "g4"))
    manifest = json.loads((tmp_path / "results/shards/landmarks_egemaps/manifest.json").read_text())
    assert {k: v["videos"] for k, v in manifest["splits"].items()} == {"train": 2, "dev": 1, "test": 1}
    assert (tmp_path / "results/models/lr/seed0.ckpt").exists()
    card = json.loads((tmp_path / "results/run_card.json").read_text())
    assert sorted(card["excluded_inputs"]) == sorted(reasons)
    assert all(card["excluded_inputs"][v]["problem"].startswith(r) for v, r in reasons.items())

    snakemake(tmp_path, "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    assert '"Inputs"' in html and "classification.html" in html
    uri = re.search(r"filename=inputs\.tsv;base64,([A-Za-z0-9+/=]+)", html).group(1)
    table = base64.b64decode(uri).decode()
    for vid, reason in reasons.items():
        assert f"{vid}\texcluded\tprobe\t{reason}" in table, vid


def cv_project(tmp_path, cv: str, sweeps: str = "{}") -> Path:
    """A planted aligned cohort of 6 subjects x 2 videos under ``cv``: lr (swept over C) and blstm."""
    from facevox.dataset.synthetic import planted_project

    sheet = planted_project(tmp_path, {"train": 12}, rows=330)
    table = pd.read_csv(sheet, sep="\t")
    table["subject_id"] = [f"p{i // 2}" for i in range(len(table))]  # two videos per person
    table["label"] = ["depression" if (i // 2) % 2 else "normal" for i in range(len(table))]
    table.to_csv(sheet, sep="\t", index=False)
    tiny = "{epochs: 1, batch_size: 4, hidden_size: 8}"
    (tmp_path / "config.yaml").write_text(
        f"samples: samples.tsv\nsource: aligned\nshards: {{length: 60}}\ncv: {cv}\nsweeps: {sweeps}\n"
        f"models: {{run: [lr, blstm], seeds: [0], device: cpu, overrides: {{blstm: {tiny}}}}}\n"
        "report: {bootstrap_resamples: 50}\n")
    return tmp_path


def test_cross_validation_and_sweeps_are_wildcards_of_the_dag(tmp_path):
    """kfold: a sheet, a shard set and the trainings per fold; a sweep's variants are models of their own."""
    workdir = cv_project(tmp_path, "{scheme: kfold, folds: 3}", "{lr: {C: [0.1, 1.0]}}")
    planned = planned_outputs(workdir)
    for k in range(3):
        assert {f"results/folds/fold{k}.tsv", f"results/shards/fold{k}/landmarks_egemaps",
                f"results/models/blstm/fold{k}/seed0.ckpt", f"results/metrics/lr@C=0.1/fold{k}/seed0.json",
                f"results/metrics/lr@C=1.0/fold{k}/seed0.json"} <= planned
    assert "results/shards/landmarks_egemaps" not in planned  # no shard set of the sheet's own splits
    assert not any(o.startswith("results/models/lr/") for o in planned)  # the swept model: its variants only
    assert {"results/plots/lr@C=0.1", "results/report/models/lr@C=1.0.html", "results/tables/classification.md"} \
        <= planned
    loso = planned_outputs(cv_project(tmp_path / "loso", "{scheme: loso}"))
    assert {f"results/metrics/lr/fold{k}/seed0.json" for k in range(6)} <= loso  # one fold per subject
    assert "results/metrics/lr/fold6/seed0.json" not in loso


def test_predict_sheet_scores_new_videos_and_refuses_a_study_id(tmp_path, feat_media):
    write_project(tmp_path, {"one": feat_media / "single_face.mp4", "two": feat_media / "face_noface.mov"},
                  models="{run: [lr], seeds: [0]}")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(sheet.read_text().replace("\ts0\t\t\t", "\ts0\ttrain\tdepression\t").replace(
        "\ts1\t\t\t", "\ts1\ttest\tnormal\t"))
    shutil.copyfile(feat_media / "single_face.mp4", tmp_path / "videos" / "new.mp4")
    (tmp_path / "predict.tsv").write_text("video_id\tpath\nnewcomer\tvideos/new.mp4\n")
    with (tmp_path / "config.yaml").open("a") as f:
        f.write("predict: predict.tsv\n")
    planned = planned_outputs(tmp_path)
    assert {"results/align/newcomer.parquet", "results/predict/lr/seed0.parquet"} <= planned
    assert "results/qa/newcomer.json" not in planned  # not part of the study: no QA, no shards
    (tmp_path / "predict.tsv").write_text("video_id\tpath\none\tvideos/new.mp4\n")
    proc = snakemake(tmp_path, "-n", check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "video_id 'one'" in said and "also in the study sheet samples.tsv" in said


@pytest.mark.slow
def test_cross_validation_runs_per_fold_and_reports_folds_subjects_and_holm(tmp_path):
    """A 2-fold run of a swept lr and blstm: per-fold sheets (no subject in two folds), shard sets normalised
    on each fold's own train part, per-fold metrics naming the fold, a table naming folds and subjects with
    Holm p-values and the variant chosen on dev; a changed fold count reruns no per-video work."""
    workdir = cv_project(tmp_path, "{scheme: kfold, folds: 2}", "{lr: {C: [0.1, 1.0]}}")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
    results = workdir / "results"
    sheets = [pd.read_csv(results / f"folds/fold{k}.tsv", sep="\t") for k in range(2)]
    tested = [set(s.loc[s["split"] == "test", "subject_id"]) for s in sheets]
    assert not tested[0] & tested[1] and tested[0] | tested[1] == {f"p{i}" for i in range(6)}
    for s in sheets:
        assert (s.groupby("subject_id")["split"].nunique() == 1).all()
    norms = [json.loads((results / f"shards/fold{k}/landmarks_egemaps/norm.json").read_text()) for k in range(2)]
    assert norms[0] != norms[1]  # each fold's statistics from its own train part
    record = json.loads((results / "metrics/lr@C=0.1/fold1/seed0.json").read_text())
    assert record["model"] == "lr" and record["name"] == "lr@C=0.1" and record["variant"] == {"C": 0.1}
    assert record["sweep"] and record["fold"] == 1 and record["cv"]["folds"] == 2 and record["cv"]["subjects"] == 6
    assert set(record["cv"]["test_subjects"]) == tested[1]
    table = (results / "tables/classification.md").read_text()
    assert "2 folds" in table and "6 subjects" in table and "Holm" in table and "chosen" in table
    assert planned_outputs(workdir) == set()
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace("folds: 2", "folds: 3"))
    again = planned_outputs(workdir)
    assert {"results/folds/fold2.tsv", "results/metrics/blstm/fold2/seed0.json"} <= again
    assert not any(o.startswith("results/align/") for o in again)  # the per-video work is shared by the folds
