"""Learned deletion masks (Companion B; Vijayarangan et al., EMBC 2020, after Fong & Vedaldi 2017).

A mask ``m`` in [0, 1], one value per lead and 40 ms bin of the record's real
(unpadded) signal, is upsampled linearly to the samples, and the model is shown
the perturbed input ``x * m + blur(x) * (1 - m)``: where ``m`` is 0 the lead
is replaced by its low-passed copy, which keeps the baseline and removes the
waves. The mask is learned by minimising (METHODS.md, "Companion papers", B)

    sigmoid(logit_c(x * m + blur(x) * (1 - m))) + l1 * mean|1 - m| + tv * TV(m),

with Adam on ``m`` (projected back to [0, 1] after each step); the saliency
is ``1 - m``. Zeros are not used as the deleted value: the book's inputs are
zero-padded at the front, so a zero stretch looks normal to the model.

No maintained 1-D library learns such masks, so the optimiser is written here
in torch; the blur is :func:`scipy.signal.sosfiltfilt` of a Butterworth low-pass.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt
from torch import nn
from torch.nn import functional as F

from ecgrepro.beats import valid_lengths

#: Mask resolution, ms (one mask value per lead and bin).
BIN_MS = 40.0


def lowpass(
    x: np.ndarray,
    fs_hz: float,
    cutoff_hz: float = 2.0,
    n_valid: np.ndarray | None = None,
    order: int = 4,
) -> np.ndarray:
    """The blurred copy of each record: a zero-phase Butterworth low-pass of its valid samples.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, n_leads, n_samples), float32, mV
    fs_hz : float
        Sampling frequency, Hz.
    cutoff_hz : float
        Cut-off frequency, Hz; must be below ``fs_hz / 2``. 2 Hz keeps the
        baseline and removes the P, QRS and T waves.
    n_valid : numpy.ndarray of int, shape (n,), optional
        Valid samples per record (the last ``n_valid``; the rest is front
        padding, left at 0). None: all.
    order : int
        Filter order (doubled by the forward-backward pass).

    Returns
    -------
    numpy.ndarray, same shape as ``x``, float32

    Raises
    ------
    ValueError
        If ``cutoff_hz`` is not in (0, fs_hz / 2), or ``x`` is not 3-D.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (n, n_leads, n_samples), got {x.shape}")
    if not 0 < cutoff_hz < fs_hz / 2:
        raise ValueError(f"cutoff_hz must be in (0, {fs_hz / 2:g}) Hz, got {cutoff_hz}")
    sos = butter(order, cutoff_hz, fs=fs_hz, output="sos")
    n_samples = x.shape[-1]
    lengths = valid_lengths(n_valid, (len(x),), n_samples)
    out = np.zeros_like(x)
    for i, nv in enumerate(lengths):
        seg = x[i, :, n_samples - nv :]
        out[i, :, n_samples - nv :] = sosfiltfilt(sos, seg, axis=-1, padlen=min(nv - 1, 60))
    return out


