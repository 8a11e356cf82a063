"""The ``openface_models`` AU backend: OpenFace 2.x's own AU models, read from the user's OpenFace
model folder (config ``action_units.openface_models_dir``), on facevox's 68 landmarks of the
landmarks table's target person.

Per frame of the video (decoded once, in step with the landmarks table: frame ``i`` of the
decoder is row ``i`` of the table):

1. the PDM (``In-the-wild_aligned_PDM_68.txt``) is fitted to the target's 68 landmarks
   (facevox.extract.pdm_fit.fit_pdm, all the video's frames in one batched call, before decoding);
2. the frame is aligned to the PDM's mean shape (facevox.extract.au_openface_align.align_face:
   112 x 112, scale 0.7, OpenFace's mask, centred on the fit's translation ``tx, ty``);
3. the aligned face's Felzenszwalb HOG (facevox.extract.fhog.fhog_vector, 4464 values) and the
   geometry features (facevox.extract.au_openface_models.geometry_features: the PDM
   parameters, 238 values) make the frame's feature row (4702 values, float32);
4. after the last frame, facevox.extract.au_openface_models.predict_aus scores the whole video
   as OpenFace's FeatureExtraction does (running median, per-video calibration of the dynamic
   regressors, clamping to 0..5, smoothing).

Frames without the target (landmarks ``success`` false) or whose PDM fit failed are OpenFace's
untracked frames: their feature row is the HOG of a black face and zero geometry (what OpenFace
feeds the running median's quirk of its first frame), they take no part in the median or the
calibration, and their AU values are NaN (facevox's convention; OpenFace writes 0).  A failed
fit (degenerate landmarks: fit_pdm's NaN frame) never stops the stage: it is counted
(the stage summary's ``pdm_fit_failed``) and logged as a warning.  The
table's ``AU*_r`` columns are OpenFace's intensities (0-5) of the AUs the folder has an
intensity model for, its ``AU*_c`` columns OpenFace's presence outputs (0/1) of the AUs it has a
classifier for (``contract.AU_PRESENCE_COLUMNS``).  Confidence: 1.0 on frames with a face
(OpenFace's tracker confidence has no equivalent here).

Memory: the feature matrix is float32, [frames, 4702] (25 min at 25 fps: ~0.65 GB); nothing else
kept per frame is larger than a landmarks row.  predict_aus never copies it whole: it works
128 feature columns at a time (running median and scores, facevox.extract.au_openface_models.
video_scores), keeping [frames, models] arrays only - ~20 MB beyond the matrix for 36,000 frames.

The model files are the user's and never copied: :func:`load_models` reads and checks them
(a missing or malformed file is a FacevoxError naming it and what the folder should hold - the
readers' messages of facevox.extract.au_openface_models, prefixed with the config key) and
hashes every file used (sha256), recorded in the table's provenance (``params.model_files``).

Tests: tests/test_action_units.py
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import AU_COLUMNS, AU_PRESENCE_COLUMNS, points_from_columns
from facevox.errors import FacevoxError, InputError
from facevox.extract import au_openface_models as aom
from facevox.extract.au_openface_align import SIZE, align_face
from facevox.extract.au_table import au_frame
from facevox.extract.fhog import fhog_vector
from facevox.extract.pdm_fit import fit_pdm
from facevox.media import iter_rgb_frames

log = logging.getLogger("facevox.extract.au_openface_pipeline")

#: What the AU values are (the stage's ``au_scale`` metadata).
AU_SCALE = "OpenFace 2.x intensity 0-5 (OpenFace's own AU models, applied by facevox)"

#: Feature count OpenFace 2.x's AU models take: HOG then geometry.
N_FEATURES = aom.HOG_FEATURES + aom.GEOM_FEATURES


@dataclass(frozen=True)
class OpenFaceModels:
    """The user's OpenFace models: ``folder`` as configured, the AU ``models``, the ``pdm``, and
    ``checksums``: sha256 of every file used, keyed by its path relative to ``folder``."""
    folder: Path
    models: aom.AUModels
    pdm: aom.PDM
    checksums: dict[str, str]


def load_models(folder) -> OpenFaceModels:
    """Read and check the OpenFace model folder ``folder`` (the AU list, every model it names, the
    PDM) and hash its files.  FacevoxError (never an InputError: the folder is configuration, not
    a video's input, so a bad file fails the run instead of excluding videos) naming the file and
    what the folder should hold when the folder is not set, a file is missing or malformed, the
    models do not take OpenFace 2.x's 4702 features or the PDM is not the 68-point one."""
    if not str(folder or "").strip():
        raise FacevoxError("action_units.backend is openface_models but action_units.openface_models_dir is "
                           f"not set; {aom.FOLDER_HINT}")
    folder = Path(folder).expanduser()
    try:
        if not folder.is_dir():
            raise InputError(folder, "not a folder")
        files = aom.find_model_files(folder)
        models = aom.load_au_models(files["au_list"])
        if models.n_features != N_FEATURES:
            raise InputError(models.models[0].path, f"takes {models.n_features} features, not OpenFace 2.x's "
                                                    f"{N_FEATURES} (4464 HOG + 238 geometry)")
        pdm = aom.read_pdm(files["pdm"])
        if pdm.mean_shape.size != 204 or pdm.mean_shape.size + pdm.princ_comp.shape[1] != aom.GEOM_FEATURES:
            raise InputError(pdm.path, f"is not OpenFace's 68-point PDM with 34 modes (mean {pdm.mean_shape.size} "
                                       f"values, {pdm.princ_comp.shape[1]} modes)")
    except InputError as exc:  # the configured folder, not this video: a configuration error, never an exclusion
        hint = "" if aom.FOLDER_HINT in exc.problem else f"; {aom.FOLDER_HINT}"
        where = "" if Path(exc.path) == folder else f"{exc.path}: "  # the folder itself: named once
        raise FacevoxError(f"action_units.openface_models_dir {folder}: {where}{exc.problem}{hint}") from None
    sums = aom.model_checksums([*models.files, pdm.path])
    checksums = {relative(p, folder): h for p, h in sums.items()}
    return OpenFaceModels(folder=folder, models=models, pdm=pdm, checksums=checksums)


def relative(path, folder: Path) -> str:
    """``path`` relative to ``folder`` where it lies inside it, else as given (POSIX separators)."""
    p = Path(path)
    try:
        return p.relative_to(folder).as_posix()
    except ValueError:
        return p.as_posix()


def untracked_row() -> np.ndarray:
    """The feature row of an untracked frame: HOG of a black 112 x 112 face, zero geometry."""
    hog = fhog_vector(np.zeros((SIZE, SIZE, 3), np.uint8), order="rgb")
    return np.concatenate([hog, np.zeros(aom.GEOM_FEATURES)]).astype(np.float32)


def video_features(video, lm: pd.DataFrame, ofm: OpenFaceModels) -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix [frames, 4702] float32 (module docstring) and the tracked frames
    [frames] bool of ``video`` with its landmarks table ``lm`` (one row per decoded frame).
    InputError when the video and the table disagree in frame count."""
    n = len(lm)
    points = points_from_columns(lm)
    target = lm["success"].to_numpy(bool)
    points[~target] = np.nan
    glob, local = fit_pdm(points, ofm.pdm)
    tracked = target & np.isfinite(glob).all(axis=1) & np.isfinite(local).all(axis=1)
    feats = np.empty((n, N_FEATURES), np.float32)
    feats[:] = untracked_row()
    geom = aom.geometry_features(np.where(tracked[:, None], local, 0.0), ofm.pdm)
    feats[:, aom.HOG_FEATURES:] = geom
    decoded = 0
    for frame in iter_rgb_frames(video):
        decoded += 1
        i = frame.index
        if i >= n:
            continue
        if tracked[i]:
            face = align_face(frame.image, points[i], ofm.pdm.mean_shape, centre=glob[i, 4:6])
            feats[i, :aom.HOG_FEATURES] = fhog_vector(face.image, order="rgb")
    if decoded != n:
        raise InputError(video, f"has {decoded} frames but its landmark table has {n} rows")
    return feats, tracked


def openface_models_aus(video, lm: pd.DataFrame, ofm: OpenFaceModels) -> tuple[pd.DataFrame, list[str], int]:
    """The ``openface_models`` backend's AU table of ``video`` (its landmarks table ``lm``; its
    ``attrs["extra_estimated"]``: the presence columns written, those with a classifier in the
    folder), the AU columns it estimates (those with an intensity model in the folder), and on how many
    frames with the target the PDM fit failed (:func:`facevox.extract.pdm_fit.fit_pdm`'s NaN
    frames: degenerate landmarks; they are untracked frames, NaN AUs; logged as a warning)."""
    feats, tracked = video_features(video, lm, ofm)
    fit_failed = int((lm["success"].to_numpy(bool) & ~tracked).sum())
    if fit_failed:
        log.warning("%s: the PDM fit failed on %d of %d frames with the target (degenerate landmarks); "
                    "they are untracked frames (NaN AUs)", video, fit_failed, int(lm["success"].sum()))
    out = aom.predict_aus(ofm.models, feats, tracked)
    del feats
    values = {c: v for c, v in out.items() if c in AU_COLUMNS or c in AU_PRESENCE_COLUMNS}
    df = au_frame(lm["frame"], lm["timestamp_s"], tracked, np.ones(len(lm)), values)
    df.attrs["extra_estimated"] = [c for c in AU_PRESENCE_COLUMNS if c in values]
    return df, [c for c in AU_COLUMNS if c in values], fit_failed
