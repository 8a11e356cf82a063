# Shared by every .smk file - the sample sheet and all input functions that the rules use;
# what a model family needs (data folder, sheet, score, GPU, config keys) comes from one
# table, facevox.models.families; the rules only ask it.
import json
import shlex

import pandas as pd
import sys
from pathlib import Path

from facevox.contract import AU_SCHEMA, SPLITS, schema_tag
from facevox.dataset.folds import assignments, describe as describe_fold
from facevox.dataset.import_dvlog import dvlog_samples
from facevox.dataset.import_openface import openface_samples
from facevox.dataset.splits import study_warnings, unusable_class_warnings
from facevox.dataset.labels import label_file
from facevox.errors import FacevoxError
from facevox.extract.action_units import resolve_backend
from facevox.extract.qa import unusable_videos
from facevox.models import check_overrides, check_sweeps
from facevox.models.families import check_run, family, job_settings, run_models, with_variant_overrides
from facevox.report.tables import table_tasks
from facevox.report.timelines import timeline_videos
from facevox.samples import (VIDEO_ID, check_label_config, check_labels, check_predict_sheet, check_references,
                             reference_of, sheet_or_hint)
from facevox.training.device import job_partition

# Everything a job would trip over later is checked here, before any job runs (or deletes an output).
check_label_config(config["labels"], config["models"]["positive_label"])
SOURCE = config["source"]
if SOURCE in ("videos", "aligned"):
    if not config["samples"]:
        raise FacevoxError(f"config: source {SOURCE} needs `samples:` (a sample sheet)")
    # validated: clear message per bad row; a missing sheet names the --configfile to repeat (overlay runs)
    SAMPLES = sheet_or_hint(config["samples"], labels=config["labels"])
    SHEET = config["samples"]
    if SOURCE == "videos" and config["target"]["mode"] == "reference":
        check_references(SAMPLES, Path(SHEET).name)  # every video has a reference face, or one line per row
else:  # imported by import.smk: the sheet is the import's output
    folder = config["dvlog_root"] if SOURCE == "dvlog" else config["openface_dir"]
    if not folder:
        raise FacevoxError(f"config: source {SOURCE} needs `{'dvlog_root' if SOURCE == 'dvlog' else 'openface_dir'}:`")
    SAMPLES = dvlog_samples(folder, config["dvlog"]["subjects"]) if SOURCE == "dvlog" else openface_samples(folder)
    check_labels(SAMPLES, config["labels"], folder)
    SHEET = "results/imported/samples.tsv"
SHEET_FILE = SHEET  # the sheet the user gave (SHEET becomes the included sheet below)
INPUTS_TABLE = "results/inputs.tsv"  # every video: included or excluded, and why (rule inputs)
INCLUDED_SHEET = "results/samples.included.tsv"
if SOURCE == "videos":  # the aggregates read the videos the gate let through (facevox.extract.exclusion)
    SHEET = INCLUDED_SHEET
check_run(config["models"]["run"])  # unknown model names: one clear line before any job
# sweeps: each swept model of models.run becomes its variants (stst@lr=0.0001,dropout=0.1), whose overrides
# (the model's own with the variant's values on top) every per-model lookup finds under the variant's name
check_sweeps(config["sweeps"])
RUN_MODELS = run_models(config["models"]["run"], config["sweeps"])
config["models"] = with_variant_overrides(config["models"], config["sweeps"])
check_overrides(config["models"]["overrides"])  # the sweeps' keys too
VIDEOS = list(SAMPLES.index)
# predict: new videos to score with the trained models (video_id, path); extracted like the study's videos
PREDICT = (check_predict_sheet(config["predict"], SAMPLES, SHEET_FILE, reference=config["target"]["mode"] == "reference")
           if config["predict"] else SAMPLES.iloc[:0])
if len(PREDICT) and SOURCE != "videos":
    raise FacevoxError(f"config: predict needs source: videos (the new videos are extracted like the study's), not {SOURCE}")
