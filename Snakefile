# facevox: raw video -> facial and vocal features -> models.
# Thin on purpose: config + validation, the rule files, and the final targets.
# Every rule is one call into src/facevox (rule file -> function -> tests/test_<stage>.py).
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)  # facevox importable here (DAG time) even where it is not installed

configfile: "config.yaml"


from facevox.config import check_workflow_config
from facevox.models.families import machine_environment
from facevox.workflow_hooks import stop_scheduler_timers

# The schema's defaults filled in, every problem one short line naming the key and the files to
# fix (snakemake.utils.validate would print the whole schema section and configuration).
check_workflow_config(config, workflow.configfiles)

# Every job's shell, wherever it runs (local, SLURM, --use-conda): facevox on PYTHONPATH (the rules
# call `python -m facevox`), and the models.* keys about the machine, not the result (GPU slots, the
# checkpoint cadence), which the jobs read from their environment, so changing one reruns nothing
# (facevox.models.families.MACHINE_KEYS).
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(SRC)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
             + "".join(f"export {k}={shlex.quote(v)}; " for k, v in machine_environment(config["models"]).items()))


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    video=VIDEO_ID.pattern.strip("^$"),
    model=MODEL_NAME,  # a registered model, or a sweep variant: stst@lr=0.0001,dropout=0.1
    fold=FOLD,  # "" (the sheet's own splits: cv.scheme fixed) or fold<k>/ (cross-validation)
    seed="[0-9]+",


include: "workflow/rules/import.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/identity_overlap.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/egemaps.smk"
include: "workflow/rules/landmarks.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/action_units.smk"
include: "workflow/rules/fau_windows.smk"
include: "workflow/rules/folds.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/qa.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/predict.smk"


rule all:
    input:
        final_targets(),
    default_target: True


onsuccess:
    excluded_summary()
    unusable_summary()
    identity_overlap_summary()
    stop_scheduler_timers()  # exit now, not after Snakemake's last 1-s rescheduling timer


onerror:
    excluded_summary()
    unusable_summary()
    identity_overlap_summary()
    stop_scheduler_timers()
