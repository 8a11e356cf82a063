"""Task ``fau``: the shallow FAU CNN on whole FAU-window sequences -> time-continuous affect.

Labels are aligned to the window centres after delay compensation
(facevox.dataset.labels); full-batch training, NaN labels (outside the annotation,
padding) masked from the loss (windows without any label are ``left_out``: counted and
named in the metrics JSON).  Inputs: ``contract.FAU_FEATURE_COLUMNS`` (the 36 functionals
and ``turns``, the paper's 37).  Windows without a face (NaN functionals) enter as 0,
counted as ``windows_no_face`` per split; windows without audio (NaN ``turns``: no audio
stream, a silent track, past the audio's end) enter as 0 too - the model has no other
value for a missing input - counted as ``windows_no_audio`` per split, so a study whose
turns are missing says so.  CCC per dimension over the concatenated windows of a split,
as AVEC computes it.

Tests: tests/test_train.py, tests/test_tasks.py
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from facevox.contract import FAU_FEATURE_COLUMNS, FAU_STAT_COLUMNS, TURNS_COLUMN
from facevox.errors import ExcludedInput, FacevoxError
from facevox.io import read_table
from facevox.training.metrics import ccc
from facevox.training.tasks.base import CONTINUOUS_SCHEMA, left_out_record, sheet_videos

log = logging.getLogger(__name__)


def window_inputs(table: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """A video's [T, F] float32 model input: the FAU window table's ``columns``
    (contract.FAU_FEATURE_COLUMNS), NaN (no face, no audio) as 0."""
    return np.nan_to_num(table[list(columns or FAU_FEATURE_COLUMNS)].to_numpy(np.float32))


class FauContinuous:
    """Whole FAU-window sequences -> time-continuous affect (see the module docstring)."""

    unit = "videos"

    kind = "continuous"
    prediction_schema = CONTINUOUS_SCHEMA

    def __init__(self, sheet, folder, settings: dict):
        from facevox.dataset.labels import label_file, window_labels

        self.settings = settings
        self.affect = settings["affect"]
        self.dimensions = list(self.affect["dimensions"])
        self.root = Path(folder)
        samples, videos = sheet_videos(sheet, folder, ".parquet", "split", "FAU-window")
        self.videos, self.x, self.y, self.centres, self.no_face, self.no_audio = {}, {}, {}, {}, {}, {}
        self.excluded: dict[str, dict[str, int]] = {}  # split -> videos whose FAU windows are an excluded record
        for split, vids in videos.items():
            for vid in vids:
                try:  # a video the action_units stage could not read has no windows: left out, named
                    table, _ = read_table(self.root / f"{vid}.parquet")
                except ExcludedInput as exc:
                    log.warning("%s: left out of split %s: %s", vid, split, exc)
                    self.excluded.setdefault(split, {})[vid] = 1
                    continue
                path = label_file(vid, samples.loc[vid, "affect_labels"], self.affect["labels_dir"])
                # windows without a face, without audio: values 0, counted
                self.no_face[vid] = int(table[FAU_STAT_COLUMNS].isna().any(axis=1).sum())
                self.no_audio[vid] = int(table[TURNS_COLUMN].isna().sum())
                self.x[vid] = window_inputs(table)
                aligned = window_labels(path, table, self.dimensions, self.affect["delays_s"])
                self.y[vid] = aligned[self.dimensions].to_numpy(np.float32)
                self.centres[vid] = table["centre_s"].to_numpy(np.float64)
                self.videos.setdefault(split, []).append(vid)
        self.data = self.videos
        self.key_text = repr({v: (float(np.nansum(self.y[v])), self.x[v].shape) for v in self.x})

    def left_out(self) -> list[dict]:
        """Per split, the videos whose FAU windows are an excluded record (the action_units stage
        could not read them), then the windows with no label in any dimension (outside the
        annotation): masked from the loss and from the CCC."""
        out = [left_out_record(split, "excluded_input", "videos", per_video)
               for split, per_video in self.excluded.items()]
        for split, vids in self.videos.items():
            per_video = {v: int(np.isnan(self.y[v]).all(1).sum()) for v in vids}
            per_video = {v: n for v, n in per_video.items() if n}
            if per_video:
                out.append(left_out_record(split, "no_label", "windows", per_video))
        return out

    def model_kwargs(self, family: str) -> dict:
        return {"n_features": len(FAU_FEATURE_COLUMNS), "n_outputs": len(self.dimensions)}

    def n_train(self) -> int:
        return len(self.videos.get("train", []))

    def splits(self) -> list[str]:
        return [s for s in ("dev", "test") if self.videos.get(s)]

    def has_dev(self) -> bool:
        return bool(self.videos.get("dev"))

    def describe(self) -> dict:
        return {"dimensions": self.dimensions, "delays_s": self.affect["delays_s"],
                "feature_names": FAU_FEATURE_COLUMNS}

    def preprocessing(self, cfg: dict) -> dict:
        """The window columns the model reads, its output dimensions, the label delays it was
        trained with, and the fau_windows stage's parameters of the first train video's table
        (its provenance; {} when it has none)."""
        from facevox.io import read_provenance

        first = self.videos["train"][0] if self.videos.get("train") else None
        params = read_provenance(self.root / f"{first}.parquet").get("params") if first else None
        return {"kind": "fau", "columns": list(FAU_FEATURE_COLUMNS), "dimensions": self.dimensions,
                "delays_s": self.affect["delays_s"], "fau_windows_params": params or {}}

    def check(self, payload: dict) -> None:
        if payload.get("dimensions") != self.dimensions:
            raise FacevoxError(f"trained on dimensions {payload.get('dimensions')}, configured {self.dimensions}")

    def _padded(self, vids: list[str]):
        import torch

        longest = max(len(self.x[v]) for v in vids)
        x = np.zeros((len(vids), longest, self.x[vids[0]].shape[1]), np.float32)
        y = np.full((len(vids), longest, len(self.dimensions)), np.nan, np.float32)
        for i, v in enumerate(vids):
            x[i, :len(self.x[v])], y[i, :len(self.y[v])] = self.x[v], self.y[v]
        return torch.from_numpy(x), torch.from_numpy(y)

    def batches(self, rng: np.random.Generator, batch_size: int):
        vids = self.videos["train"]
        order = [vids[i] for i in rng.permutation(len(vids))]
        size = batch_size or len(order)
        for start in range(0, len(order), size):
            x, y = self._padded(order[start:start + size])
            yield (x,), y

    def loss(self, cfg: dict, device):
        import torch

        from facevox.models.shallow_fau import masked_ccc_loss

        if cfg["loss"] == "ccc":
            return lambda output, target: masked_ccc_loss(output.float(), target)

        def mse(output, target):
            keep = ~torch.isnan(target)
            return ((output.float() - torch.nan_to_num(target)) ** 2)[keep].mean()
        return mse

    @staticmethod
    def postprocess(output):
        return output.float()

    def score(self, result: dict, settings: dict) -> float:
        value = result.get("ccc_mean", math.nan)
        return -math.inf if math.isnan(value) else float(value)

    def evaluate_split(self, predict_fn, split: str, cfg: dict, batch_size: int):
        rows, preds, trues = [], {d: [] for d in self.dimensions}, {d: [] for d in self.dimensions}
        for vid in self.videos.get(split, []):
            out = np.asarray(predict_fn((self.x[vid][None],)))[0]  # [T, D]
            for k, dim in enumerate(self.dimensions):
                preds[dim].append(out[:, k])
                trues[dim].append(self.y[vid][:, k])
                rows.append(pd.DataFrame({"split": split, "video_id": vid, "dimension": dim,
                                          "centre_s": self.centres[vid], "true": self.y[vid][:, k].astype(np.float64),
                                          "pred": out[:, k].astype(np.float64)}))
        values = {d: ccc(np.concatenate(trues[d]), np.concatenate(preds[d])) if trues[d] else math.nan
                  for d in self.dimensions}
        result = {"n": len(self.videos.get(split, [])), "ccc": values,
                  "ccc_mean": float(np.mean(list(values.values()))) if values else math.nan, "unpredicted": [],
                  "windows_no_face": sum(self.no_face[v] for v in self.videos.get(split, [])),
                  "windows_no_audio": sum(self.no_audio[v] for v in self.videos.get(split, []))}
        table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=CONTINUOUS_SCHEMA.names)
        return result, table

    def explain(self, model) -> dict:
        """The trained filter per dimension (features x time, the paper's Figure) and eq. 5
        attributions at three evenly spaced windows of the first test (else dev) video;
        empty for model A (no single filter)."""
        from facevox.models.shallow_fau import feature_attributions, filter_lags, filter_weights

        try:
            lags = filter_lags(model)
        except FacevoxError:
            return {}
        names = list(getattr(model, "input_names", FAU_FEATURE_COLUMNS))
        out = {"features": names, "lags": lags.tolist(), "filters": {}, "attributions": {}}
        split = "test" if self.videos.get("test") else "dev"
        vid = (self.videos.get(split) or [None])[0]
        for k, dim in enumerate(self.dimensions):
            out["filters"][dim] = filter_weights(model, k).round(6).tolist()
            if vid is not None:
                steps = np.linspace(0, len(self.x[vid]) - 1, 3).round().astype(int)
                values = feature_attributions(model, self.x[vid], steps.tolist(), k)
                out["attributions"][dim] = {"video_id": vid, "steps": steps.tolist(),
                                            "centre_s": self.centres[vid][steps].tolist(),
                                            "values": np.round(values, 6).tolist()}
        return out
