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

Backends (config ``action_units.backend``)
------------------------------------------
* ``openface`` - the OpenFace 2.x CSV named in the sample sheet's ``openface_csv``
  column (:func:`read_openface_csv`): its ``AU*_r`` intensities (0-5) as they are,
  its rows as they are (OpenFace's frames, made 0-based; not matched to ours).
  Rows with ``success`` 0 get NaN: OpenFace writes zeros there, which are not
  measurements.  Confidence: OpenFace's.  OpenFace has no notion of our target
  person: when the CSV has its 2-D landmarks (``x_0..x_67``, ``y_0..y_67``), a row
  whose landmark centroid lies outside the landmarks table's target box on the same
  0-based frame (or whose frame has no target) is not the target and becomes
  success false / NaN (:func:`openface_target`); without those columns the rows are
  kept and the metadata says the person was not checked.
* ``pyfeat`` - py-feat 2.1.5's xgb AU model (``Detectorv1(au_model="xgb")``,
  hub repo ``py-feat/xgb_au``, file ``xgb_au_classifier_v2.skops``) fed with
  our grey frames and our dlib landmarks instead of py-feat's own face and
  landmark detectors (:class:`PyFeatAU`).  Its output is the probability (0-1)
  that each AU is present.  py-feat has 20 AUs; 16 are AVEC AUs (``AU01`` ->
  ``AU01_r`` ...), AU11, AU24, AU28 and AU43 are dropped, and ``AU45_r`` (blink)
  stays NaN: py-feat has no AU45 (:func:`from_pyfeat`).  Confidence: 1.0 on
  frames with a face (the dlib tracker gives no calibrated probability).
  The weights are never downloaded here: ``facevox fetch-models``
  (:func:`fetch_models`) puts them in py-feat's cache.
* ``landmarks`` - geometric estimates from the 68 landmarks, no weights
  (:func:`geometric_aus`): AU01, AU02, AU04, AU05, AU12, AU15, AU25, AU26, AU45.
  Confidence: 1.0 on frames with a face.
* ``mediapipe`` - MediaPipe FaceLandmarker's 52 blendshapes mapped to all 17
  AUs (0-1), head pose from its transformation matrix and gaze from the iris
  points (facevox.extract.au_mediapipe, whose docstring has the mapping), on the
  landmarks table's target person only: each frame is shown to MediaPipe black
  outside the target's box enlarged ``au_mediapipe.MASK_MARGIN`` (1.8) times about
  its centre (the frame keeps its size, so pose and gaze are those of the whole
  frame); a frame whose landmarks row has no target (success false) is not shown at
  all and is a NaN row.  The face MediaPipe returns must then be the landmarks' face
  (:func:`au_mediapipe.same_face`: its nose tip in the box, its eye centres within
  0.5 inter-ocular distances of dlib's); a frame that fails is success false / NaN,
  never another face.  Without a landmarks table (a caller passing None) it sees whole
  frames, unchecked.  Confidence: the bundle's BlazeFace detector score.
* ``auto`` - ``pyfeat`` when its weights are in the local cache, else
  ``mediapipe`` when mediapipe and its model bundle are installed, else
  ``landmarks`` (:func:`resolve_backend`, also used by the Snakemake rule;
  :func:`backend_choice` says why).
  ``openface`` copies the CSV's pose and gaze columns too (OpenFace's units are the
  contract's); py-feat and landmarks leave them NaN.

Whose face: every backend measures the landmarks table's target person (issue 28).
``pyfeat`` and ``landmarks`` do by construction (the table's box and points);
``mediapipe`` and ``openface`` are checked per frame as above.  The metadata says
what was checked: ``target_checked`` (bool), ``target_check_why``, and where checked
``target_frames`` (rows with the target's values) and ``not_target_frames`` (rows
whose face was another's, made NaN); ``mediapipe`` adds ``no_target_frames`` (landmark
rows without the target: not shown to MediaPipe) and ``target_missed_frames`` (shown,
but MediaPipe found no face), and its params ``mask_margin`` and ``target_check``.

The geometric AUs
-----------------
dlib's 68 points: jaw 0-16, right brow 17-21, left brow 22-26, nose 27-35,
right eye 36-41, left eye 42-47, outer lip 48-59, inner lip 60-67 ("right" is
the subject's right, on the image's left).

*Eye frame.*  Each eye's centre is the midpoint of its two corners (36/39 and
42/45): the corners stay put when the lids move, so a blink does not shift the
reference that the brows are measured from.  Every frame's points are moved
into a frame with its origin midway between the eye centres, x along the eye
line (towards the left eye), y perpendicular to it (down, towards the mouth),
and the inter-ocular distance (IOD, between the eye centres) as unit:
``P' = R(-theta) (P - E) / IOD`` with ``theta`` the eye line's angle.  The
measures below are thus free of in-plane rotation, scale and position.  With
``X_i, Y_i`` the coordinates of point i in this frame (the eye centres lie at
Y = 0; a smaller Y is higher in the face) and ``|i-j|`` a distance:

=====  ==================  ==================================  ====  ==========
AU     action              measure m                           dir.  full scale
=====  ==================  ==================================  ====  ==========
AU01   inner brow raise    -(Y21 + Y22) / 2                     +     0.15
AU02   outer brow raise    ((Y36 - Y17) + (Y45 - Y26)) / 2      +     0.15
AU04   brow lower          -mean(Y17..Y26) + (X22 - X21)        -     0.15
AU05   upper lid raise     -(Y37 + Y38 + Y43 + Y44) / 4         +     0.05
AU12   lip corner pull     (X54 - X48) + c                      +     0.40
AU15   lip corner depress  -c                                   +     0.08
AU25   lips part           Y66 - Y62                            +     0.30
AU26   jaw drop            |8-33|                               +     0.40
AU45   blink               EAR                                  -     0.25
=====  ==================  ==================================  ====  ==========

* AU01/AU02: the brow points' height above the eye centres (inner brow ends
  21, 22) or above the outer eye corners (outer brow ends 17, 26).
