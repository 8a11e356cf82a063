"""OpenFace 2.x's own AU models, read from the user's OpenFace folder and applied with numpy.

OpenFace (Baltrušaitis et al., academic licence) predicts each action unit with a linear
model over one feature vector per frame: the aligned face's FHOG descriptor (4464 values,
12 x 12 cells x 31) followed by the geometry descriptor (238 values: the 68 3-D landmark
offsets ``princ_comp @ params_local`` - 204 - then the 34 PDM parameters themselves; see
:func:`geometry_features`).  Nothing of OpenFace is copied here: the model files stay in the
user's folder, this module only reads them (:func:`load_au_models`, :func:`read_pdm`) and
records their sha256 (:func:`model_checksums`).

**Files** (as OpenFace's ``FaceAnalyser::ReadAU`` / ``ReadRegressor`` read them):

* the AU list (``AU_predictors/AU_all_best.txt``): one model a line, ``<relative path> <AU name>``;
* each model file: an int32 type marker (0 SVR static, 1 SVR dynamic, 4 SVM static, 5 SVM
  dynamic), for SVR dynamic a float64 *cutoff*, then two OpenCV binary matrices - the feature
  means (1 x F) and the weights (F x 1) - each ``int32 rows, int32 cols, int32 type`` and the
  row-major data, then a float64 bias, and for an SVM two float64s: the values written for a
  positive and for a negative score.  All little-endian (as OpenFace's x86 builds wrote them);
* the PDM (``In-the-wild_aligned_PDM_68.txt``): OpenCV text matrices (``rows cols type`` then
  the values, ``#`` comment lines between): mean shape (204 x 1), principal components
  (204 x 34), eigenvalues (1 x 34).

**Application** (:func:`predict_aus`, what FeatureExtraction writes for a video): a model's
score is ``(x - means) @ w + bias``; a *dynamic* model first subtracts the person's running
median of the features (:func:`running_median`).  Then, as ``ExtractAllPredictionsOffline*``
do: the first 3000 tracked frames are scored again with the video's final median; each dynamic
regressor is shifted down by its own prediction at the *cutoff* quantile of the tracked frames
(person calibration; a cutoff of -1 means none); intensities are clamped to 0..5; untracked
frames get 0; intensities get a 3-frame moving average and presence a 7-frame majority vote.

The caller builds the feature vectors (HOG of OpenFace's aligned face, PDM parameters);
this module has no image code.

Tests: tests/test_au_openface_models.py
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.errors import FacevoxError, InputError
from facevox.io import file_sha256

#: What an OpenFace 2.x model folder holds (said in every error about a model file).
FOLDER_HINT = ("an OpenFace 2.x model folder holds AU_predictors/AU_all_best.txt, the svr_combined/ and "
               "svm_combined/ .dat files it lists, and the PDM In-the-wild_aligned_PDM_68.txt "
               "(OpenFace's lib/local/FaceAnalyser/AU_predictors or its bin/ folder)")

#: OpenFace's regressor type markers (``FaceAnalyser::RegressorType``): kind, dynamic.
MODEL_TYPES = {0: ("intensity", False), 1: ("intensity", True), 4: ("presence", False), 5: ("presence", True)}

#: FHOG descriptor length of OpenFace's 112 x 112 aligned face (12 x 12 cells x 31).
HOG_FEATURES = 4464
#: Geometry descriptor length: 68 x 3 landmark offsets + 34 PDM parameters.
GEOM_FEATURES = 238

#: Running-median histograms, from ``FaceAnalyser``'s constructor: (bins, min, max).
HOG_HISTOGRAM = (1000, -0.005, 1.0)
GEOM_HISTOGRAM = (10000, -60.0, 60.0)

#: How many tracked frames OpenFace scores again with the final median (``max_init_frames``).
MAX_INIT_FRAMES = 3000

# OpenCV matrix type codes (depth only, one channel) -> numpy dtype.
_CV_TYPES = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.int32, 5: np.float32, 6: np.float64}


def _bad(path, problem: str) -> InputError:
    return InputError(path, f"{problem}; {FOLDER_HINT}")


@dataclass(frozen=True)
class AUModel:
    """One of OpenFace's linear AU models: ``score = (x - means [- median]) @ weights + bias``.

    ``kind``: "intensity" (an SVR: the score is AUxx_r) or "presence" (an SVM: AUxx_c is
    ``pos_class`` where the score is > 0, else ``neg_class``).  ``cutoff``: a dynamic SVR's
    calibration quantile (-1: none; None for the others)."""
    au: str
    kind: str
    dynamic: bool
    means: np.ndarray
    weights: np.ndarray
    bias: float
    path: Path
    cutoff: float | None = None
    pos_class: float | None = None
    neg_class: float | None = None


@dataclass(frozen=True)
class AUModels:
    """The models of one AU list: ``models`` in the list's order; ``files``: the list file and
    every model file read (for :func:`model_checksums`)."""
    models: tuple[AUModel, ...]
    files: tuple[Path, ...]

    @property
    def n_features(self) -> int:
        return int(self.models[0].means.size)


@dataclass(frozen=True)
class PDM:
    """OpenFace's point distribution model: ``mean_shape`` (204: x of the 68 points, then y,
    then z), ``princ_comp`` (204 x modes), ``eigen_values`` (modes)."""
    mean_shape: np.ndarray
    princ_comp: np.ndarray
    eigen_values: np.ndarray
    path: Path


def read_mat_bin(buf: bytes, offset: int, path) -> tuple[np.ndarray, int]:
    """One OpenCV binary matrix (OpenFace's ``ReadMatBin``) from ``buf`` at ``offset``:
    int32 rows, cols, type, then rows x cols values, row-major, little-endian.  Returns the
    matrix (2-D, float64) and the offset after it; :class:`InputError` naming ``path`` if the
    header is impossible or the data is cut short."""
    if offset + 12 > len(buf):
        raise _bad(path, f"file ends inside a matrix header at byte {offset}")
    rows, cols, cv_type = struct.unpack_from("<iii", buf, offset)
    if cv_type not in _CV_TYPES or rows < 0 or cols < 0:
        raise _bad(path, f"not an OpenCV matrix at byte {offset} (rows {rows}, cols {cols}, type {cv_type})")
    dtype = np.dtype(_CV_TYPES[cv_type]).newbyteorder("<")
    start = offset + 12
    end = start + rows * cols * dtype.itemsize
    if end > len(buf):
        raise _bad(path, f"file ends inside a {rows} x {cols} matrix (needs {end} bytes, has {len(buf)})")
    data = np.frombuffer(buf, dtype=dtype, count=rows * cols, offset=start).astype(np.float64)
    return data.reshape(rows, cols), end


def _read_f64(buf: bytes, offset: int, path, what: str) -> tuple[float, int]:
    if offset + 8 > len(buf):
        raise _bad(path, f"file ends before the {what} at byte {offset}")
    return struct.unpack_from("<d", buf, offset)[0], offset + 8


def read_au_model(path, au: str) -> AUModel:
    """One OpenFace AU model file (an SVR or SVM, static or dynamic; layout in the module
    docstring), for the AU named ``au``.  :class:`InputError` naming the file when it is
    missing, of an unknown type, cut short, longer than its content, or its matrices do not
    fit (means 1 x F, weights F x 1)."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, f"OpenFace AU model file for {au} not found")
    buf = path.read_bytes()
    if len(buf) < 4:
        raise _bad(path, "too short to be an OpenFace AU model file")
    marker = struct.unpack_from("<i", buf, 0)[0]
    if marker not in MODEL_TYPES:
        raise _bad(path, f"unknown OpenFace model type {marker} (facevox reads types {sorted(MODEL_TYPES)}: "
                         "linear SVR/SVM, static/dynamic)")
    kind, dynamic = MODEL_TYPES[marker]
    offset, cutoff = 4, None
    if kind == "intensity" and dynamic:
        cutoff, offset = _read_f64(buf, offset, path, "cutoff")
    means, offset = read_mat_bin(buf, offset, path)
    weights, offset = read_mat_bin(buf, offset, path)
    bias, offset = _read_f64(buf, offset, path, "bias")
    pos = neg = None
    if kind == "presence":
        pos, offset = _read_f64(buf, offset, path, "positive class value")
        neg, offset = _read_f64(buf, offset, path, "negative class value")
    if offset != len(buf):
        raise _bad(path, f"{len(buf) - offset} bytes left after the model (type {marker}): not this format")
    if means.shape[0] != 1 or weights.shape != (means.shape[1], 1):
        raise _bad(path, f"means {means.shape} and weights {weights.shape} do not fit (want 1 x F and F x 1)")
    if cutoff is not None and cutoff != -1 and not 0 <= cutoff <= 1:
        raise _bad(path, f"calibration cutoff {cutoff} is neither -1 nor a fraction 0..1")
    values = [v for v in (cutoff, bias, pos, neg) if v is not None]
    if not (np.isfinite(means).all() and np.isfinite(weights).all() and np.isfinite(values).all()):
        raise _bad(path, "the model holds non-finite numbers")
    return AUModel(au=au, kind=kind, dynamic=dynamic, means=means[0], weights=weights[:, 0], bias=float(bias),
                   path=path, cutoff=cutoff, pos_class=pos, neg_class=neg)


def read_au_list(path) -> list[tuple[Path, str]]:
    """OpenFace's AU list (``AU_all_best.txt``): ``(model file, AU name)`` for each non-blank
    line ``<path relative to the list> <AU name>``.  :class:`InputError` naming the list when it
    is missing, empty, or a line has no name or several (OpenFace's comma lists: one model for
    several AUs; its own lists never do this)."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "OpenFace AU list not found")
    out = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or "," in parts[1]:
            raise _bad(path, f"line {number} {line.strip()!r} is not '<model file> <AU name>'")
        out.append((path.parent / parts[0], parts[1]))
    if not out:
        raise _bad(path, "the AU list names no model")
    return out


def load_au_models(au_list) -> AUModels:
    """Every model of an OpenFace AU list (:func:`read_au_list`, :func:`read_au_model`).
    :class:`InputError` when a file is missing or malformed, when the models' feature counts
    differ, or when one AU has two models of the same kind."""
    au_list = Path(au_list)
    models, seen = [], {}
    for model_path, au in read_au_list(au_list):
        model = read_au_model(model_path, au)
        key = (model.au, model.kind)
        if key in seen:
            raise _bad(au_list, f"two {model.kind} models for {au}: {seen[key].name} and {model_path.name}")
        if models and model.means.size != models[0].means.size:
            raise _bad(model_path, f"has {model.means.size} features, {models[0].path.name} has "
                                   f"{models[0].means.size}: models of different OpenFace versions")
        seen[key] = model_path
        models.append(model)
    return AUModels(models=tuple(models), files=(au_list, *(m.path for m in models)))


def _read_text_mat(tokens: list[str], pos: int, path, what: str) -> tuple[np.ndarray, int]:
    try:
        rows, cols, cv_type = (int(t) for t in tokens[pos:pos + 3])
    except ValueError:
        raise _bad(path, f"the {what} has no 'rows cols type' header") from None
    if cv_type not in _CV_TYPES or rows <= 0 or cols <= 0 or pos + 3 > len(tokens):
        raise _bad(path, f"the {what} header '{rows} {cols} {cv_type}' is not an OpenCV matrix")
    values = tokens[pos + 3:pos + 3 + rows * cols]
    if len(values) < rows * cols:
        raise _bad(path, f"the {what} ({rows} x {cols}) is cut short: {len(values)} values")
    try:
        data = np.array(values, dtype=np.float64).reshape(rows, cols)
    except ValueError:
        raise _bad(path, f"the {what} holds a value that is not a number") from None
    return data, pos + 3 + rows * cols


def read_pdm(path) -> PDM:
    """OpenFace's PDM text file (``PDM::Read``): three OpenCV text matrices - mean shape,
    principal components, eigenvalues - with ``#`` comment lines around them.
    :class:`InputError` naming the file when it is missing, malformed, or the shapes
    disagree (mean 3n x 1, components 3n x m, eigenvalues m values)."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "OpenFace PDM file not found")
    tokens = [t for line in path.read_text(errors="replace").splitlines()
              if not line.lstrip().startswith("#") for t in line.split()]
    mean, pos = _read_text_mat(tokens, 0, path, "mean shape")
    comp, pos = _read_text_mat(tokens, pos, path, "principal components")
    eig, pos = _read_text_mat(tokens, pos, path, "eigenvalues")
    if pos != len(tokens):
        raise _bad(path, f"{len(tokens) - pos} values left after the eigenvalues")
    if mean.shape[1] != 1 or mean.shape[0] % 3 or comp.shape[0] != mean.shape[0] or eig.size != comp.shape[1]:
        raise _bad(path, f"shapes do not fit: mean {mean.shape}, components {comp.shape}, eigenvalues {eig.shape}")
    return PDM(mean_shape=mean[:, 0], princ_comp=comp, eigen_values=eig.ravel(), path=path)


def find_model_files(folder) -> dict[str, Path]:
    """The files of an OpenFace model folder: ``{"au_list": .../AU_all_best.txt, "pdm":
    ...In-the-wild_aligned_PDM_68.txt}``.  ``folder`` is the AU_predictors folder itself or
    the folder above it (OpenFace's ``bin/`` or ``lib/local/FaceAnalyser``); the PDM is looked
    for beside the list, then in ``model/pdms/``.  :class:`InputError` naming the folder when
    one is missing."""
    folder = Path(folder)
    lists = [folder / "AU_all_best.txt", folder / "AU_predictors" / "AU_all_best.txt"]
    au_list = next((p for p in lists if p.is_file()), None)
    if au_list is None:
        raise _bad(folder, "no AU_all_best.txt here or in AU_predictors/")
    name = "In-the-wild_aligned_PDM_68.txt"
    pdms = [au_list.parent / name, au_list.parent.parent / "model" / "pdms" / name, folder / "model" / "pdms" / name]
    pdm = next((p for p in pdms if p.is_file()), None)
    if pdm is None:
        raise _bad(folder, f"no {name} beside {au_list.name} or in model/pdms/")
    return {"au_list": au_list, "pdm": pdm}


def model_checksums(paths) -> dict[str, str]:
    """sha256 (hex) of each file in ``paths`` (e.g. ``AUModels.files`` and the PDM's path),
    keyed by the path as given, for the provenance record.  :class:`InputError` for a missing file."""
    out = {}
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise _bad(p, "model file not found for its checksum")
        out[str(p)] = file_sha256(p)
    return out


def geometry_features(params_local: np.ndarray, pdm: PDM) -> np.ndarray:
    """OpenFace's geometry descriptor per frame: ``princ_comp @ p`` (the 3-D landmark offsets
    from the mean shape) followed by ``p`` itself.  ``params_local``: [frames, modes] PDM
    parameters (OpenFace sets them to 0 on frames it did not track).  Returns [frames, 3n + modes]."""
    p = np.asarray(params_local, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != pdm.princ_comp.shape[1]:
        raise FacevoxError(f"PDM parameters must be [frames, {pdm.princ_comp.shape[1]}], got {p.shape}")
    return np.hstack([p @ pdm.princ_comp.T, p])


#: Feature columns processed at once by :func:`running_median` and :func:`video_scores` (bounds
#: their memory: a few [frames, CHUNK] float64 arrays; the result does not depend on it).
CHUNK = 128


def _check_features(features, success, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The features as an array of their own float dtype (float32 stays float32: never a float64
    copy of the whole matrix) and success as bool; the finiteness check goes column-block-wise."""
    x = np.asarray(features)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    ok = np.asarray(success, dtype=bool)
    if x.ndim != 2 or ok.shape != (x.shape[0],):
        raise FacevoxError(f"features must be [frames, features] and success [frames]; got {x.shape} and {ok.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise FacevoxError(f"the AU models take {n_features} features (HOG then geometry, as OpenFace orders "
                           f"them); got {x.shape[1]}")
    bad = np.zeros(x.shape[0], dtype=bool)
    for c0 in range(0, x.shape[1], CHUNK):
        bad |= ~np.isfinite(x[:, c0:c0 + CHUNK]).all(axis=1)
    if bad.any():
        raise FacevoxError(f"features of frame {int(np.flatnonzero(bad)[0])} are not finite (OpenFace feeds an "
                           "untracked frame's HOG of a black face and zero geometry, never NaN)")
    return x, ok


def _check_chunk(chunk) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise FacevoxError(f"chunk (feature columns at once) must be a positive integer, got {chunk!r}")
    return int(chunk)


def _median_block(xb: np.ndarray, ok: np.ndarray, first: int, n_hog: int) -> np.ndarray:
    """The running median (:func:`running_median`) of the feature columns ``first ..
    first + k`` held in ``xb`` ([frames, k] float64) at the odd frames only: [ceil(frames / 2), k]
    (frame t uses row t // 2).  Each column's median depends on that column alone."""
    frames, width = xb.shape
    is_hog = np.arange(first, first + width) < n_hog
    bins = np.where(is_hog, HOG_HISTOGRAM[0], GEOM_HISTOGRAM[0]).astype(np.float64)
    lo = np.where(is_hog, HOG_HISTOGRAM[1], GEOM_HISTOGRAM[1]).astype(np.float64)
    length = np.where(is_hog, HOG_HISTOGRAM[2] - HOG_HISTOGRAM[1], GEOM_HISTOGRAM[2] - GEOM_HISTOGRAM[1])
    step = length / bins
    odd = np.arange(frames) % 2 == 0
    update = odd & ok
    count = np.cumsum(update)
    binned = np.clip((xb[update] - lo) * bins / length, 0, bins - 1).astype(np.int64).astype(np.float64)
    order = pd.DataFrame(binned).expanding().quantile(0.5, interpolation="lower").to_numpy()
    del binned
    n_odd = count[odd]
    med_odd = np.empty((n_odd.size, width))
    med_odd[n_odd == 0] = lo + 0.0 * step + 0.5 * length / bins
    one = n_odd == 1
    med_odd[one] = xb[odd][one]
    many = n_odd >= 2
    med_odd[many] = lo + order[n_odd[many] - 1] * step + 0.5 * length / bins
    med_odd[:, is_hog] = np.maximum(med_odd[:, is_hog], 0.0)
    return med_odd


def running_median(features, success, n_hog: int = HOG_FEATURES, chunk: int = CHUNK) -> np.ndarray:
    """The person's running median of the features, as OpenFace's ``UpdateRunningMedian`` keeps
    it frame by frame (``FaceAnalyser::AddNextFrame``, one head-orientation view):

    * only on odd frames (1st, 3rd, ...; counting every frame) is anything done; even frames
      keep the previous median;
    * a tracked (``success``) odd frame adds its features to per-feature histograms: the first
      ``n_hog`` columns (HOG) in 1000 bins over [-0.005, 1], the rest (geometry) in 10000 bins
      over [-60, 60]; the bin is ``floor((x - min) * bins / (max - min))`` capped to the range;
    * the median is then the centre of the bin holding the ``(n + 1) // 2``-th smallest of the
      ``n`` histogrammed values (the lower median); with n == 1 it is the *current* frame's
      features themselves (even if that frame was not tracked: OpenFace's quirk), with n == 0
      the centre of bin 0;
    * negative HOG medians become 0.

    ``features``: [frames, features]; ``success``: [frames] bool; ``chunk``: columns computed at
    once (memory only).  Returns the median used at each frame, [frames, features] float64 (a
    large array for a long video: :func:`video_scores` never builds it).  The order statistic
    is pandas' expanding lower quantile."""
    x, ok = _check_features(features, success)
    chunk = _check_chunk(chunk)
    frames, width = x.shape
    if not 0 <= n_hog <= width:
        raise FacevoxError(f"n_hog {n_hog} outside 0..{width} features")
    out = np.empty((frames, width))
    rows = np.arange(frames) // 2
    for c0 in range(0, width, chunk):
        out[:, c0:c0 + chunk] = _median_block(x[:, c0:c0 + chunk].astype(np.float64), ok, c0, n_hog)[rows]
    return out


def model_scores(models: AUModels, features, median: np.ndarray | None = None) -> np.ndarray:
    """Raw scores [frames, models] of every model: ``(x - means) @ w + bias``, the dynamic ones
    with ``x - means - median`` (``median``: [frames, features] or [features]; required when a
    model is dynamic).  Intensities are not clamped here."""
    x = np.asarray(features, dtype=np.float64)
    means = np.stack([m.means for m in models.models], axis=1)
    w = np.stack([m.weights for m in models.models], axis=1)
    bias = np.array([m.bias for m in models.models])
    dynamic = np.array([m.dynamic for m in models.models])
    scores = x @ w - (means * w).sum(axis=0) + bias
    if dynamic.any():
        if median is None:
            raise FacevoxError("dynamic OpenFace AU models need the person's running median of the features")
        shift = np.asarray(median, dtype=np.float64) @ w[:, dynamic]
        scores[:, dynamic] -= shift if shift.ndim == 2 else shift[None, :]
    return scores


def calibration_offsets(models: AUModels, scores: np.ndarray, success) -> np.ndarray:
    """Per model, the amount OpenFace shifts a dynamic regressor's predictions down by
    (``ExtractAllPredictionsOfflineReg``): the tracked frames' scores sorted, the one at index
    ``int(n * cutoff)`` (capped at n - 1).  0 for static models, presence models, a cutoff of
    -1, or no tracked frame."""
    ok = np.asarray(success, dtype=bool)
    out = np.zeros(len(models.models))
    for j, m in enumerate(models.models):
        good = np.sort(scores[ok, j])
        if m.kind == "intensity" and m.dynamic and m.cutoff != -1 and good.size:
            out[j] = good[min(int(good.size * m.cutoff), good.size - 1)]
    return out


def video_scores(models: AUModels, features, success, dynamic: bool = True, n_hog: int = HOG_FEATURES,
                 max_init_frames: int = MAX_INIT_FRAMES, chunk: int = CHUNK) -> np.ndarray:
    """Raw scores [frames, models] of a whole video, as :func:`model_scores` with the running
    median (:func:`running_median`) gives them, and with ``dynamic`` the first
    ``max_init_frames`` tracked frames scored again with the final median - computed ``chunk``
    feature columns at a time so that memory stays at a few [frames, chunk] arrays plus
    [frames, models]: a score is ``x @ w - means @ w + bias - median @ w``, and a feature's
    median depends on its own column only, so only ``median @ w`` of the dynamic models is
    accumulated block by block (never the [frames, features] median).  ``features`` keeps its
    dtype (float32: no float64 copy).  Not clamped or calibrated."""
    x, ok = _check_features(features, success, models.n_features)
    chunk = _check_chunk(chunk)
    frames, width = x.shape
    dyn = np.array([m.dynamic for m in models.models])
    if dyn.any() and not 0 <= n_hog <= width:
        raise FacevoxError(f"n_hog {n_hog} outside 0..{width} features")
    w = np.stack([m.weights for m in models.models], axis=1)
    means_w = (np.stack([m.means for m in models.models], axis=1) * w).sum(axis=0)
    bias = np.array([m.bias for m in models.models])
    n_odd = (frames + 1) // 2
    xw = np.zeros((frames, w.shape[1]))
    shift_odd = np.zeros((n_odd, int(dyn.sum())))   # median @ w of the dynamic models, odd frames
    final_shift = np.zeros(int(dyn.sum()))           # the same with the video's final median
    for c0 in range(0, width, chunk):
        xb = x[:, c0:c0 + chunk].astype(np.float64)
        wb = w[c0:c0 + chunk]
        xw += xb @ wb
        if dyn.any() and frames:
            med_odd = _median_block(xb, ok, c0, n_hog)
            shift_odd += med_odd @ wb[:, dyn]
            final_shift += med_odd[-1] @ wb[:, dyn]
            del med_odd
        del xb
    scores = xw - means_w + bias
    if dyn.any():
        scores[:, dyn] -= shift_odd[np.arange(frames) // 2]
        if dynamic and ok.any():
            first = np.flatnonzero(ok)[:max_init_frames]
            scores[np.ix_(first, dyn)] = xw[np.ix_(first, dyn)] - means_w[dyn] + bias[dyn] - final_shift
    return scores


def smooth_intensity(values: np.ndarray) -> np.ndarray:
    """OpenFace's 3-frame moving average of intensities [frames, aus] (first and last frame
    unchanged)."""
    v = np.asarray(values, dtype=np.float64)
    out = v.copy()
    if v.shape[0] >= 3:
        out[1:-1] = (v[:-2] + v[1:-1] + v[2:]) / 3
    return out


def smooth_presence(values: np.ndarray) -> np.ndarray:
    """OpenFace's 7-frame vote on presence [frames, aus]: frames 3 .. n-4 become 1 where the
    mean of the 7 frames around them is >= 0.5, else 0; the 3 frames at each end are unchanged."""
    v = np.asarray(values, dtype=np.float64)
    out = v.copy()
    if v.shape[0] >= 7:
        windows = np.lib.stride_tricks.sliding_window_view(v, 7, axis=0)
        out[3:-3] = (windows.sum(axis=-1) / 7 >= 0.5).astype(np.float64)
    return out


def predict_aus(models: AUModels, features, success, dynamic: bool = True, n_hog: int = HOG_FEATURES,
                max_init_frames: int = MAX_INIT_FRAMES, chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """AUxx_r and AUxx_c per frame as OpenFace's FeatureExtraction writes them for a video.

    ``features``: [frames, features], HOG then geometry (OpenFace's order; untracked frames as
    OpenFace feeds them); ``success``: [frames] bool, whether the face was tracked.  With
    ``dynamic`` (OpenFace's default; ``-au_static`` turns it off) the first ``max_init_frames``
    tracked frames are scored again with the final running median, and dynamic regressors are
    calibrated (:func:`calibration_offsets`); without it the dynamic models still subtract the
    running median as it stood at each frame.  Intensities are clamped to 0..5, untracked frames
    get 0, then :func:`smooth_intensity` / :func:`smooth_presence`.  The scores come from
    :func:`video_scores` (``chunk`` feature columns at a time: memory, not results; ``features``
    may be float32 and is never copied whole).  Returns ``{"AU01_r": ...}``
    for the intensity models then ``{"AU01_c": ...}`` for the presence models, each in AU order."""
    ok = np.asarray(success, dtype=bool)
    scores = video_scores(models, features, ok, dynamic, n_hog, max_init_frames, chunk)
    offsets = calibration_offsets(models, scores, ok) if dynamic else np.zeros(scores.shape[1])
    reg = np.array([m.kind == "intensity" for m in models.models])
    values = np.where(reg, np.clip(scores - offsets, 0.0, 5.0), 0.0)
    pos = np.array([m.pos_class if m.pos_class is not None else 0.0 for m in models.models])
    neg = np.array([m.neg_class if m.neg_class is not None else 0.0 for m in models.models])
    values = np.where(reg, values, np.where(scores > 0, pos, neg))
    values[~ok] = 0.0
    values[:, reg] = smooth_intensity(values[:, reg])
    values[:, ~reg] = smooth_presence(values[:, ~reg])
    out = {}
    for kind, suffix in (("intensity", "_r"), ("presence", "_c")):
        for j in sorted((j for j, m in enumerate(models.models) if m.kind == kind),
                        key=lambda j: models.models[j].au):
            out[models.models[j].au + suffix] = values[:, j]
    return out