PREDICT_VIDEOS = list(PREDICT.index)
ALL_SAMPLES = pd.concat([SAMPLES, PREDICT]) if len(PREDICT) else SAMPLES  # the per-video rules' rows
# cross-validation (cv.scheme kfold / loso): the fold wildcard is fold<k>/ (the sheet's splits: "")
CV = config["cv"]
FOLD_ASSIGNMENTS = assignments(SAMPLES, CV)
FOLDS = [f"fold{k}/" for k in range(len(FOLD_ASSIGNMENTS))] or [""]
FOLD = "(fold[0-9]+/)?"
MODEL_NAME = "[a-z0-9_]+(@[^/]+)?"
# A degenerate study (tiny or one-class split, dev too small for early stopping, a label with
# no video): one line each when the DAG is built (not again in every job), kept in the run card.
STUDY_WARNINGS = study_warnings(SAMPLES, config["labels"], min_split_videos=config["models"]["min_split_videos"],
                                min_dev_videos=config["models"]["min_dev_videos"])


def unusable_warnings():
    """The study warnings the QA records written so far add: a class of a split whose every video is
    unusable for the face models (splits.unusable_class_warnings). Printed, never a job's params:
    a job re-parsed on a cluster node would see other records than the DAG did (the run card
    computes them from results/qa.tsv itself)."""
    if SOURCE != "videos":
        return []
    return unusable_class_warnings(SAMPLES, unusable_videos({v: f"results/qa/{v}.json" for v in VIDEOS}))


if workflow.is_main_process:
    for _line in STUDY_WARNINGS + unusable_warnings():  # the second: from an earlier run's QA records
        print(f"facevox study warning: {_line}", file=sys.stderr)
REPORT = config["report"]
TABLE_TASKS = table_tasks(config["models"]["run"])
RUN_CARD = "results/run_card.json"
# The per-video rules form one group: on a cluster each video's chain (probe ... qa_video) is
# one submitted job (`--group-components video=N` packs N videos into one); locally groups
# change nothing. The aggregates (inputs gate, qa, shards, train, ...) are jobs of their own.
PER_VIDEO = "video"
RUN_CARD_PAGE = "results/report/run_card.html"
TIMELINE_VIDEOS = (timeline_videos(SAMPLES, REPORT["timelines"]["videos"], REPORT["timelines"]["per_split"])
                   if SOURCE == "videos" else [])


def video_path(wildcards):
    return ALL_SAMPLES.loc[wildcards.video, "path"]


# --------------------------------------------------------------------------- folds
def fold_index(fold: str) -> int:
    """fold<k>/ -> k."""
    return int(fold.removeprefix("fold").removesuffix("/"))


def fold_sheet(fold: str) -> str:
    """The sheet a fold's shards, trainings and evaluations read: the (included) sheet itself for
    the sheet's own splits, else results/folds/fold<k>.tsv (rule fold_sheet)."""
    return SHEET if not fold else f"results/folds/{fold.removesuffix('/')}.tsv"


def fold_assignment(wildcards) -> str:
    """The fold's subject -> split assignment (JSON; facevox.dataset.folds.assignments, computed at DAG time)."""
    return json.dumps(FOLD_ASSIGNMENTS[int(wildcards.k)], sort_keys=True)


def fold_json(wildcards) -> str:
    """What the fold's metrics record says about it (facevox.dataset.folds.describe; "" for the sheet's splits)."""
    if not wildcards.fold:
        return ""
    k = fold_index(wildcards.fold)
    return json.dumps(describe_fold(FOLD_ASSIGNMENTS[k], k, CV), sort_keys=True)


def fold_option(wildcards) -> str:
    fold = fold_json(wildcards)
    return f"--fold-json {shlex.quote(fold)}" if fold else ""


def shard_dir(fold: str) -> str:
    """A fold's shard set (the sheet's splits: results/shards/<feature_set>)."""
    return f"results/shards/{fold}{config['shards']['feature_set']}"