* AU04 is the brows' mean height above the eye line plus the gap between the
  inner brow ends: the brow lowerer pulls the brows both down and together, so
  the measure *decreases* (dir. -).
* AU05: the upper lids' height above the eye line.
* ``c = (Y51 + Y57) / 2 - (Y48 + Y54) / 2`` is the lip corners' height above
  the lip centre (midpoint of 51 and 57), which a jaw drop leaves unchanged (the
  corners move about half as far as the lower lip).  AU12 adds the mouth width.
* AU25: the inner lip gap; AU26: the chin-to-nose-base distance.
* ``EAR`` (eye aspect ratio) = mean over both eyes of
  ``(|37-41| + |38-40|) / (2 |36-39|)`` (left eye: 43-47, 44-46, 42-45); it
  falls as the lids close.

Value: ``AU = 5 * clip(dir * (m - b) / full_scale, 0, 1)``, so 0 is neutral and
5 a change of ``full_scale`` (in IOD units; EAR units for AU45) or more, to look
like OpenFace's 0-5 intensities.  The full scales are rough anthropometric
sizes of a strong action (IOD ~ 63 mm: ~9 mm of brow raise, ~3 mm of lid
raise, a mouth ~45 % wider, ~25 mm of jaw drop, an EAR falling from ~0.3 open
to ~0.05 shut), not a calibration against FACS coders.  ``b`` is the
per-video neutral baseline: the ``baseline_quantile`` quantile (config, default
0.1) of m over the frames with a face for an increasing measure, the
``1 - baseline_quantile`` quantile for a decreasing one.  This assumes each AU
is inactive in most of a video's frames; where it is not (someone who smiles
through a short clip), the baseline is that expression and the values are
relative to it.  AU05 uses the median instead: lid height has blinks (~5-10 %
of frames) in its low tail, which a low quantile would take for neutral.

Rule: workflow/rules/action_units.smk · Tests: tests/test_action_units.py
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.config import stage_params
from facevox.contract import (
    AU_COLUMNS,
    AU_EXTRA_COLUMNS,
    AU_SCHEMA,
    BLENDSHAPE_COLUMNS,
    GAZE_COLUMNS,
    GAZE_VECTOR_COLUMNS,
    LANDMARKS_SCHEMA,
    POSE_COLUMNS,
    points_from_columns,
)
from facevox.errors import ExcludedInput, FacevoxError, InputError
from facevox.extract import au_mediapipe
from facevox.io import read_provenance, read_table, write_table
from facevox.media import iter_gray_frames
from facevox.provenance import provenance

#: ``au_scale`` metadata of each backend: what the numbers mean.
AU_SCALE = {
    "openface": "OpenFace 2.x intensity 0-5",
    "pyfeat": "py-feat xgb output: probability that the AU is present, 0-1",
    "landmarks": "landmark geometry: inter-ocular-normalised change from the neutral baseline, 0-5",
    "mediapipe": au_mediapipe.AU_SCALE,
}


