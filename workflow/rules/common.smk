# Shared by every rule file: the sample sheet and small helpers for rule inputs.
import json
import shlex

from facevox.extract.action_units import resolve_backend
from facevox.dataset.labels import label_file
from facevox.contract import SPLITS
from facevox.errors import FacevoxError
from facevox.dataset.importers import dvlog_samples, openface_samples
from facevox.models import family_of
from facevox.samples import VIDEO_ID, read_samples

SOURCE = config["source"]
if SOURCE in ("videos", "aligned"):
    if not config["samples"]:
        raise FacevoxError(f"config: source {SOURCE} needs `samples:` (a sample sheet)")
    SAMPLES = read_samples(config["samples"])  # validated: clear message per bad row
    SHEET = config["samples"]
else:  # imported by a rule (import.smk): the sheet is the import's output
    folder = config["dvlog_root"] if SOURCE == "dvlog" else config["openface_dir"]
    if not folder:
        raise FacevoxError(f"config: source {SOURCE} needs `{'dvlog_root' if SOURCE == 'dvlog' else 'openface_dir'}:`")
    SAMPLES = dvlog_samples(folder, config["dvlog"]["subjects"]) if SOURCE == "dvlog" else openface_samples(folder)
    SHEET = "results/imported/samples.tsv"
VIDEOS = list(SAMPLES.index)
SHARDS = f"results/shards/{config['slices']['feature_set']}"


wildcard_constraints:
    video=VIDEO_ID.pattern.strip("^$"),


def video_path(wildcards):
    return SAMPLES.loc[wildcards.video, "path"]


def stage_json(section):
    """A stage's config section as JSON: the `params` that make its jobs stale when changed."""
    return json.dumps(config[section], sort_keys=True)


def au_inputs(wildcards):
    """The video, its landmarks and - for the openface backend - its OpenFace CSV."""
    inputs = {"video": video_path(wildcards), "landmarks": f"results/landmarks/{wildcards.video}.parquet"}
    openface = SAMPLES.loc[wildcards.video, "openface_csv"]
    if config["action_units"]["backend"] == "openface" and openface:
        inputs["openface"] = openface
    return inputs


def au_backend(wildcards):
    return resolve_backend(config["action_units"]["backend"])


def model_json(wildcards):
    """What one (model, seed) job depends on: the settings its family reads and its own
    overrides only, so adding a model to `run`, a seed to `seeds` or changing another
    family's settings leaves finished trainings alone."""
    family = family_of(wildcards.model)
    unused = {"run", "seeds", "threads", "overrides"}
    unused |= {"vision"} if family not in ("clip", "face") else set()
    unused |= {"affect"} if family != "fau" else set()
    unused |= {"max_missing_fraction", "max_memory_gb", "select_by", "positive_label"} if family in (
        "clip", "face", "fau") else set()
    cfg = {k: v for k, v in config["models"].items() if k not in unused}
    cfg["overrides"] = {wildcards.model: config["models"]["overrides"].get(wildcards.model, {})}
    return json.dumps(cfg, sort_keys=True)


def model_gpus(wildcards):
    """gpu=1 for the neural models unless models.device is cpu; the sklearn baselines need none."""
    return 0 if config["models"]["device"] == "cpu" or family_of(wildcards.model) == "sklearn" else 1


def split_videos(need_score=False):
    """Videos of the sheet in a split (and with a score when asked)."""
    rows = SAMPLES[SAMPLES["split"].isin(SPLITS)]
    if need_score:
        rows = rows[rows["score"].notna()]
    return list(rows.index)


def train_data(wildcards):
    """The folder a model trains on: the shard set, the aligned faces or the FAU windows."""
    family = family_of(wildcards.model)
    if family in ("sequence", "sklearn"):
        return SHARDS
    if SOURCE != "videos":
        raise FacevoxError(f"model {wildcards.model} needs source: videos (it trains on "
                           f"{'face crops' if family != 'fau' else 'FAU windows'} extracted from the videos)")
    if family in ("clip", "face"):
        if not config["aligned_faces"]["keep_face_images"]:
            raise FacevoxError(f"model {wildcards.model} trains on face crops: set aligned_faces.keep_face_images: "
                               "true (off by default for privacy)")
        return "results/faces"
    return "results/fau_windows"


def train_inputs(wildcards):
    """Files a (model, seed) job reads - the DAG's edges."""
    family = family_of(wildcards.model)
    data = train_data(wildcards)
    if family in ("sequence", "sklearn"):
        return {"data": data}
    videos = split_videos(need_score=family in ("clip", "face"))
    inputs = {"sheet": SHEET, "data": expand(f"{data}/{{video}}.parquet", video=videos)}
    if family == "fau":
        labels_dir = config["models"]["affect"]["labels_dir"]
        inputs["labels"] = [str(label_file(v, SAMPLES.loc[v, "affect_labels"], labels_dir)) for v in videos]
    return inputs


def model_targets():
    """Metrics of every (model, seed): needs a train split and a dev or test split."""
    splits = set(SAMPLES["split"])
    if "train" not in splits or not splits & {"dev", "test"}:
        return []
    return expand("results/metrics/{model}/seed{seed}.json", model=config["models"]["run"],
                  seed=config["models"]["seeds"])


def final_targets():
    """What `rule all` asks for; face crops only when keep_face_images is true; with
    `source: aligned` (imported features) no per-video extraction; models, tables and
    plots when the sheet has the splits they need (report_targets: report.smk)."""
    shards = [SHARDS] if (SAMPLES["split"] == "train").any() else []
    if SOURCE != "videos":
        return expand("results/aligned/{video}.parquet", video=VIDEOS) + shards + model_targets() + report_targets()
    targets = expand("results/aligned/{video}.parquet", video=VIDEOS)
    targets += expand("results/fau_windows/{video}.parquet", video=VIDEOS)
    if config["aligned_faces"]["keep_face_images"]:
        targets += expand("results/faces/{video}.parquet", video=VIDEOS)
    # shards need a train split (normalisation)
    return targets + shards + ["results/qa.tsv"] + model_targets() + report_targets()
