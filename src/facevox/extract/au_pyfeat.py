"""The ``pyfeat`` action-unit backend: py-feat's xgb AU model on our frames and landmarks.

py-feat 2.1.5's xgb AU model (``Detectorv1(au_model="xgb")``, hub repo ``py-feat/xgb_au``,
file ``xgb_au_classifier_v2.skops``) fed with our grey frames and our dlib landmarks
instead of py-feat's own face and landmark detectors (:class:`PyFeatAU`).  Its output is
the probability (0-1) that each AU is present.  py-feat has 20 AUs; 16 are AVEC AUs
(``AU01`` -> ``AU01_r`` ...), AU11, AU24, AU28 and AU43 are dropped, and ``AU45_r``
(blink) stays NaN: py-feat has no AU45 (:func:`from_pyfeat`).  Confidence: 1.0 on frames
with a face (the dlib tracker gives no calibrated probability).

The weights are never downloaded here: ``facevox fetch-models`` (:func:`fetch_models`)
puts them in py-feat's cache; :func:`pyfeat_weights_path` looks in the local caches
only (what the stage's ``auto`` asks).  The stage that runs it: facevox.extract.action_units.

Tests: tests/test_action_units.py
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import AU_COLUMNS, points_from_columns
from facevox.errors import FacevoxError, InputError
from facevox.extract.au_table import au_frame
from facevox.media import iter_gray_frames

#: ``au_scale`` metadata of this backend: what the numbers mean.
AU_SCALE = "py-feat xgb output: probability that the AU is present, 0-1"

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