def stage_json(section):
    """A stage's config section as JSON: the `params` that make its jobs stale when changed."""
    return json.dumps(config[section], sort_keys=True)


# --------------------------------------------------------------------------- inputs
def inputs_records():
    """What the gate reads per video: the records every later stage derives from (probe,
    egemaps, landmarks), in that order (the first excluded one gives the reason)."""
    return [f"results/{stage}/{video}.{ext}" for video in VIDEOS
            for stage, ext in (("probe", "json"), ("egemaps", "parquet"), ("landmarks", "parquet"))]


# --------------------------------------------------------------------------- landmarks
def landmarks_inputs(wildcards):
    """The video and - for target.mode reference - its reference face (its own or its subject's)."""
    inputs = {"video": video_path(wildcards)}
    if config["target"]["mode"] == "reference":
        inputs["reference"] = reference_of(ALL_SAMPLES, wildcards.video, sheet_name(wildcards.video))[0]
    return inputs


def sheet_name(video: str) -> str:
    """The file name of the sheet that lists ``video`` (the study's or the predict sheet)."""
    return Path(config["predict"] if video in PREDICT.index else SHEET_FILE).name


def reference_option(wildcards, input):
    """--reference (and its time and sheet row) for target.mode reference, else nothing."""
    if "reference" not in input.keys():
        return ""
    _, time_s, where = reference_of(ALL_SAMPLES, wildcards.video, sheet_name(wildcards.video))
    return (f"--reference {shlex.quote(input.reference)} --reference-row {shlex.quote(where)}"
            + (f" --reference-s {time_s!r}" if time_s is not None else ""))


# --------------------------------------------------------------------------- identity_overlap, qa
IDENTITY_OVERLAP = "results/identity_overlap.tsv"  # rule identity_overlap (source videos)


def qa_overlap_input(wildcards):
    """results/identity_overlap.tsv (source videos): its cross-split pairs flag their videos."""
    return {"identity_overlap": IDENTITY_OVERLAP} if SOURCE == "videos" else {}


def qa_overlap_option(wildcards, input):
    return f"--identity-overlap {shlex.quote(input.identity_overlap)}" if "identity_overlap" in input.keys() else ""


def identity_overlap_summary():
    """The run's last lines: every pair of videos in different splits whose target is one face
    under two subject ids, among the landmarks tables written so far (source: videos)."""
    if SOURCE == "videos":
        from facevox.extract.identity_overlap import summary_lines

        paths = expand("results/landmarks/{video}.parquet", video=VIDEOS)
        for line in summary_lines(SAMPLES, paths, config["target"]["overlap_distance"],
                                  config["target"]["on_identity_overlap"]):
            print(line, file=sys.stderr)


# --------------------------------------------------------------------------- action_units
def au_inputs(wildcards):
    """The video, its landmarks and - for the openface backend - its OpenFace CSV."""
    inputs = {"video": video_path(wildcards), "landmarks": f"results/landmarks/{wildcards.video}.parquet"}
    openface = ALL_SAMPLES.loc[wildcards.video, "openface_csv"]
    if config["action_units"]["backend"] == "openface" and openface:
        inputs["openface"] = openface
    return inputs


def au_backend(wildcards):
    return resolve_backend(config["action_units"]["backend"], config["action_units"].get("openface_models_dir", ""))


def openface_option(wildcards, input):
    return f"--openface-csv {shlex.quote(input.openface)}" if "openface" in input.keys() else ""


# --------------------------------------------------------------------------- models
def model_json(wildcards):
    """What one (model, seed) job depends on: the settings its family reads and its own
    overrides only, so adding a model to `run`, a seed to `seeds` or changing another
    family's settings leaves finished trainings alone."""
    return json.dumps(job_settings(wildcards.model, config["models"]), sort_keys=True)


def model_gpus(wildcards):
    """gpu=1 for the families that take one, unless models.device is cpu."""
    return int(family(wildcards.model, config["models"]).gpu and config["models"]["device"] != "cpu")