def au_frame(frame, timestamp_s, success, confidence, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """The AU table in ``AU_SCHEMA`` order; AU and extension columns missing from ``values``
    and every value (confidence included) on rows without ``success`` are NaN."""
    success = np.asarray(success, bool)
    nan = np.float32(np.nan)
    data = {
        "frame": np.asarray(frame, np.int32),
        "timestamp_s": np.asarray(timestamp_s, np.float64),
        "success": success,
        "confidence": np.where(success, np.asarray(confidence, np.float32), nan),
    }
    for col in AU_COLUMNS + AU_EXTRA_COLUMNS:
        v = values.get(col)
        data[col] = np.full(len(success), nan) if v is None else np.where(success, np.asarray(v, np.float32), nan)
    return pd.DataFrame(data)[AU_SCHEMA.names]


# -- openface -----------------------------------------------------------------

#: Columns every OpenFace 2.x FeatureExtraction CSV has (besides the AUs).
OPENFACE_REQUIRED = ("frame", "timestamp", "confidence", "success")


def read_openface_csv(path, landmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """An OpenFace 2.x CSV as an AU table (``AU_SCHEMA``).

    Column names lose OpenFace's leading space; ``frame`` becomes 0-based,
    ``timestamp`` is ``timestamp_s``, ``success`` 1 is True.  The ``AU*_r``
    columns of ``AU_COLUMNS`` are kept (those the file lacks are NaN); rows with
    success 0 get NaN AUs and confidence.  ``df.attrs["au_estimated"]`` lists
    the AU columns the file had.  ``landmarks``: the video's landmarks table; rows
    whose face is not its target become success false (:func:`openface_target`;
    ``df.attrs["target_check"]`` says what was checked).  Raises :class:`InputError`
    for a missing or unreadable file, or one that fails
    facevox.extract.openface.read_openface_table's checks.
    """
    from facevox.extract.openface import read_openface_table

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "OpenFace CSV not found")
    raw, problems = read_openface_table(path, OPENFACE_REQUIRED, AU_COLUMNS, "AU*_r (no AU intensity column)")
    if problems:
        raise InputError(path, "; ".join(problems))
    estimated = [c for c in AU_COLUMNS if c in raw.columns]
    extra = openface_pose_gaze(raw)
    frame = raw["frame"].to_numpy(np.float64).astype(np.int64) - 1
    success = raw["success"].to_numpy(np.float64) == 1
    check = openface_target(raw, frame, success, landmarks)
    df = au_frame(frame, raw["timestamp"], success & check.pop("is_target"),
                  np.clip(raw["confidence"].to_numpy(np.float64), 0, 1),
                  {**{c: raw[c].to_numpy(np.float64) for c in estimated}, **extra})
    df.attrs["au_estimated"] = estimated
    df.attrs["extra_estimated"] = list(extra)
    df.attrs["target_check"] = check
    return df


#: OpenFace's 2-D landmark columns (pixels), as in its CSV.
OPENFACE_2D = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]


