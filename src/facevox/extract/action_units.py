"""Stage `action_units`: per-frame intensities of the 17 OpenFace/AVEC action units.

Every backend writes the same table (``contract.AU_SCHEMA``): ``frame``,
``timestamp_s``, ``success``, ``confidence``, the 17 ``AU*_r`` columns and the
extension ``contract.AU_EXTRA_COLUMNS`` (head pose, gaze, the 52 MediaPipe
blendshapes).  A column the backend cannot estimate is NaN on every row; every
value and the confidence are NaN on frames without a face.  The file metadata says
which backend ran (``au_backend``) and why (``au_backend_why``), which AU columns
are real estimates (``au_estimated``), which extension columns are
(``extra_estimated``) and on what scale the AUs lie (``au_scale``): the scales are
not comparable.

Backends (config ``action_units.backend``), one module each
------------------------------------------------------------
* ``openface`` (facevox.extract.au_openface) - the OpenFace 2.x CSV named in the sample
  sheet's ``openface_csv`` column: its ``AU*_r`` intensities (0-5), pose and gaze as they
  are, its rows as they are (OpenFace's frames, made 0-based; not matched to ours).
  Rows with ``success`` 0 get NaN.  Confidence: OpenFace's.  When the CSV has OpenFace's
  2-D landmarks, a row whose landmark centroid lies outside the landmarks table's target
  box is not the target and becomes success false / NaN; without them the rows are kept
  and the metadata says the person was not checked.
* ``pyfeat`` (facevox.extract.au_pyfeat) - py-feat 2.1.5's xgb AU model fed with our grey
  frames and our dlib landmarks: the probability (0-1) that each AU is present, for the 16
  AVEC AUs py-feat has (``AU45_r`` stays NaN).  Confidence: 1.0 on frames with a face.
  The weights are never downloaded here: ``facevox fetch-models`` puts them in py-feat's
  cache.
* ``landmarks`` (facevox.extract.au_geometric) - geometric estimates from the 68
  landmarks, no weights: AU01, AU02, AU04, AU05, AU12, AU15, AU25, AU26, AU45, 0-5 from a
  per-video neutral baseline (``baseline_quantile``).  Confidence: 1.0 on frames with a face.
* ``mediapipe`` (facevox.extract.au_mediapipe, whose docstring has the mapping; its
  installation: facevox.extract.au_mediapipe_install; pose, gaze and the same-face check:
  facevox.extract.au_mediapipe_geometry) - MediaPipe FaceLandmarker's 52 blendshapes mapped
  to all 17 AUs (0-1), head pose from its transformation matrix and gaze from the iris
  points, on the landmarks table's target person only: each frame is shown to MediaPipe black
  outside the target's box enlarged ``au_mediapipe.MASK_MARGIN`` (1.8) times about
  its centre (the frame keeps its size, so pose and gaze are those of the whole
  frame); a frame whose landmarks row has no target (success false) is not shown at
  all and is a NaN row.  The face MediaPipe returns must then be the landmarks' face
  (``au_mediapipe_geometry.same_face``: its nose tip in the box, its eye centres within
  0.5 inter-ocular distances of dlib's); a frame that fails is success false / NaN,
  never another face.  Without a landmarks table (a caller passing None) it sees whole
  frames, unchecked.  Confidence: the bundle's BlazeFace detector score.
* ``auto`` - ``pyfeat`` when its weights are in the local cache, else
  ``mediapipe`` when mediapipe and its model bundle are installed, else
  ``landmarks`` (:func:`resolve_backend`, also used by the Snakemake rule;
  :func:`backend_choice` says why).
  py-feat and landmarks leave the pose and gaze columns NaN.

Person baseline (config ``action_units.person_baseline``, off by default; ``mediapipe`` only):
each ``AU*_r`` column becomes ``max(0, value - b)``, ``b`` its ``person_baseline_quantile``
(default 0.05) quantile over the video's frames with a face - the target person's neutral
(facevox.extract.au_table.person_baseline); rows without a face stay NaN, the other columns
are unchanged.  Another backend with it on is an error naming the key (``landmarks`` has its
own baseline, ``baseline_quantile``; py-feat's probabilities and OpenFace's intensities are
kept as their models give them).  The metadata ``au_person_baseline`` records what was
subtracted: ``{"quantile", "face_frames", "subtracted": {AU column: b}}`` (null when off), and
``au_scale`` says the values are relative.

Every backend builds its table with facevox.extract.au_table.

Whose face: every backend measures the landmarks table's target person (issue 28).
``pyfeat`` and ``landmarks`` do by construction (the table's box and points);
``mediapipe`` and ``openface`` are checked per frame as above.  The metadata says
what was checked: ``target_checked`` (bool), ``target_check_why``, and where checked
``target_frames`` (rows with the target's values) and ``not_target_frames`` (rows
whose face was another's, made NaN); ``mediapipe`` adds ``no_target_frames`` (landmark
rows without the target: not shown to MediaPipe) and ``target_missed_frames`` (shown,
but MediaPipe found no face), and its params ``mask_margin`` and ``target_check``.

Rule: workflow/rules/action_units.smk · Tests: tests/test_action_units.py
"""
from __future__ import annotations