def model_partition(wildcards):
    """SLURM partition of a train/evaluate job: the GPU one (FACEVOX_SLURM_GPU_PARTITION) only when
    it asks for a GPU - never for the scikit-learn baselines or models.device: cpu (facevox.training.device)."""
    return job_partition(model_gpus(wildcards))


def split_videos(need_score=False):
    """Videos of the sheet in a split (and with a score when asked)."""
    rows = SAMPLES[SAMPLES["split"].isin(SPLITS)]
    if need_score:
        rows = rows[rows["score"].notna()]
    return list(rows.index)


def train_data(wildcards):
    """The folder a model trains on: the shard set, the aligned tables (protocol whole),
    the aligned faces or the FAU windows."""
    fam = family(wildcards.model, config["models"])
    if fam.data == "shards":
        return shard_dir(wildcards.fold)
    if fam.data == "align":  # every source has them
        return "results/align"
    if SOURCE != "videos":
        raise FacevoxError(f"model {wildcards.model} needs source: videos (it trains on "
                           f"{'face crops' if fam.data == 'faces' else 'FAU windows'} extracted from the videos)")
    if fam.data == "faces" and not config["faces"]["keep_face_images"]:
        raise FacevoxError(f"model {wildcards.model} trains on face crops: set faces.keep_face_images: "
                           "true (off by default for privacy)")
    return f"results/{fam.data}"


def train_inputs(wildcards):
    """Files a (model, seed) job reads - the DAG's edges."""
    fam = family(wildcards.model, config["models"])
    data = train_data(wildcards)
    if not fam.needs_sheet:
        return {"data": data}
    videos = split_videos(need_score=fam.needs_score)
    inputs = {"sheet": fold_sheet(wildcards.fold), "data": expand(f"{data}/{{video}}.parquet", video=videos)}
    if "affect" in fam.reads:
        labels_dir = config["models"]["affect"]["labels_dir"]
        inputs["labels"] = [str(label_file(v, SAMPLES.loc[v, "affect_labels"], labels_dir)) for v in videos]
    return inputs


def model_targets():
    """Metrics of every (model, seed): needs a train split and a dev or test split."""
    splits = set(SAMPLES["split"])
    if not FOLD_ASSIGNMENTS and ("train" not in splits or not splits & {"dev", "test"}):
        return []
    return expand("results/metrics/{model}/{fold}seed{seed}.json", model=RUN_MODELS, fold=FOLDS,
                  seed=config["models"]["seeds"])


def predict_targets():
    """results/predict/<model>/seed<s>.parquet of every (model, seed) when a predict sheet is configured."""
    if not PREDICT_VIDEOS:
        return []
    return expand("results/predict/{model}/seed{seed}.parquet", model=RUN_MODELS, seed=config["models"]["seeds"])


def predict_folder(wildcards) -> str:
    """The per-video tables a model scores new videos from: results/align for the slice and whole-video
    models (the model file has the slicing and normalisation), results/faces or results/fau_windows."""
    fam = family(wildcards.model, config["models"])
    if fam.data == "faces" and not config["faces"]["keep_face_images"]:
        raise FacevoxError(f"model {wildcards.model} scores face crops: set faces.keep_face_images: true")
    return "results/align" if fam.data in ("shards", "align") else f"results/{fam.data}"


def predict_data(wildcards):
    """The new videos' per-video tables a model reads (rule predict)."""
    return expand(f"{predict_folder(wildcards)}/{{video}}.parquet", video=PREDICT_VIDEOS)


def model_metrics(wildcards):
    """Every metrics file of one model (or sweep variant): its folds x seeds."""
    return expand("results/metrics/{model}/{fold}seed{seed}.json", model=wildcards.model, fold=FOLDS,
                  seed=config["models"]["seeds"])


def model_predictions(wildcards):
    return predictions_of(model_metrics(wildcards))


