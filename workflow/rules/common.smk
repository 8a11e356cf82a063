# Shared by every rule file: the sample sheet and small helpers for rule inputs.
import json

from facevox.samples import VIDEO_ID, read_samples

SAMPLES = read_samples(config["samples"])  # validated: clear message per bad row
VIDEOS = list(SAMPLES.index)


wildcard_constraints:
    video=VIDEO_ID.pattern.strip("^$"),


def video_path(wildcards):
    return SAMPLES.loc[wildcards.video, "path"]


def stage_json(section):
    """A stage's config section as JSON: the `params` that make its jobs stale when changed."""
    return json.dumps(config[section], sort_keys=True)
