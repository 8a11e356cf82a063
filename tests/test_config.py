"""Tests for facevox.config: schema defaults, validation, and the repository's config.yaml."""
from __future__ import annotations

import pytest
import yaml

from facevox import config
from facevox.config import ROOT, load_config, schema, stage_params
from facevox.errors import FacevoxError

REPO_CONFIG = ROOT / "config.yaml"

LANDMARK_DEFAULTS = {
    "min_face_px": 160,
    "min_face_fraction": 0.45,
    "detect_scale": None,
    "upsample": 0,
    "redetect_every": 30,
    "verify_every": 5,
    "min_score": 0.0,
    "threads": 1,
    "predictor": "numba",
}


def test_landmark_defaults():
    assert stage_params("landmarks") == LANDMARK_DEFAULTS


@pytest.mark.parametrize("section, defaults", [
    ("egemaps", {"silence_dbfs": -60.0}),
    ("align", {"rate_hz": "native"}),
])
def test_other_defaults(section, defaults):
    assert stage_params(section) == defaults
    assert stage_params(section, {}) == defaults
    assert stage_params(section, None) == defaults


def test_override_keeps_the_other_defaults():
    got = stage_params("landmarks", {"detect_scale": 1.0, "upsample": 2})
    assert got == {**LANDMARK_DEFAULTS, "detect_scale": 1.0, "upsample": 2}


@pytest.mark.parametrize("rate", ["native", 1, 0.5, 30])
def test_valid_align_rates(rate):
    assert stage_params("align", {"rate_hz": rate}) == {"rate_hz": rate}


def test_params_are_not_mutated():
    params = {"upsample": 1}
    stage_params("landmarks", params)
    assert params == {"upsample": 1}


@pytest.mark.parametrize("section, params, where", [
    ("landmarks", {"detect_scale": 0}, "landmarks.detect_scale"),  # exclusiveMinimum 0
    ("landmarks", {"detect_scale": 2}, "landmarks.detect_scale"),  # maximum 1
    ("landmarks", {"detect_scale": "half"}, "landmarks.detect_scale"),
    ("landmarks", {"upsample": 3}, "landmarks.upsample"),
    ("landmarks", {"min_face_px": 10}, "landmarks.min_face_px"),  # minimum 20
    ("landmarks", {"min_face_fraction": 0}, "landmarks.min_face_fraction"),  # exclusiveMinimum 0
    ("landmarks", {"min_face_fraction": 1.5}, "landmarks.min_face_fraction"),  # maximum 1
    ("landmarks", {"upsample": 0.5}, "landmarks.upsample"),  # integer
    ("landmarks", {"redetect_every": 0}, "landmarks.redetect_every"),
    ("landmarks", {"verify_every": 0}, "landmarks.verify_every"),
    ("landmarks", {"threads": 0}, "landmarks.threads"),
    ("landmarks", {"predictor": "opencv"}, "landmarks.predictor"),
    ("egemaps", {"silence_dbfs": "quiet"}, "egemaps.silence_dbfs"),
    ("align", {"rate_hz": "fast"}, "align.rate_hz"),
    ("align", {"rate_hz": -1}, "align.rate_hz"),
    ("align", {"rate_hz": 0}, "align.rate_hz"),
    ("fau_windows", {"convention": "avec2019"}, "fau_windows.convention"),
    ("fau_windows", {"window_s": 0}, "fau_windows.window_s"),
    ("fau_windows", {"hop_s": -0.1}, "fau_windows.hop_s"),
    ("fau_windows", {"fps": "30"}, "fau_windows.fps"),
])
def test_invalid_value_names_the_key(section, params, where):
    with pytest.raises(FacevoxError) as info:
        stage_params(section, params)
    assert str(info.value).startswith(f"config {where}: ")


def test_unknown_key_is_rejected():
    with pytest.raises(FacevoxError) as info:
        stage_params("landmarks", {"detect_scal": 0.5})
    msg = str(info.value)
    assert msg.startswith("config landmarks")
    assert "detect_scal" in msg


def test_unknown_section():
    with pytest.raises(FacevoxError, match="unknown config section 'aligned_faces'"):
        stage_params("aligned_faces")


