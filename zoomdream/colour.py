"""The colour lock: hold a frame's colours to a reference's (a photo or a source frame).

A feedback loop (zoom) or a carried dream (video) drifts in colour, frame after frame.
``colour_reference`` measures a target once (mean and covariance of its RGB pixels);
``colour_lock`` then moves each dreamed frame ``strength`` of the way toward it, with
the closed-form linear map between the two colour distributions. ``colour_stats``
(mean and per-channel std) is the lighter, per-channel variant of the same target.

Convention: images are (H, W, C) RGB, uint8 [0, 255] or float32 in the same units;
statistics are float64 in those units.
"""

from __future__ import annotations

import numpy as np

from zoomdream.errors import ZoomdreamError

__all__ = ["colour_stats", "colour_reference", "colour_lock"]

STD_FLOOR = 1e-3  # below this a channel is flat: there is no contrast to rescale, only shift
COV_FLOOR = 1e-2  # variance (in 0..255 units squared) added before matrix roots, so flat images stay finite
MAX_GAIN = 4.0  # cap on one call's contrast change, so a nearly flat channel's noise is not blown up


def colour_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation, in RGB.

    RGB rather than LAB because the feedback loop's drift is checked, and felt, per
    RGB channel; matching those moments directly keeps them stable.

    Convention: image (H, W, C) uint8 or float32 0..255; returns (mean (C,), std (C,))
    float64 in the image's units.
    """
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, np.shape(image)[-1])  # (h*w, c)
    return pixels.mean(axis=0), pixels.std(axis=0)


def colour_reference(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (3,) and 3x3 covariance of the RGB pixels: the target of a full colour lock.

    Matching the covariance, not only each channel's spread, also holds the channels'
    correlations, i.e. the photo's palette: per-channel locking alone lets a feedback loop
    drift from browns into red/green neon while every channel's mean and std stay put.

    Convention: image (H, W, 3) uint8 or float32 0..255; float64 results in those units.
    """
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)  # (h*w, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False)


def _sqrtm(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square root and inverse square root of a symmetric positive semi-definite 3x3 matrix."""
    w, v = np.linalg.eigh(c)
    w = np.maximum(w, COV_FLOOR)
    return (v * np.sqrt(w)) @ v.T, (v / np.sqrt(w)) @ v.T


def colour_lock(image: np.ndarray, ref_stats: tuple[np.ndarray, np.ndarray], strength: float = 1.0) -> np.ndarray:
    """Move the image's colour statistics toward ``ref_stats``.

    ``ref_stats`` is ``colour_reference(photo)`` (mean, 3x3 covariance): the pixels get
    the linear map that carries the image's colour distribution onto the reference's
    (the closed-form Monge-Kantorovich transfer), so means, spreads and channel
    correlations all match. With ``colour_stats`` (mean, per-channel std) only each
    channel is shifted and scaled. Either way the result is ``strength`` of the way from
    the image to the matched image: 0 = unchanged, 1 = full match (up to clipping).
    Gains are capped at MAX_GAIN per call, so a nearly flat image is not blown up.

    Convention: image (H, W, C) in RGB; uint8 in → uint8 out (rounded, clipped),
    float32 in → float32 out (not clipped).
    """
    if not (0.0 <= strength <= 1.0):
        raise ZoomdreamError(f"colour lock strength must be between 0 and 1; got {strength!r}")
    image = np.asarray(image)
    if strength == 0:
        return image.copy()
    ref_mean, ref_second = (np.asarray(v, dtype=np.float64) for v in ref_stats)
    x = image.astype(np.float32)
    if ref_second.ndim == 2:  # full covariance transfer
        mean, cov = colour_reference(image)
        root, inv_root = _sqrtm(cov + COV_FLOOR * np.eye(3))
        middle, _ = _sqrtm(root @ (ref_second + COV_FLOOR * np.eye(3)) @ root)
        a = inv_root @ middle @ inv_root  # (3, 3) symmetric: maps image covariance onto the reference's
        w, v = np.linalg.eigh(a)
        a = (v * np.clip(w, 1.0 / MAX_GAIN, MAX_GAIN)) @ v.T
        matched = (x - mean.astype(np.float32)) @ a.astype(np.float32) + ref_mean.astype(np.float32)  # (h, w, 3)
    else:
        mean, std = colour_stats(image)  # (c,), (c,)
        gain = np.where(std > STD_FLOOR, ref_second / np.maximum(std, STD_FLOOR), 1.0)
        gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)  # (c,)
        matched = (x - mean.astype(np.float32)) * gain.astype(np.float32) + ref_mean.astype(np.float32)
    out = x + np.float32(strength) * (matched - x)  # (h, w, c) float32
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(image.dtype, copy=False)
