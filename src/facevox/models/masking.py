"""Variable-length batches (protocol ``whole``): what the sequence models use to ignore the
zero rows a batch is padded with.

A ``whole`` batch is ``visual [B, T_max, Cv]``, ``acoustic [B, T_max, Ca]`` and ``lengths
[B]`` (real rows per video, the rest zeros; facevox.training.tasks.whole). A model that
takes the mask gives the same output for a video whatever it is padded to: LSTMs run on
packed sequences (:func:`run_lstm`), means are over the real rows (:func:`masked_mean`),
attention never looks at padded keys (:func:`padding_mask`). ``lengths=None`` means every
row is real (slices).

Tests: tests/test_whole.py
"""
from __future__ import annotations

import torch
from torch import nn

from facevox.errors import FacevoxError


def check_lengths(model: str, lengths, batch: int, n_rows: int):
    """``lengths`` as a CPU int64 tensor [B] in 1..n_rows, or None."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths).to("cpu", torch.int64).reshape(-1)
    if len(lengths) != batch or (lengths < 1).any() or (lengths > n_rows).any():
        raise FacevoxError(f"{model}: lengths must be {batch} values in 1..{n_rows}, got {lengths.tolist()}")
    return lengths


def padding_mask(lengths, n_rows: int, device) -> torch.Tensor | None:
    """[B, n_rows] bool, True at padded rows (PyTorch's key_padding_mask convention)."""
    if lengths is None:
        return None
    return torch.arange(n_rows, device=device)[None, :] >= lengths.to(device)[:, None]


def masked_mean(x: torch.Tensor, lengths) -> torch.Tensor:
    """Mean over time of ``x [B, T, C]``, over each row's first ``lengths[b]`` steps."""
    if lengths is None:
        return x.mean(dim=1)
    keep = (~padding_mask(lengths, x.shape[1], x.device)).to(x.dtype)[..., None]
    return (x * keep).sum(dim=1) / lengths.to(x.device, x.dtype)[:, None]


def zero_padded(x: torch.Tensor, lengths) -> torch.Tensor:
    """``x [B, T, C]`` with the rows past each length set to zero."""
    if lengths is None:
        return x
    return x.masked_fill(padding_mask(lengths, x.shape[1], x.device)[..., None], 0)


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths) -> torch.Tensor:
    """A batch-first LSTM over ``x [B, T, C]``; with ``lengths``, on packed sequences (so the
    backward direction starts at each video's last real row), outputs zero past each length."""
    if lengths is None:
        return lstm(x)[0]
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