# --------------------------------------------------------------------------- config files
SECTIONS = {"landmarks", "egemaps", "align", "action_units", "fau_windows", "faces", "shards", "models",
            "report", "dvlog", "target", "cv"}
OTHER_DEFAULTS = {
    "cv": {"scheme": "fixed", "folds": 5, "seed": 0, "dev_fraction": 0.2}, "sweeps": {}, "predict": "",
    "dvlog": {"landmark_order": "auto", "zero_rows": "no_face", "subjects": "", "export_order": "interleaved"},
    "target": {"mode": "dominant", "match_distance": 0.6, "check_every_s": 4.0, "close_ratio": 0.8,
               "on_identity_overlap": "warn", "overlap_distance": 0.6},
    "action_units": {"backend": "auto", "openface_models_dir": "", "baseline_quantile": 0.1, "confidence_every": 5, "person_baseline": False,
                     "person_baseline_quantile": 0.05},
    "fau_windows": {"convention": "paper", "window": 50, "hop": 5, "window_s": None, "hop_s": None, "fps": None,
                    "no_face": "drop", "turns_hangover_s": 0.15},
    "faces": {"keep_face_images": False, "size": 224, "stride": 1, "method": "eye_mouth", "jpeg_quality": 90},
    "shards": {"feature_set": "landmarks_egemaps", "length": 300, "hop": None, "pad": "poly", "degree": 2,
               "max_gap": 15, "normalisation": "minmax", "rows_per_group": 64, "slices_per_part": 2048},
    "models": {"run": ["stst", "jamfn", "depression_detector", "blstm", "tfn", "fusion_concat", "fusion_add",
                       "fusion_multiply", "lr", "svm", "rf", "knn_fusion"],
               "seeds": [0, 1, 2], "device": "auto", "threads": 2, "positive_label": "depression",
               "max_missing_fraction": 0.5, "max_memory_gb": 8, "select_by": "f1_weighted", "overrides": {},
               "min_split_videos": 3, "min_dev_videos": 4, "precision": "auto", "deterministic": True,
               "checkpoint_every_s": 600, "gpu_lock_dir": "", "jobs_per_gpu": 1, "gpu_wait_s": 3600,
               "whole": {"feature_set": "landmarks_egemaps", "normalisation": "none", "max_gap": 15},
               "vision": {"clip_len": 64, "size": 224, "clips_per_video": 1, "eval_clips": "consecutive",
                          "frames_per_video": 64,
                          "eval_frames_per_video": 256, "score_scale": 63, "workers": None, "prefetch": 2},
               "affect": {"dimensions": ["arousal", "valence"], "delays_s": {"arousal": 4.0, "valence": 2.8},
                          "labels_dir": "", "demo_labels": False}},
    "report": {"split": "test", "bootstrap_resamples": 1000, "bootstrap_seed": 0, "ci_level": 0.95,
               "paired_reference": "best", "timelines": {"videos": [], "per_split": 2}},
}


def test_load_repo_config():
    cfg = load_config(REPO_CONFIG)
    assert set(cfg) == {"samples", "source", "on_bad_input", "labels", "dvlog_root", "openface_dir", "sweeps",
                        "predict"} | SECTIONS
    assert cfg["labels"] == ["depression", "normal"]
    assert cfg["samples"] == "resources/demo/samples.tsv"
    assert cfg["landmarks"] == LANDMARK_DEFAULTS
    assert cfg["egemaps"] == {"silence_dbfs": -60.0}
    assert cfg["align"] == {"rate_hz": "native"}


def test_repo_config_equals_schema_defaults():
    """config.yaml documents every key with its default: the two must agree."""
    raw = yaml.safe_load(REPO_CONFIG.read_text())
    for section, sub in schema()["properties"].items():
        if sub.get("type") != "object":
            continue
        assert raw[section] == stage_params(section), section  # nested sections filled too


def test_load_config_without_a_file_gives_defaults():
    cfg = load_config()
    assert cfg == {"landmarks": LANDMARK_DEFAULTS, "egemaps": {"silence_dbfs": -60.0},
                   "align": {"rate_hz": "native"}, "source": "videos", "on_bad_input": "exclude",
                   "labels": ["depression", "normal"],
                   "dvlog_root": "", "openface_dir": "", **OTHER_DEFAULTS}