def openface_target(raw: pd.DataFrame, frame: np.ndarray, success: np.ndarray, lm: pd.DataFrame | None) -> dict:
    """Which OpenFace rows show the landmarks table's target: the centroid of OpenFace's 68 2-D
    landmarks (``x_0..x_67``, ``y_0..y_67``) inside the target's box on the same 0-based frame
    (a row whose frame has no target, or is past the table's end, is not the target).  Returns
    the same-face record plus ``is_target`` (per row; all True when nothing could be checked:
    no table, or a CSV without the 2-D landmark columns)."""
    if lm is None:
        return {"is_target": np.ones(len(raw), bool), "target_checked": False,
                "target_check_why": "no landmarks table given"}
    if not all(c in raw.columns for c in OPENFACE_2D):
        return {"is_target": np.ones(len(raw), bool), "target_checked": False,
                "target_check_why": "the OpenFace CSV has no 2-D landmark columns (x_0..x_67, y_0..y_67): "
                                    "the person its rows show was not checked against the landmarks' target"}
    xy = raw[OPENFACE_2D].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    cx, cy = xy[:, :68].mean(axis=1), xy[:, 68:].mean(axis=1)
    boxes = landmark_boxes(lm).astype(np.float64)
    row = np.full(len(raw), -1)
    index = pd.Series(np.arange(len(lm)), index=lm["frame"].to_numpy())
    known = np.isin(frame, index.index)
    row[known] = index.loc[frame[known]].to_numpy()
    b = np.where((row >= 0)[:, None], boxes[np.maximum(row, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        inside = (cx >= b[:, 0]) & (cx <= b[:, 0] + b[:, 2]) & (cy >= b[:, 1]) & (cy <= b[:, 1] + b[:, 3])
    return {"is_target": inside, "target_checked": True,
            "target_check_why": "OpenFace's 2-D landmark centroid inside the landmarks' target box",
            "target_frames": int((success & inside).sum()), "not_target_frames": int((success & ~inside).sum())}


def openface_pose_gaze(raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """OpenFace's pose_T*/pose_R* (mm, rad) and gaze_* columns that the CSV has, numeric ones only,
    under the same names (the contract's units are OpenFace's).  OpenFace before 2.0.4 writes no
    ``gaze_angle_*``: they are computed from the two vectors as OpenFace does (atan2 of the mean)."""
    out = {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(np.float64)
           for c in POSE_COLUMNS + GAZE_COLUMNS if c in raw.columns}
    if "gaze_angle_x" not in out and all(c in out for c in GAZE_VECTOR_COLUMNS):
        g = (np.stack([out[f"gaze_0_{a}"] for a in "xyz"]) + np.stack([out[f"gaze_1_{a}"] for a in "xyz"])) / 2
        out["gaze_angle_x"] = np.arctan2(g[0], -g[2])
        out["gaze_angle_y"] = np.arctan2(g[1], -g[2])
    return {c: out[c] for c in POSE_COLUMNS + GAZE_COLUMNS if c in out}


# -- landmarks: geometric AUs ------------------------------------------------

#: AU column -> (direction of the measure, full-scale change, neutral baseline):
#: see the module docstring for the measures.
GEOMETRIC_AUS = {
    "AU01_r": (+1, 0.15, "quantile"),
    "AU02_r": (+1, 0.15, "quantile"),
    "AU04_r": (-1, 0.15, "quantile"),
    "AU05_r": (+1, 0.05, "median"),
    "AU12_r": (+1, 0.40, "quantile"),
    "AU15_r": (+1, 0.08, "quantile"),
    "AU25_r": (+1, 0.30, "quantile"),
    "AU26_r": (+1, 0.40, "quantile"),
    "AU45_r": (-1, 0.25, "quantile"),
}
#: Intensity of a full-scale change (OpenFace's maximum).
MAX_INTENSITY = 5.0


def eye_frame(points: np.ndarray) -> np.ndarray:
    """Points [N, 68, 2] (pixels) in the eye frame of each row: origin midway between
    the eye centres (corner midpoints 36/39, 42/45), x along the eye line towards
    the left eye, y perpendicular (down the face), unit = inter-ocular distance."""
    right = (points[:, 36] + points[:, 39]) / 2
    left = (points[:, 42] + points[:, 45]) / 2
    d = left - right
    iod = np.hypot(d[:, 0], d[:, 1])[:, None]
    cos, sin = d[:, :1] / iod, d[:, 1:] / iod
    q = points - ((left + right) / 2)[:, None, :]
    x = (q[..., 0] * cos + q[..., 1] * sin) / iod
    y = (q[..., 1] * cos - q[..., 0] * sin) / iod
    return np.stack([x, y], axis=-1)


def geometric_measures(p: np.ndarray) -> dict[str, np.ndarray]:
    """The measure m of each geometric AU (module docstring) from eye-frame points [N, 68, 2]."""
    X, Y = p[..., 0], p[..., 1]

    def dist(i, j):
        return np.hypot(X[:, i] - X[:, j], Y[:, i] - Y[:, j])

    def ear(e):  # eye aspect ratio of the eye whose points are e[0..5]
        return (dist(e[1], e[5]) + dist(e[2], e[4])) / (2 * dist(e[0], e[3]))

    corner_raise = (Y[:, 51] + Y[:, 57]) / 2 - (Y[:, 48] + Y[:, 54]) / 2
    return {
        "AU01_r": -(Y[:, 21] + Y[:, 22]) / 2,
        "AU02_r": ((Y[:, 36] - Y[:, 17]) + (Y[:, 45] - Y[:, 26])) / 2,
        "AU04_r": -Y[:, 17:27].mean(axis=1) + (X[:, 22] - X[:, 21]),
        "AU05_r": -(Y[:, 37] + Y[:, 38] + Y[:, 43] + Y[:, 44]) / 4,
        "AU12_r": (X[:, 54] - X[:, 48]) + corner_raise,
        "AU15_r": -corner_raise,
        "AU25_r": Y[:, 66] - Y[:, 62],
        "AU26_r": dist(8, 33),
        "AU45_r": (ear(range(36, 42)) + ear(range(42, 48))) / 2,
    }


def geometric_aus(landmarks_df: pd.DataFrame, baseline_quantile: float = 0.1) -> tuple[pd.DataFrame, list[str]]:
    """Geometric AU intensities (module docstring) from a landmark table (``LANDMARKS_SCHEMA``
    columns frame, timestamp_s, success, x_*, y_*); returns the AU table and its estimated columns."""
    n = len(landmarks_df)
    points = points_from_columns(landmarks_df)
    with np.errstate(divide="ignore", invalid="ignore"):
        measures = geometric_measures(eye_frame(points))
    ok = landmarks_df["success"].to_numpy(bool) & np.all([np.isfinite(m) for m in measures.values()], axis=0)
    values = {}
    if ok.any():  # else every row is NaN
        for col, (direction, full_scale, neutral) in GEOMETRIC_AUS.items():
            m = measures[col]
            q = 0.5 if neutral == "median" else baseline_quantile if direction > 0 else 1 - baseline_quantile
            baseline = np.quantile(m[ok], q)
            values[col] = MAX_INTENSITY * np.clip(direction * (m - baseline) / full_scale, 0, 1)
    df = au_frame(landmarks_df["frame"], landmarks_df["timestamp_s"], ok, np.ones(n), values)
    return df, list(GEOMETRIC_AUS)


# -- pyfeat -------------------------------------------------------------------

PYFEAT_AU_REPO = "py-feat/xgb_au"
PYFEAT_AU_FILE = "xgb_au_classifier_v2.skops"
#: Side of py-feat's face crops, raw and aligned (Detectorv1 with its mobilefacenet landmarks).
PYFEAT_FACE_SIZE = 112
#: Frames per xgb call.
PYFEAT_BATCH = 64


def pyfeat_cache_dirs() -> list[Path]:
    """Where the py-feat weights may lie, in Hugging Face hub cache layout: py-feat's
    own cache (``feat/resources``, its ``cache_dir``), then the default hub cache."""
    from huggingface_hub import constants

    dirs = []
    spec = importlib.util.find_spec("feat")  # located, not imported (slow)
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "resources")
    dirs.append(Path(constants.HF_HUB_CACHE))
    return dirs


def pyfeat_weights_path() -> Path | None:
    """The cached xgb AU model file, or None; looks at the local caches only."""
    from huggingface_hub import try_to_load_from_cache

    for folder in pyfeat_cache_dirs():
        found = try_to_load_from_cache(PYFEAT_AU_REPO, PYFEAT_AU_FILE, cache_dir=folder)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def pyfeat_weights_available() -> bool:
    return pyfeat_weights_path() is not None


def missing_weights_message() -> str:
    return (f"py-feat's AU model ({PYFEAT_AU_REPO}, {PYFEAT_AU_FILE}) is not in the local cache "
            f"({', '.join(map(str, pyfeat_cache_dirs()))}): run `facevox fetch-models` where a "
            "network is available, or set action_units.backend to landmarks")


def fetch_models() -> list[Path]:
    """Download py-feat's xgb AU model into py-feat's cache (as py-feat does); return its path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(repo_id=PYFEAT_AU_REPO, filename=PYFEAT_AU_FILE,
                               cache_dir=pyfeat_cache_dirs()[0])
    except (OSError, EntryNotFoundError) as exc:
        raise FacevoxError(f"could not download {PYFEAT_AU_REPO}/{PYFEAT_AU_FILE}: {exc}") from None
    return [Path(path)]


class PyFeatAU:
    """py-feat 2.1.5's xgb AU model on our grey frames and dlib landmarks.

    py-feat's own path (``Detectorv1.forward``): the RetinaFace box, enlarged
    1.2x, is resampled to a 112x112 crop; its landmark model gives 68 points in
    that crop's [0, 1] coordinates; ``extract_hog_features_batched`` then aligns
    the face from five anchors (eye centres, nose tip 30, mouth corners 48/54)
    into a 112-px crop with the eyes level, masks it to the landmarks' convex
    hull plus the forehead, and takes HOG features (8 orientations, 8-px cells,
    2x2 blocks, L2-Hys: 5408 values).  The model's input is those features,
    reduced by py-feat's scalers and PCAs, plus the 68 aligned landmarks.

    Here the same functions run with our face box (``box_*`` of the landmark
    table, dlib's detector convention, enlarged 1.2x the same way) and our dlib
    landmarks normalised to that 112-px crop.  Differences from py-feat's own
    detections: a dlib box is square and reaches less far up the forehead than
    RetinaFace's (enlarged, it still holds the whole aligned region), and the
    grey frame stands in for RGB in all three channels (HOG keeps, per pixel, the channel with the
    strongest gradient).  Weights load from the local cache only; without them
    the constructor raises :class:`FacevoxError` before anything slow is imported.
    """

    def __init__(self):
        path = pyfeat_weights_path()
        if path is None:
            raise FacevoxError(missing_weights_message())
        import xgboost  # noqa: F401  - before torch, as py-feat does (OpenMP runtimes)
        from feat.au_detectors.StatLearning.SL_test import XGBClassifier
        from feat.pretrained import AU_LANDMARK_MAP
        from feat.utils.image_operations import HOGLayer
        from skops.io import get_untrusted_types, load

        loaded = load(path, trusted=get_untrusted_types(file=str(path)))
        self.model = XGBClassifier()
        # As Detectorv1 loads it (no probability calibrators).
        self.model.load_weights(
            scaler_upper=loaded.scaler_upper, pca_model_upper=loaded.pca_model_upper,
            scaler_lower=loaded.scaler_lower, pca_model_lower=loaded.pca_model_lower,
            scaler_full=loaded.scaler_full, pca_model_full=loaded.pca_model_full,
            classifiers=loaded.classifiers,
        )
        self.path = path
        self.columns = list(AU_LANDMARK_MAP["Feat"])  # AU01 ... AU43, the model's output order
        self.hog = HOGLayer(orientations=8, pixels_per_cell=8, cells_per_block=2,
                            block_normalization="L2-Hys", feature_vector=True, device="cpu")

    @staticmethod
    def crop(gray: np.ndarray, points: np.ndarray, box) -> tuple:
        """py-feat's face crop [3, 112, 112] (values 0-1) of one frame and the 68
        points in its [0, 1] coordinates [136] (x0, y0, x1, y1, ...); ``box`` is
        (left, top, width, height) in pixels."""
        import torch
        from feat.utils.image_operations import extract_face_from_bbox_torch

        frame = torch.from_numpy(np.asarray(gray, np.float32) / 255.0)[None, None]
        left, top, width, height = box
        bbox = torch.tensor([[left, top, left + width, top + height]], dtype=torch.float32)
        faces, new_box = extract_face_from_bbox_torch(frame, bbox, face_size=PYFEAT_FACE_SIZE, expand_bbox=1.2)
        x1, y1, x2, y2 = new_box[0].tolist()  # the rounded box py-feat maps its landmarks with
        norm = (np.asarray(points, np.float64) - (x1, y1)) / (x2 - x1, y2 - y1)
        return faces[0].expand(3, -1, -1), torch.from_numpy(norm.astype(np.float32).reshape(-1))

    def predict(self, faces, points) -> np.ndarray:
        """AU probabilities [N, 20] (``self.columns``) from crops [N, 3, 112, 112] and points [N, 136]."""
        from feat.utils.face_mask import extract_hog_features_batched

        hog, aligned = extract_hog_features_batched(faces, points, hog_layer=self.hog)
        return np.asarray(self.model.detect_au(frame=hog, landmarks=[aligned]), np.float64)

    def video_aus(self, video, lm: pd.DataFrame) -> pd.DataFrame:
        """py-feat's AU columns for every row of the video's landmark table (NaN without face)."""
        import torch

        out = np.full((len(lm), len(self.columns)), np.nan)
        success = lm["success"].to_numpy(bool)
        points = points_from_columns(lm)
        boxes = lm[["box_left", "box_top", "box_width", "box_height"]].to_numpy(np.float64)
        rows, faces, norms = [], [], []

        def flush():
            if rows:
                out[rows] = self.predict(torch.stack(faces), torch.stack(norms))
                for items in (rows, faces, norms):
                    items.clear()

        n_decoded = 0
        for frame in iter_gray_frames(video):
            n_decoded += 1
            i = frame.index
            if i >= len(lm) or not success[i]:
                continue
            face, norm = self.crop(frame.image, points[i], boxes[i])
            rows.append(i)
            faces.append(face)
            norms.append(norm)
            if len(rows) == PYFEAT_BATCH:
                flush()
        flush()
        if n_decoded != len(lm):
            raise InputError(video, f"has {n_decoded} frames but its landmark table has {len(lm)} rows")
        return pd.DataFrame(out, columns=self.columns)


def from_pyfeat(aus: pd.DataFrame, frames: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """py-feat's AU output in the AU table layout; returns the table and its estimated columns.

    ``aus`` has py-feat's AU columns (``AU01``, ``AU02``, ... one row per row of
    ``frames``, which gives frame, timestamp_s and success).  ``AUxx`` goes to
    ``AUxx_r``; py-feat AUs outside the AVEC 17 (AU11, AU24, AU28, AU43) are
    dropped; AVEC AUs py-feat lacks (AU45) stay NaN.
    """
    if len(aus) != len(frames):
        raise ValueError(f"py-feat output has {len(aus)} rows for {len(frames)} frames")
    values = {col: aus[col[:-2]].to_numpy(np.float64) for col in AU_COLUMNS if col[:-2] in aus.columns}
    df = au_frame(frames["frame"], frames["timestamp_s"], frames["success"], np.ones(len(frames)), values)
    return df, list(values)


# -- the stage ----------------------------------------------------------------

def backend_choice(backend: str) -> tuple[str, str]:
    """(the backend that runs, why): ``auto`` is pyfeat when its weights are cached, else
    mediapipe when it and its bundle are installed, else landmarks."""
    if backend != "auto":
        return backend, "set in the config (action_units.backend)"
    if pyfeat_weights_available():
        return "pyfeat", "auto: py-feat's AU weights are cached"
    why = "py-feat weights not cached (`facevox fetch-models` downloads them)"
    if au_mediapipe.available():
        return "mediapipe", f"auto: {why}"
    return "landmarks", f"auto: {why}; {au_mediapipe.unavailable_reason()}"


def resolve_backend(backend: str) -> str:
    """The backend that runs (:func:`backend_choice`)."""
    return backend_choice(backend)[0]


def landmark_boxes(lm: pd.DataFrame) -> np.ndarray:
    """The target's box per row of a landmarks table [N, 4] float32 (left, top, width, height),
    NaN on rows without the target (success false): what MediaPipe is shown the frame by."""
    boxes = lm[["box_left", "box_top", "box_width", "box_height"]].to_numpy(np.float32).copy()
    boxes[~lm["success"].to_numpy(bool)] = np.nan
    return boxes


def box_differences(mp_out: dict, lm: pd.DataFrame) -> int:
    """On how many frames MediaPipe was shown another box (``given_box`` of
    :meth:`au_mediapipe.FaceLandmarkerAU.session`'s result; NaN: not shown the frame) than the
    landmarks table gives (:func:`landmark_boxes`); every frame when their lengths differ.  0: its
    output is exactly what the stage makes from the table."""
    given = np.asarray(mp_out["given_box"], np.float32)
    want = landmark_boxes(lm)
    if given.shape != want.shape:
        return max(len(given), len(want))
    same = (given == want) | (np.isnan(given) & np.isnan(want))
    return int((~same.all(axis=1)).sum())


def mediapipe_aus(video, lm: pd.DataFrame | None = None, confidence_every: int = au_mediapipe.CONFIDENCE_EVERY,
                  out: dict | None = None) -> tuple[pd.DataFrame, list[str], list[str], dict]:
    """The ``mediapipe`` backend's AU table, its estimated AU and extension columns, and the
    same-face record (:func:`target_record`).  ``lm``: the landmarks table (the target's boxes
    and points; None: whole frames, unchecked); ``out``: the landmarker's output for this video
    when the caller ran it (shown the table's boxes: :func:`box_differences` is 0)."""
    boxes = None if lm is None else landmark_boxes(lm)
    if out is None:
        out = au_mediapipe.FaceLandmarkerAU(confidence_every).video(video, boxes)
    success = np.asarray(out["success"], bool)
    if lm is None:
        check = {"target_checked": False, "target_check_why": "no landmarks table: MediaPipe saw whole frames"}
    else:
        n = len(success)
        if n != len(lm):
            raise InputError(video, f"has {n} frames but its landmark table has {len(lm)} rows")
        same = au_mediapipe.same_face(out["check_points"], boxes, points_from_columns(lm))
        target = lm["success"].to_numpy(bool)
        check = {"target_checked": True,
                 "target_check_why": "MediaPipe shown the target's region only; its face checked against "
                                     "the landmarks (nose tip in the box, eye centres)",
                 "target_frames": int((success & same).sum()),
                 "not_target_frames": int((success & ~same).sum()),
                 "no_target_frames": int((~target).sum()),
                 "target_missed_frames": int((target & ~success).sum())}
        success = success & same
    values = {c: out[c] for c in AU_COLUMNS + POSE_COLUMNS + GAZE_COLUMNS}
    values.update(zip(BLENDSHAPE_COLUMNS, out["blendshapes"].T))
    df = au_frame(out["frame"], out["timestamp_s"], success, out["confidence"], values)
    return df, list(AU_COLUMNS), POSE_COLUMNS + GAZE_COLUMNS + BLENDSHAPE_COLUMNS, check


def run(video, landmarks_path, out, params: dict | None = None, openface_csv=None,
        mediapipe_out: dict | None = None) -> dict:
    """The stage: ``video``'s AU table with the configured backend.  ``mediapipe_out``: the
    mediapipe backend's per-frame output (:meth:`au_mediapipe.FaceLandmarkerAU.session`) made by
    a caller that decoded the video for the landmarks stage too (facevox.extract.chain), shown
    the provisional target's boxes: used when they are the table's on every frame, else MediaPipe
    runs again from the table (the summary's ``second_pass``, ``second_pass_frames``: on how many
    frames they differed), so the table is always the one the stage alone writes."""
    p = stage_params("action_units", params)
    backend, why = backend_choice(p["backend"])
    record = dict(p)
    extra_estimated: list[str] = []
    summary_extra: dict = {}
    if backend == "openface":
        if not openface_csv:
            raise FacevoxError(f"{video}: action_units.backend is openface but the sample sheet's "
                               "openface_csv column is empty for this video")
        lm = None if landmarks_path is None else read_table(landmarks_path, LANDMARKS_SCHEMA)[0]
        df = read_openface_csv(openface_csv, lm)
        estimated = df.attrs["au_estimated"]
        extra_estimated = df.attrs["extra_estimated"]
        check = df.attrs["target_check"]
        inputs = {"openface_csv": openface_csv, **({"landmarks": landmarks_path} if lm is not None else {})}
    elif backend == "landmarks":
        lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
        df, estimated = geometric_aus(lm, p["baseline_quantile"])
        record["geometric_aus"] = {col: {"direction": d, "full_scale": s, "baseline": b}
                                   for col, (d, s, b) in GEOMETRIC_AUS.items()}
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
            differ = box_differences(mediapipe_out, lm)
            summary_extra.update(second_pass=differ > 0, second_pass_frames=differ)
            if differ:
                mediapipe_out = None  # shown other boxes than the final target's: run again from the table
        df, estimated, extra_estimated, check = mediapipe_aus(video, lm, p["confidence_every"], mediapipe_out)
        record["model"] = (f"{au_mediapipe.MODEL_FILE} (sha256 {au_mediapipe.MODEL_SHA256}, "
                           f"from {au_mediapipe.MODEL_WHEEL})")
        record["au_from_blendshapes"] = {c: {"rule": r, "blendshapes": n}
                                         for c, (r, n) in au_mediapipe.AU_FROM_BLENDSHAPES.items()}
        if lm is not None:
            record["mask_margin"] = au_mediapipe.MASK_MARGIN
            record["target_check"] = {"nose_tip": "inside the landmarks' box",
                                      "eye_tolerance_iod": au_mediapipe.EYE_TOLERANCE_IOD}
        inputs = {"video": video, "model": au_mediapipe.model_path(),
                  **({"landmarks": landmarks_path} if lm is not None else {})}
    else:
        model = PyFeatAU()
        lm, _ = read_table(landmarks_path, LANDMARKS_SCHEMA)
        df, estimated = from_pyfeat(model.video_aus(video, lm), lm)
        record["model"] = f"{PYFEAT_AU_REPO}/{PYFEAT_AU_FILE}"
        check = from_the_table(df, "crops of the landmarks table's box and points of its target")
        inputs = {"video": video, "landmarks": landmarks_path, "model": model.path}
    summary = {"backend": backend, "n_frames": int(len(df)),
               "face_rate": float(df["success"].mean()) if len(df) else 0.0, "why": why, **summary_extra}
    meta = provenance("action_units", params=record, inputs=inputs, au_backend=backend, au_backend_why=why,
                      au_estimated=estimated, extra_estimated=extra_estimated, au_scale=AU_SCALE[backend],
                      n_frames=summary["n_frames"], face_rate=summary["face_rate"], **check)
    write_table(df, out, AU_SCHEMA, meta)
    return summary


def from_the_table(df: pd.DataFrame, how: str) -> dict:
    """The same-face record of a backend that measures the landmarks table's target itself."""
    return {"target_checked": True, "target_check_why": f"by construction: {how}",
            "target_frames": int(df["success"].sum()), "not_target_frames": 0}