# --------------------------------------------------------------------------- report
def report_targets():
    """The report's outputs, for final_targets(): the study and per-video pages; tables,
    plots and prediction pages when models are evaluated; the QA overview and the
    timelines when the videos were processed (source: videos); the run card and its page."""
    targets = ["results/report/study.html", "results/report/videos.html"]
    if model_targets():
        targets += expand("results/tables/{task}.{ext}", task=TABLE_TASKS, ext=["csv", "md", "tex", "html"])
        targets += expand("results/plots/{model}", model=RUN_MODELS)
        targets += expand("results/report/models/{model}.html", model=RUN_MODELS)
        targets += predict_targets()
    if SOURCE == "videos":
        targets.append("results/plots/qa_overview.png")
        targets += expand("results/report/timelines/{video}.png", video=TIMELINE_VIDEOS)
    return targets + [RUN_CARD, RUN_CARD_PAGE]


def report_inputs(wildcards):
    """What the study and per-video pages read: the sheet, the QA table and probes (source
    videos), every model's metrics and predictions."""
    inputs = {"sheet": SHEET, "metrics": model_targets(), "predictions": predictions_of(model_targets())}
    if SOURCE == "videos":
        inputs["qa"] = "results/qa.tsv"
        inputs["probes"] = expand("results/probe/{video}.json", video=VIDEOS)
    return inputs


def qa_option(wildcards, input):
    return f"--qa {shlex.quote(input.qa)}" if "qa" in input.keys() else ""


def probes_option(wildcards, input):
    return "--probes " + " ".join(shlex.quote(p) for p in input.probes) if "probes" in input.keys() else ""


def timeline_inputs(wildcards):
    """One video's per-frame tables; its face crops only when keep_face_images is on
    (otherwise the landmark sheet draws on a neutral canvas: no face image in the report)."""
    inputs = {name: f"results/{name}/{wildcards.video}.parquet" for name in ("landmarks", "action_units", "egemaps")}
    if config["faces"]["keep_face_images"]:
        inputs["faces"] = f"results/faces/{wildcards.video}.parquet"
    return inputs


def faces_option(wildcards, input):
    return f"--faces {shlex.quote(input.faces)}" if "faces" in input.keys() else ""


def predictions_of(metrics):
    return [m.replace("results/metrics/", "results/predictions/", 1).removesuffix(".json") + ".parquet"
            for m in metrics]


def run_card_inputs(wildcards):
    """Everything else the run asks for, so the card is written last (stage times complete)."""
    return [t for t in final_targets() if t not in (RUN_CARD, RUN_CARD_PAGE)]


def final_targets():
    """What `rule all` asks for; face crops only when keep_face_images is true; with
    `source: aligned` (imported features) no per-video extraction; models, tables and
    plots when the sheet has the splits they need."""
    # normalisation needs a train split (under cross-validation every fold has one)
    shards = [shard_dir(f) for f in FOLDS] if FOLD_ASSIGNMENTS or (SAMPLES["split"] == "train").any() else []
    targets = expand("results/align/{video}.parquet", video=VIDEOS)
    if SOURCE != "videos":
        return targets + shards + model_targets() + report_targets()
    targets += expand("results/fau_windows/{video}.parquet", video=VIDEOS)
    if config["faces"]["keep_face_images"]:
        targets += expand("results/faces/{video}.parquet", video=VIDEOS)
    return targets + shards + [INPUTS_TABLE, "results/qa.tsv"] + model_targets() + report_targets()


# --------------------------------------------------------------------------- run summary
def unusable_summary():
    """The run's last lines: the study warnings of the QA records (a class of a split whose every
    video is unusable for the face models); said at DAG time from the next run on."""
    for line in unusable_warnings():
        print(f"facevox study warning: {line}", file=sys.stderr)


def excluded_summary():
    """The run's last lines: every input excluded so far, with its reason (source: videos)."""
    if SOURCE == "videos":
        from facevox.extract.exclusion import summary_lines

        for line in summary_lines(inputs_records(), config["on_bad_input"]):
            print(line, file=sys.stderr)
