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
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

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
    """A batch-first LSTM over ``x [B, T, C]``; with ``lengths``, each direction starts at the
    video's own first / last real row, outputs zero past each length.

    On CUDA the batch is packed (``pack_padded_sequence``: cuDNN runs packed sequences in its
    fused kernels).  Elsewhere PyTorch's fused kernel (oneDNN's RNN on the CPU) takes padded
    batches only and a packed one falls back to a loop of small per-step operations
    (pytorch/pytorch#149194; JAMFN's 6-layer BiLSTM on 32 x 600 rows of 136 values, forward +
    backward, 2 CPU threads: ~175 s packed, ~10-13 s unpacked), so there
    :func:`lstm_unpacked` computes the same values from padded tensors."""
    if lengths is None:
        return lstm(x)[0]
    return lstm_packed(lstm, x, lengths) if x.device.type == "cuda" else lstm_unpacked(lstm, x, lengths)


def lstm_packed(lstm: nn.LSTM, x: torch.Tensor, lengths) -> torch.Tensor:
    """``lstm`` over ``x [B, T, C]`` packed by ``lengths [B]``, padded back to T with zeros."""
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def lstm_unpacked(lstm: nn.LSTM, x: torch.Tensor, lengths) -> torch.Tensor:
    """What the packed ``lstm`` gives on ``x [B, T, C]`` with ``lengths [B]`` (to float
    rounding: tests/test_whole.py), from padded tensors only: one layer and direction at a
    time with the module's own weights (``torch.func.functional_call`` on a weightless
    one-layer LSTM).  The forward direction reads the padded batch as it is (rows past a
    length come after the real ones and cannot reach them); the backward direction reads
    each video's real rows reversed in place (padding left at the end) and its outputs are
    put back in time order.  Dropout between layers as ``nn.LSTM`` applies it."""
    if not lstm.batch_first or lstm.proj_size:
        raise ValueError("lstm_unpacked takes a batch_first LSTM without proj_size")
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    ends = lengths.to(x.device)[:, None]
    reverse = torch.where(steps < ends, ends - 1 - steps, steps)  # [B, T]: its own inverse

    def flip(t: torch.Tensor) -> torch.Tensor:  # each row's real part in reverse time order
        return t.gather(1, reverse[..., None].expand(-1, -1, t.shape[2]))

    directions = ("", "_reverse") if lstm.bidirectional else ("",)
    h = x
    for layer in range(lstm.num_layers):
        one = nn.LSTM(h.shape[2], lstm.hidden_size, bias=lstm.bias, batch_first=True, device="meta")
        outs = []
        for suffix in directions:
            weights = {f"{name}_l0": getattr(lstm, f"{name}_l{layer}{suffix}")
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if lstm.bias else 2]}
            if suffix:
                outs.append(flip(functional_call(one, weights, (flip(h),))[0]))
            else:
                outs.append(functional_call(one, weights, (h,))[0])
        h = zero_padded(torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0], lengths)
        if layer < lstm.num_layers - 1 and lstm.dropout:
            h = F.dropout(h, lstm.dropout, lstm.training)
    return h