import pandas as pd

from facevox.config import stage_params
from facevox.contract import AU_SCHEMA, LANDMARKS_SCHEMA
from facevox.errors import ExcludedInput, FacevoxError
from facevox.extract import (
    au_geometric,
    au_mediapipe,
    au_mediapipe_geometry,
    au_mediapipe_install,
    au_openface,
    au_openface_pipeline,
    au_pyfeat,
    au_table,
)
from facevox.io import read_provenance, read_table, write_table
from facevox.provenance import provenance

#: ``au_scale`` metadata of each backend: what the numbers mean.
AU_SCALE = {
    "openface": au_openface.AU_SCALE,
    "pyfeat": au_pyfeat.AU_SCALE,
    "landmarks": au_geometric.AU_SCALE,
    "mediapipe": au_mediapipe.AU_SCALE,
    "openface_models": au_openface_pipeline.AU_SCALE,
}

#: Appended to ``au_scale`` when ``action_units.person_baseline`` is on: the values are relative.
PERSON_BASELINE_SCALE = "; minus the person's neutral (au_person_baseline), floored at 0"


def backend_choice(backend: str, openface_models_dir: str = "") -> tuple[str, str]:
    """(the backend that runs, why): ``auto`` is openface_models when ``openface_models_dir``
    (config ``action_units.openface_models_dir``) is set, else pyfeat when its weights are cached,
    else mediapipe when it and its bundle are installed, else landmarks."""
    if backend != "auto":
        return backend, "set in the config (action_units.backend)"
    if str(openface_models_dir or "").strip():
        return "openface_models", "auto: action_units.openface_models_dir is set"
    if au_pyfeat.pyfeat_weights_available():
        return "pyfeat", "auto: py-feat's AU weights are cached"
    why = "py-feat weights not cached (`facevox fetch-models` downloads them)"
    if au_mediapipe_install.available():
        return "mediapipe", f"auto: {why}"
    return "landmarks", f"auto: {why}; {au_mediapipe_install.unavailable_reason()}"


def resolve_backend(backend: str, openface_models_dir: str = "") -> str:
    """The backend that runs (:func:`backend_choice`)."""
    return backend_choice(backend, openface_models_dir)[0]


