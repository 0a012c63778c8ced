"""The camera motion of zooms and videos, as 3×3 matrices (values over time are schedules: ``schedule``).

Motion ops are small factories that return matrices; compose them with ``@`` and apply
the product as ONE resample per frame (every resample blurs)::

    M = translate(-2, 0) @ rotate(0.5, center=c) @ zoom(1.02, center=c)
    frame = warp_affine(frame, M)

``A @ B`` applies ``B`` first, then ``A`` (matrices act on column vectors).

Convention:
    images   (H, W, 3) RGB (any channel count works), uint8 [0, 255] or float32;
             functions return the dtype they are given.
    size     (width, height) in px, in that order, like OpenCV's ``dsize``.
    coords   pixel centres on integers, (0, 0) = centre of the top-left pixel,
             x grows right, y grows down; the frame spans [-0.5, W - 0.5] × [-0.5, H - 0.5].
    matrices 3×3 float64, mapping a SOURCE pixel position (x, y, 1) to where that
             content lands in the DESTINATION frame.
    zoom     factor > 1 moves in (content grows about the centre); < 1 moves out.
    rotate   degrees, positive = counter-clockwise on screen.
    translate(dx, dy) moves CONTENT by +dx right, +dy down. ``Motion.pan`` is the
             CAMERA's motion instead (CLI ``--pan 1,0``: the camera moves right 1 px
             per frame, so content shifts left); ``frame_matrix`` does the negation.
    rates    motion values are "per frame at REFERENCE_FPS (24) fps".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import cv2
import numpy as np

from zoomdream.errors import ZoomdreamError

__all__ = [
    "REFERENCE_FPS",
    "zoom",
    "rotate",
    "translate",
    "center_px",
    "frame_matrix",
    "warp_affine",
    "Motion",
]

REFERENCE_FPS = 24  # motion values are per frame at this rate; other rates keep motion per second

_INTERPOLATIONS = {
    "lanczos": cv2.INTER_LANCZOS4,  # sharpest; the default, since feedback compounds blur
    "cubic": cv2.INTER_CUBIC,
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,  # exact grid moves only (tests, masks)
}
CV_MAX_CHANNELS_CUBIC = 4  # OpenCV's warpAffine refuses more channels with cubic/Lanczos


def translate(dx: float, dy: float) -> np.ndarray:
    """Move content by ``dx`` px right and ``dy`` px down.

    Convention: returns a 3×3 float64 source → destination matrix, px units.
    """
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def zoom(factor: float, center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Scale content by ``factor`` about ``center``: > 1 moves in, < 1 moves out.

    Convention: ``center`` is (x, y) in PIXEL coordinates (pixel centres on integers);
    the default is the origin, so pass ``center_px(size)`` to zoom about the frame's
    middle. Returns a 3×3 float64 source → destination matrix.
    """
    if not (factor > 0 and math.isfinite(factor)):
        raise ZoomdreamError(f"zoom factor must be a finite number > 0 (1 = still); got {factor!r}")
    cx, cy = center
    return translate(cx, cy) @ np.diag([factor, factor, 1.0]) @ translate(-cx, -cy)