def test_load_config_fills_missing_sections_and_keys(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("landmarks:\n  upsample: 1\nalign:\n  rate_hz: 1\n")
    cfg = load_config(path)
    assert cfg["landmarks"] == {**LANDMARK_DEFAULTS, "upsample": 1}
    assert cfg["egemaps"] == {"silence_dbfs": -60.0}
    assert cfg["align"] == {"rate_hz": 1}
    assert "samples" not in cfg


def test_load_config_rejects_unknown_section(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("landmark:\n  upsample: 1\n")
    with pytest.raises(FacevoxError, match=r"unknown key\(s\) \['landmark'\]"):
        load_config(path)


def test_load_config_reports_the_bad_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("landmarks:\n  detect_scale: 2\n")
    with pytest.raises(FacevoxError, match=r"^config landmarks\.detect_scale: "):
        load_config(path)


@pytest.mark.parametrize("text", [None, "landmarks: [unclosed\n"], ids=["missing", "bad-yaml"])
def test_load_config_unreadable(tmp_path, text):
    path = tmp_path / "config.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(FacevoxError, match="cannot read config"):
        load_config(path)


def test_schema_is_the_workflow_schema():
    assert config.SCHEMA_PATH == ROOT / "workflow" / "schemas" / "config.schema.yaml"
    top = {"samples", "source", "on_bad_input", "labels", "dvlog_root", "openface_dir", "sweeps", "predict"}
    assert set(schema()["properties"]) == top | SECTIONS


@pytest.mark.parametrize("text", ["align: native\n", "landmarks: 5\n"], ids=["align-scalar", "landmarks-int"])
def test_section_that_is_not_a_mapping(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(FacevoxError, match=r"^config (align|landmarks)"):
        load_config(path)


def test_overlay_configs_validate():
    """config/demo.yaml and the config/paper/ overlays are valid settings."""
    import jsonschema
    import yaml

    from facevox.config import SCHEMA_PATH

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    overlays = sorted((SCHEMA_PATH.parents[2] / "config").rglob("*.yaml"))
    assert len(overlays) >= 3
    for path in overlays:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_labels_default_and_validation(tmp_path):
    assert load_config()["labels"] == ["depression", "normal"]
    path = tmp_path / "c.yaml"
    path.write_text("labels: [depression]\n")
    with pytest.raises(FacevoxError, match="config labels: .* is too short"):
        load_config(path)
    path.write_text("labels: [high, high]\n")
    with pytest.raises(FacevoxError, match="config labels: .*non-unique"):
        load_config(path)


# --------------------------------------------------------------------------- the workflow's check
def test_workflow_config_check_fills_defaults_in_place_and_is_short():
    """The Snakefile's check: defaults filled into the same dict, every problem one line naming
    the key (nearest valid key / allowed values) and the files to fix - no schema dump."""
    from facevox.config import check_workflow_config

    cfg = {"landmarks": {"upsample": 1}}
    assert check_workflow_config(cfg) is cfg
    assert cfg["landmarks"]["upsample"] == 1 and cfg["landmarks"]["redetect_every"] == 30
    assert cfg["models"]["min_dev_videos"] == 4 and cfg["models"]["vision"]["clip_len"] == 64
    bad = {"landmarks": {"redetect_evry": 30}, "models": {"device": "gpu", "seeds": "0"}}
    with pytest.raises(FacevoxError) as info:
        check_workflow_config(bad, ["my.yaml"])
    lines = str(info.value).splitlines()
    assert lines == [
        "3 problem(s) in the configuration:",
        "  config landmarks: unknown key 'redetect_evry'; nearest valid: 'redetect_every' (valid: min_face_px, "
        "min_face_fraction, detect_scale, upsample, redetect_every, verify_every, min_score, threads, predictor)",
        "  config models.device: 'gpu' is not one of auto, cpu, cuda",
        "  config models.seeds: '0' is not of type array",
        "Fix them in my.yaml or the --config values given (every key and its default: "
        "workflow/schemas/config.schema.yaml)",
    ]