def run(video, landmarks_path, out, params: dict | None = None, openface_csv=None,
        mediapipe_out: dict | None = None) -> dict:
    """The stage: ``video``'s AU table with the configured backend.  ``mediapipe_out``: the
    mediapipe backend's per-frame output (:meth:`au_mediapipe.FaceLandmarkerAU.session`) made by
    a caller that decoded the video for the landmarks stage too (facevox.extract.chain), shown
    the provisional target's boxes: used when they are the table's on every frame, else MediaPipe
    runs again from the table (the summary's ``second_pass``, ``second_pass_frames``: on how many
    frames they differed), so the table is always the one the stage alone writes."""
    p = stage_params("action_units", params)
    backend, why = backend_choice(p["backend"], p["openface_models_dir"])
    if p["person_baseline"] and backend != "mediapipe":
        raise FacevoxError(f"{video}: action_units.person_baseline is for the mediapipe backend only, but the "
                           f"backend is {backend} ({why}); set action_units.person_baseline: false"
                           + (" (this backend's own neutral baseline: action_units.baseline_quantile)"
                              if backend == "landmarks" else ""))
    record = dict(p)
    baseline = None
    extra_estimated: list[str] = []
    summary_extra: dict = {}
    if backend == "openface":
        if not openface_csv:
            raise FacevoxError(f"{video}: action_units.backend is openface but the sample sheet's "
                               "openface_csv column is empty for this video")
        lm = None if landmarks_path is None else read_table(landmarks_path, LANDMARKS_SCHEMA)[0]
        df = au_openface.read_openface_csv(openface_csv, lm)
        estimated = df.attrs["au_estimated"]
        extra_estimated = df.attrs["extra_estimated"]
        check = df.attrs["target_check"]
        inputs = {"openface_csv": openface_csv, **({"landmarks": landmarks_path} if lm is not None else {})}
    elif backend == "landmarks":
        lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
        df, estimated = au_geometric.geometric_aus(lm, p["baseline_quantile"])
        record["geometric_aus"] = {col: {"direction": d, "full_scale": s, "baseline": b}
                                   for col, (d, s, b) in au_geometric.GEOMETRIC_AUS.items()}
        check = from_the_table(df, "the landmarks table's points of its target")
        inputs = {"landmarks": landmarks_path}
    elif backend == "mediapipe":
        # MediaPipe is shown the landmarks' target only; a video whose landmarks stage excluded it
        # is not read again: the landmarks' excluded record is passed on (facevox.extract.exclusion)
        lm = None
        if landmarks_path is not None:
            excluded = read_provenance(landmarks_path).get("excluded")
            if excluded:
                raise ExcludedInput(landmarks_path, excluded)
            lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
        if mediapipe_out is not None and lm is not None:
            differ = au_mediapipe.box_differences(mediapipe_out, lm)
            summary_extra.update(second_pass=differ > 0, second_pass_frames=differ)
            if differ:
                mediapipe_out = None  # shown other boxes than the final target's: run again from the table
        df, estimated, extra_estimated, check = au_mediapipe.mediapipe_aus(video, lm, p["confidence_every"],
                                                                           mediapipe_out)
        if p["person_baseline"]:
            df, subtracted = au_table.person_baseline(df, p["person_baseline_quantile"])
            baseline = {"quantile": p["person_baseline_quantile"], "face_frames": int(df["success"].sum()),
                        "subtracted": subtracted}
        record["model"] = (f"{au_mediapipe_install.MODEL_FILE} (sha256 {au_mediapipe_install.MODEL_SHA256}, "
                           f"from {au_mediapipe_install.MODEL_WHEEL})")
        record["au_from_blendshapes"] = {c: {"rule": r, "blendshapes": n}
                                         for c, (r, n) in au_mediapipe.AU_FROM_BLENDSHAPES.items()}
        if lm is not None:
            record["mask_margin"] = au_mediapipe.MASK_MARGIN
            record["target_check"] = {"nose_tip": "inside the landmarks' box",
                                      "eye_tolerance_iod": au_mediapipe_geometry.EYE_TOLERANCE_IOD}
        inputs = {"video": video, "model": au_mediapipe_install.model_path(),
                  **({"landmarks": landmarks_path} if lm is not None else {})}
    elif backend == "openface_models":
        ofm = au_openface_pipeline.load_models(p["openface_models_dir"])  # checked before the video is read
        lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)  # an excluded landmarks table: ExcludedInput
        df, estimated, fit_failed = au_openface_pipeline.openface_models_aus(video, lm, ofm)
        extra_estimated = df.attrs["extra_estimated"]
        summary_extra["pdm_fit_failed"] = fit_failed
        record["openface_models_dir"] = str(ofm.folder)
        record["model_files"] = ofm.checksums
        check = from_the_table(df, "OpenFace's aligned face and PDM fit of the landmarks table's target points")
        inputs = {"video": video, "landmarks": landmarks_path}
    else:
        model = au_pyfeat.PyFeatAU()
        lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
        df, estimated = au_pyfeat.from_pyfeat(model.video_aus(video, lm), lm)
        record["model"] = f"{au_pyfeat.PYFEAT_AU_REPO}/{au_pyfeat.PYFEAT_AU_FILE}"
        check = from_the_table(df, "crops of the landmarks table's box and points of its target")
        inputs = {"video": video, "landmarks": landmarks_path, "model": model.path}
    summary = {"backend": backend, "n_frames": int(len(df)),
               "face_rate": float(df["success"].mean()) if len(df) else 0.0, "why": why, **summary_extra}
    meta = provenance("action_units", params=record, inputs=inputs, au_backend=backend, au_backend_why=why,
                      au_estimated=estimated, extra_estimated=extra_estimated,
                      au_scale=AU_SCALE[backend] + (PERSON_BASELINE_SCALE if baseline else ""),
                      au_person_baseline=baseline, n_frames=summary["n_frames"],
                      face_rate=summary["face_rate"], **check)
    write_table(df, out, AU_SCHEMA, meta)
    return summary


def from_the_table(df: pd.DataFrame, how: str) -> dict:
    """The same-face record of a backend that measures the landmarks table's target itself."""
    return {"target_checked": True, "target_check_why": f"by construction: {how}",
            "target_frames": int(df["success"].sum()), "not_target_frames": 0}
