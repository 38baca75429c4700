"""The published training augmentation (METHODS.md, "Input and training"): per record, with
probability :data:`AUGMENT_PROBABILITY`, each lead is scaled and offset by random amounts; the
random draws (:func:`draw_augmentation`) are kept apart from their application
(:func:`apply_augmentation`) so that the same draws can be applied wherever the batch lives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Probability that each augmentation is applied to a record: P(N(0, 1) > 0.5).
AUGMENT_PROBABILITY = 0.3085375387259869


@dataclass
class AugmentDraw:
    """The random draws of :func:`augment` for a batch, apart from the signals they apply to.

    Drawing and applying are separate so that the processes of a distributed
    training can each draw the whole global batch's augmentation (the same
    generator calls as one process) and apply only the rows of their shard.

    Attributes
    ----------
    scale : numpy.ndarray, shape (batch,), bool
        Records whose leads are scaled.
    factors : numpy.ndarray, shape (batch, 12, 1), float32
        Per-lead factor, N(1, 0.1); 1 where ``scale`` is False.
    shift : numpy.ndarray, shape (batch,), bool
        Records whose leads are shifted.
    offsets : numpy.ndarray, shape (batch, 12, 1), float32, mV
        Per-lead offset in {-20, ..., 19} / 1000 mV; 0 where ``shift`` is False.
    """

    scale: np.ndarray
    factors: np.ndarray
    shift: np.ndarray
    offsets: np.ndarray

    def take(self, rows: np.ndarray) -> AugmentDraw:
        """The draws of records ``rows`` (an index array into the batch)."""
        return AugmentDraw(
            self.scale[rows], self.factors[rows], self.shift[rows], self.offsets[rows]
        )


def draw_augmentation(rng: np.random.Generator, batch: int, leads: int = 12) -> AugmentDraw:
    """Draw the published augmentation of ``batch`` records (see :func:`augment`).

    The generator is called exactly as the published recipe does, in this order:
    ``standard_normal(batch)`` (scale?), the factors of the scaled records,
    ``standard_normal(batch)`` (shift?), the offsets of the shifted records.

    Parameters
    ----------
    rng : numpy.random.Generator
    batch : int
        Records to draw for.
    leads : int
        Leads per record (12).

    Returns
    -------
    AugmentDraw
    """
    scale = rng.standard_normal(batch) > 0.5
    factors = np.ones((batch, leads, 1), np.float32)
    if scale.any():
        factors[scale] = rng.normal(1.0, 0.1, size=(int(scale.sum()), leads, 1)).astype(np.float32)
    shift = rng.standard_normal(batch) > 0.5
    offsets = np.zeros((batch, leads, 1), np.float32)
    if shift.any():
        offsets[shift] = (rng.integers(-20, 20, size=(int(shift.sum()), leads, 1)) / 1000).astype(
            np.float32
        )
    return AugmentDraw(scale, factors, shift, offsets)


def apply_augmentation(
    x: np.ndarray, draw: AugmentDraw, n_valid: np.ndarray | None = None
) -> np.ndarray:
    """Apply drawn augmentation to a batch, in place: scale, then shift the signal only.

    Parameters
    ----------
    x : numpy.ndarray, shape (batch, 12, n_samples), float32, mV
        Modified in place.
    draw : AugmentDraw
        Of the same ``batch`` records.
    n_valid : numpy.ndarray, shape (batch,), int, optional
        Samples of each record that are signal (the rest, at the front, is
        padding, which stays 0). None: all ``n_samples``.

    Returns
    -------
    numpy.ndarray
        ``x``.
    """
    length = x.shape[-1]
    if draw.scale.any():
        x[draw.scale] *= draw.factors[draw.scale]
    shift = draw.shift
    if shift.any():
        offset = draw.offsets[shift]
        if n_valid is None:
            x[shift] += offset
        else:
            first = length - np.asarray(n_valid)[shift]  # first valid sample of each record
            signal = np.arange(length)[None, :] >= first[:, None]
            x[shift] += offset * signal[:, None, :]
    return x


def augment(
    x: np.ndarray, rng: np.random.Generator, n_valid: np.ndarray | None = None
) -> np.ndarray:
    """The published code's training augmentation, per record, on the signal only.

    With probability P(N(0,1) > 0.5) ~ 0.31 each: every lead scaled by its own
    factor from N(1, 0.1); every lead shifted by its own constant offset drawn
    uniformly from {-20, ..., 19} / 1000 mV. The published code augments the
    record as read, before it is zero-padded to the input length (METHODS.md,
    "Input and training"), so the padding stays exactly 0: here the offset is
    added to the last ``n_valid`` samples only (scaling leaves zeros at 0).
    :func:`draw_augmentation` then :func:`apply_augmentation`.

    Parameters
    ----------
    x : numpy.ndarray, shape (batch, 12, n_samples), float32, mV
        Modified in place.
    rng : numpy.random.Generator
    n_valid : numpy.ndarray, shape (batch,), int, optional
        Samples of each record that are signal (the rest, at the front, is
        padding). None: all ``n_samples``.

    Returns
    -------
    numpy.ndarray
        ``x``.
    """
    return apply_augmentation(x, draw_augmentation(rng, x.shape[0], x.shape[1]), n_valid)
