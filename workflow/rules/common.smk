# Shared by every rule file: the sample sheet and small helpers for rule inputs.
import json
import shlex

from facevox.action_units import resolve_backend
from facevox.errors import FacevoxError
from facevox.importers import dvlog_samples, openface_samples
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
    SAMPLES = dvlog_samples(folder) if SOURCE == "dvlog" else openface_samples(folder)
    SHEET = "results/imported/samples.tsv"
VIDEOS = list(SAMPLES.index)


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


def final_targets():
    """What `rule all` asks for; face crops only when keep_face_images is true; with
    `source: aligned` (imported features) only the aligned tables and the shards."""
    shards = [f"results/shards/{config['slices']['feature_set']}"] if (SAMPLES["split"] == "train").any() else []
    if SOURCE != "videos":
        return expand("results/aligned/{video}.parquet", video=VIDEOS) + shards
    targets = expand("results/aligned/{video}.parquet", video=VIDEOS)
    targets += expand("results/fau_windows/{video}.parquet", video=VIDEOS)
    if config["aligned_faces"]["keep_face_images"]:
        targets += expand("results/faces/{video}.parquet", video=VIDEOS)
    return targets + shards + ["results/qa.tsv"]  # shards need a train split (normalisation)