def bin_grid(n_samples: int, fs_hz: float, bin_ms: float = BIN_MS) -> tuple[int, int]:
    """Samples per mask bin and the number of bins covering ``n_samples`` (aligned to the end).

    Returns
    -------
    bin_len : int
        ``max(1, round(bin_ms * fs_hz / 1000))`` samples.
    n_bins : int
        ``ceil(n_samples / bin_len)``; the first bin may reach before the input.
    """
    bin_len = max(1, int(round(bin_ms * fs_hz / 1000)))
    return bin_len, -(-n_samples // bin_len)


def valid_bins(n_valid: np.ndarray, n_samples: int, bin_len: int) -> np.ndarray:
    """Which mask bins overlap each record's signal (bins are aligned to the end of the input).

    Parameters
    ----------
    n_valid : numpy.ndarray of int, shape (n,)
        Valid samples per record (the last ``n_valid`` of the input).
    n_samples, bin_len : int

    Returns
    -------
    numpy.ndarray of bool, shape (n, n_bins)
    """
    n_bins = -(-n_samples // bin_len)
    ends = n_samples - (n_bins - 1 - np.arange(n_bins)) * bin_len  # exclusive end of each bin
    return ends[None, :] > (n_samples - np.asarray(n_valid, dtype=int))[:, None]


def upsample(m: torch.Tensor, n_samples: int, bin_len: int) -> torch.Tensor:
    """Mask bins to samples: linear between bin centres, aligned to the end of the input.

    m : (n, n_leads, n_bins) -> (n, n_leads, n_samples).
    """
    full = F.interpolate(m, size=m.shape[-1] * bin_len, mode="linear", align_corners=False)
    return full[..., -n_samples:]


def mask_penalties(
    m: torch.Tensor, valid: torch.Tensor, tv_beta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The L1 and total-variation terms of the objective, per record, over its valid bins only.

    Parameters
    ----------
    m : torch.Tensor, shape (n, n_leads, n_bins), in [0, 1]
    valid : torch.Tensor of bool, shape (n, n_bins)
    tv_beta : float
        Exponent of the TV term (Fong & Vedaldi's beta; 1: plain absolute differences).

    Returns
    -------
    l1 : torch.Tensor, shape (n,)
        Mean of ``|1 - m|`` over the leads and valid bins: the deleted share.
    tv : torch.Tensor, shape (n,)
        Mean of ``|m[j + 1] - m[j]| ** tv_beta`` over the leads and the pairs
        of adjacent valid bins (0 for a record with one valid bin).
    """
    v = valid.to(m.dtype)[:, None, :]  # (n, 1, n_bins)
    n_leads = m.shape[1]
    l1 = ((1 - m).abs() * v).sum((1, 2)) / (v.sum((1, 2)) * n_leads).clamp_min(1)
    pair = v[..., 1:] * v[..., :-1]
    diff = (m[..., 1:] - m[..., :-1]).abs() ** tv_beta
    tv = (diff * pair).sum((1, 2)) / (pair.sum((1, 2)) * n_leads).clamp_min(1)
    return l1, tv


def deletion_mask(
    model: nn.Module,
    x: np.ndarray,
    target: int | np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray | None = None,
    l1: float | np.ndarray = 1.0,
    tv: float | np.ndarray = 0.5,
    n_iter: int = 300,
    lr: float = 0.1,
    blur_hz: float = 2.0,
    bin_ms: float = BIN_MS,
    tv_beta: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Learn each record's deletion mask for one class (Companion B; Fong & Vedaldi 2017, Eq. 3).

    Each record's mask is optimised on its own objective (the batch's loss is
    the sum of the records' losses, and Adam's updates are per element), so a
    record's mask does not depend on its batch. ``l1`` and ``tv`` may differ
    per record, which runs a sweep of settings as one batch of copies.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (batch, 12, n_samples) float32 mV to logits; in eval mode. Its
        parameters are not changed (their gradients are switched off meanwhile).
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
        Class (logit index) whose probability the mask lowers.
    fs_hz : float
        Sampling frequency, Hz.
    n_valid : numpy.ndarray of int, shape (n,), optional
        Valid samples per record; bins wholly in the front padding are neither
        optimised nor counted. None: all.
    l1, tv : float or numpy.ndarray, shape (n,)
        Weights of the deleted share and of the total variation.
    n_iter : int
        Adam iterations (Companion B: a few hundred).
    lr : float
        Adam learning rate on the mask values.
    blur_hz : float
        Cut-off of the low-passed copy that replaces deleted signal (:func:`lowpass`).
    bin_ms : float
        Mask resolution, ms.
    tv_beta : float
        Exponent of the TV term (:func:`mask_penalties`).
    batch_size : int
        Records optimised together.
    seed : int
        Seeds the small jitter of the initial mask (uniform in [0.95, 1]), per
        record (``numpy.random.default_rng([seed, index])``).

    Returns
    -------
    dict of str -> numpy.ndarray
        ``saliency`` (n, 12, n_samples) float32: ``1 - m`` upsampled, 0 in the
        padding; ``mask_bins`` (n, 12, n_bins) float32; ``valid_bins`` (n,
        n_bins) bool; ``probability_start`` (n,): the class probability on
        ``x``; ``probability_blur`` (n,): on the fully blurred input;
        ``probability`` (n,): on the masked input at the end; ``deleted`` (n,):
        the deleted share (mean of ``1 - m`` over the leads and valid bins);
        ``tv`` (n,); ``loss`` (n_iter,): the mean objective per iteration;
        ``seconds_per_record``.

    Raises
    ------
    ValueError
        If ``x`` is not (n, 12, n_samples), holds NaN, or a parameter is out of range.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (n, 12, n_samples), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x holds NaN or infinite values")
    if n_iter < 1 or lr <= 0:
        raise ValueError(f"n_iter must be >= 1 and lr > 0, got {n_iter} and {lr}")
    n, n_leads, n_samples = x.shape
    targets = np.broadcast_to(np.asarray(target, dtype=int), (n,))
    l1s = np.broadcast_to(np.asarray(l1, dtype=np.float32), (n,))
    tvs = np.broadcast_to(np.asarray(tv, dtype=np.float32), (n,))
    lengths = valid_lengths(n_valid, (n,), n_samples)
    bin_len, n_bins = bin_grid(n_samples, fs_hz, bin_ms)
    valid = valid_bins(lengths, n_samples, bin_len)
    blurred = lowpass(x, fs_hz, blur_hz, lengths)
    device = next(model.parameters()).device
    out = {
        "saliency": np.zeros_like(x),
        "mask_bins": np.ones((n, n_leads, n_bins), np.float32),
        "valid_bins": valid,
        "probability_start": np.zeros(n),
        "probability_blur": np.zeros(n),
        "probability": np.zeros(n),
        "deleted": np.zeros(n),
        "tv": np.zeros(n),
        "loss": np.zeros(n_iter),
    }
    flags = [p.requires_grad for p in model.parameters()]
    t0 = time.perf_counter()
    # cuDNN refuses an RNN's backward in eval mode: on a GPU an LSTM runs on torch's own kernels
    rnn = any(isinstance(mod, nn.RNNBase) for mod in model.modules())
    no_cudnn = torch.backends.cudnn.flags(enabled=False) if rnn else contextlib.nullcontext()
    with no_cudnn:
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            for start in range(0, n, batch_size):
                sl = slice(start, min(start + batch_size, n))
                xb = torch.from_numpy(x[sl]).to(device)
                bb = torch.from_numpy(blurred[sl]).to(device)
                vb = torch.from_numpy(valid[sl]).to(device)
                tb = torch.from_numpy(targets[sl].copy()).to(device)
                w1 = torch.from_numpy(l1s[sl].copy()).to(device)
                w2 = torch.from_numpy(tvs[sl].copy()).to(device)
                # x and its blurred copy are both 0 in the padding: the mask changes nothing there
                signal = torch.from_numpy(
                    np.arange(n_samples)[None, :] >= (n_samples - lengths[sl])[:, None]
                ).to(device)[:, None, :]

                def prob(inp: torch.Tensor, tb: torch.Tensor = tb) -> torch.Tensor:
                    return torch.sigmoid(model(inp).gather(1, tb[:, None])[:, 0])

                with torch.no_grad():
                    out["probability_start"][sl] = prob(xb).cpu().numpy()
                    out["probability_blur"][sl] = prob(bb).cpu().numpy()
                # seeded per record, so that a record's mask does not depend on its batch
                init = (
                    np.stack(
                        [
                            np.random.default_rng([seed, k]).uniform(0.95, 1.0, (n_leads, n_bins))
                            for k in range(start, sl.stop)
                        ]
                    )
                )
                m = torch.from_numpy(init.astype(np.float32)).to(device).requires_grad_(True)
                opt = torch.optim.Adam([m], lr=lr)
                for it in range(n_iter):
                    opt.zero_grad()
                    mm = upsample(m, n_samples, bin_len)
                    p = prob(xb * mm + bb * (1 - mm))
                    pen1, pen2 = mask_penalties(m, vb, tv_beta)
                    loss = p + w1 * pen1 + w2 * pen2
                    loss.sum().backward()
                    opt.step()
                    with torch.no_grad():
                        m.clamp_(0, 1)
                        m.masked_fill_(~vb[:, None, :], 1.0)
                    out["loss"][it] += float(loss.detach().sum()) / n
                with torch.no_grad():
                    mm = upsample(m, n_samples, bin_len)
                    out["probability"][sl] = prob(xb * mm + bb * (1 - mm)).cpu().numpy()
                    pen1, pen2 = mask_penalties(m, vb, tv_beta)
                    out["deleted"][sl], out["tv"][sl] = pen1.cpu().numpy(), pen2.cpu().numpy()
                    out["mask_bins"][sl] = m.cpu().numpy()
                    out["saliency"][sl] = ((1 - mm) * signal).cpu().numpy()
        finally:
            for p, flag in zip(model.parameters(), flags, strict=True):
                p.requires_grad_(flag)
    out["seconds_per_record"] = (time.perf_counter() - t0) / max(n, 1)
    return out


def top_share_jaccard(
    a: np.ndarray, b: np.ndarray, n_valid: int | None = None, top: float = 5.0
) -> float:
    """Jaccard overlap of the top ``top`` % samples of two maps over a record's valid samples.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n_samples,) or (n_leads, n_samples)
        Maps of the same shape (a per-time map is compared with a per-lead one
        after taking the per-lead map's maximum over the leads).
    n_valid : int, optional
        Valid samples (the last ``n_valid``). None: all.
    top : float
        Percentage of the valid samples kept in each set (ties at the cut are
        all kept, except at the map's minimum: a map that is 0 on most samples
        keeps only its non-zero ones).

    Returns
    -------
    float
        |A & B| / |A | B|, NaN if either map is constant over the valid samples.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim == 2:
        a = a.max(0)
    if b.ndim == 2:
        b = b.max(0)
    start = 0 if n_valid is None else a.shape[-1] - int(n_valid)
    a, b = a[start:], b[start:]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    # a sample at the map's minimum is never "top" (a ReLU map is mostly 0: ties at 0 are not kept)
    sa = (a >= np.percentile(a, 100 - top)) & (a > a.min())
    sb = (b >= np.percentile(b, 100 - top)) & (b > b.min())
    return float((sa & sb).sum() / (sa | sb).sum())