def rotate(degrees: float, center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Rotate content by ``degrees`` about ``center``, positive = counter-clockwise on screen.

    Convention: y grows down, so counter-clockwise means a point right of the centre
    moves up (same sign as OpenCV's ``getRotationMatrix2D`` and ``np.rot90``).
    ``center`` is (x, y) in pixel coordinates, default the origin. Returns a 3×3
    float64 source → destination matrix.
    """
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    cx, cy = center
    r = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return translate(cx, cy) @ r @ translate(-cx, -cy)


def center_px(size: tuple[int, int], fraction: tuple[float, float] = (0.5, 0.5)) -> tuple[float, float]:
    """Pixel coordinates of a point given as a fraction of the frame's width and height.

    Convention: ``size`` is (width, height); fraction (0, 0) is the top-left corner
    of the frame (not of the top-left pixel's centre), (0.5, 0.5) its middle,
    which is ((W − 1) / 2, (H − 1) / 2) with pixel centres on integers.
    """
    w, h = size
    fx, fy = fraction
    return fx * w - 0.5, fy * h - 0.5


def _similarity_power(m: np.ndarray, k: float) -> np.ndarray:
    """``m`` to the real power ``k``, for a similarity (zoom, rotation, shift; no shear).

    Writing points as complex numbers z = x + iy, ``m`` is z ↦ a·z + b, and its k-th
    power is z ↦ a^k·z + b·(a^k − 1)/(a − 1): the scale goes exponentially, the angle
    linearly, about the same fixed point, and a pure shift (a = 1) goes linearly.
    ``expm1`` keeps (a^k − 1)/(a − 1) accurate when a is close to 1.
    """
    a = complex(m[0, 0], m[1, 0])
    b = complex(m[0, 2], m[1, 2])
    assert np.allclose(m, [[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0, 0, 1]]), "not a similarity"
    log_a = np.log(a)  # principal branch: per-frame rotation must stay within ±180°
    ak = np.exp(k * log_a)
    bk = b * k if log_a == 0 else b * np.expm1(k * log_a) / np.expm1(log_a)
    return np.array([[ak.real, -ak.imag, bk.real], [ak.imag, ak.real, bk.imag], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Motion:
    """Camera motion for one frame, in "per frame at 24 fps" units."""

    zoom: float = 1.0  # scale factor per frame; > 1 moves in, 1 = still
    rotate: float = 0.0  # degrees per frame, positive = counter-clockwise on screen
    pan: tuple[float, float] = (0.0, 0.0)  # CAMERA px per frame (x right, y down): content moves the other way
    center: tuple[float, float] = (0.5, 0.5)  # zoom/rotate centre as a fraction of (width, height)

    def __post_init__(self):
        for name in ("zoom", "rotate"):
            value = getattr(self, name)
            if not _is_number(value):
                raise ZoomdreamError(f"motion {name} must be a number; got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("pan", "center"):
            value = getattr(self, name)
            if not _is_pair(value):
                raise ZoomdreamError(f"motion {name} must be two numbers (x, y); got {value!r}")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        if not self.zoom > 0:
            raise ZoomdreamError(f"motion zoom must be > 0 (1 = still); got {self.zoom}")


def frame_matrix(m: Motion, *, fps: float, size: tuple[int, int]) -> np.ndarray:
    """The one per-frame transform for motion ``m`` at ``fps``, on a frame of ``size``.

    At REFERENCE_FPS it is ``translate(-pan) @ rotate(m.rotate, c) @ zoom(m.zoom, c)``
    with c = ``center_px(size, m.center)``: zoom and rotate about the centre, then the
    camera pans. At other rates it is that matrix to the power 24 / fps, so motion per
    second is unchanged: zoom is rescaled exponentially (factor ** (24 / fps)), rotation
    and a pure pan linearly, and combined motions exactly (two frames at 48 fps equal
    one at 24 fps), see ``_similarity_power``.

    Convention: ``size`` is (width, height) px; returns a 3×3 float64 source →
    destination matrix for ``warp_affine``.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ZoomdreamError(f"fps must be a finite number > 0; got {fps!r}")
    c = center_px(size, m.center)
    reference = translate(-m.pan[0], -m.pan[1]) @ rotate(m.rotate, c) @ zoom(m.zoom, c)
    if fps == REFERENCE_FPS:
        return reference
    return _similarity_power(reference, REFERENCE_FPS / fps)


def warp_affine(image: np.ndarray, M: np.ndarray, *, interpolation: str = "lanczos") -> np.ndarray:
    """Resample ``image`` once through ``M``, keeping its size; mirrored borders.

    BORDER_REFLECT_101 fills whatever comes in from outside with mirrored content, so
    rotations and zoom-outs never show black wedges. ``interpolation`` is
    ``"lanczos"`` (default), ``"cubic"``, ``"linear"`` or ``"nearest"``.

    Convention:
        image: (H, W) or (H, W, C); uint8 in → uint8 out (rounded and clipped),
            float32 in → float32 out (not clipped: Lanczos may overshoot slightly).
        M: 3×3 matrix mapping SOURCE pixel coords to DESTINATION coords, pixel
            centres on integers (as built by ``zoom``/``rotate``/``translate``).
    """
    if interpolation not in _INTERPOLATIONS:
        raise ZoomdreamError(f"unknown interpolation {interpolation!r}; expected one of: {', '.join(_INTERPOLATIONS)}")
    image = np.asarray(image)
    M = np.asarray(M, dtype=np.float64)
    if M.shape != (3, 3) or not np.allclose(M[2], [0, 0, 1]):
        raise ValueError(f"M must be a 3x3 affine matrix with last row (0, 0, 1). Got: {M.tolist()}")
    h, w = image.shape[:2]
    flags = _INTERPOLATIONS[interpolation]

    def one(img):
        out = cv2.warpAffine(img, M[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        return out.reshape(img.shape)  # cv2 drops a trailing channel of 1; restore (h, w[, c])

    if image.ndim == 3 and image.shape[2] > CV_MAX_CHANNELS_CUBIC:
        chunks = [one(np.ascontiguousarray(image[..., i:i + CV_MAX_CHANNELS_CUBIC]))
                  for i in range(0, image.shape[2], CV_MAX_CHANNELS_CUBIC)]
        return np.concatenate(chunks, axis=2)  # (h, w, c)
    return one(image)


def _is_number(value) -> bool:
    return isinstance(value, (Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_pair(value) -> bool:
    return isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2 and all(_is_number(v) for v in value)
