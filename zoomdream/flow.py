"""Optical flow for temporal coherence: compute, warp, trust, detect cuts, measure flicker.

Numpy in, numpy out; OpenCV does the heavy lifting. Nothing here knows about dreaming:
the video driver computes the backward flow of each source frame, warps the previous
*dreamed* frame along it, blends where ``occlusion_mask`` says the warp is reliable, and
starts afresh where ``scene_cut_score`` says the shot changed.

Convention:
    images   (H, W, 3) RGB (or (H, W) grey), uint8 [0, 255] or float32 in the same
             0..255 units; functions keep the dtype they are given.
    flow     (H, W, 2) float32, in pixels, channel 0 = dx (right), channel 1 = dy (down).
    direction BACKWARD: ``flow = compute_flow(cur, prev)`` is defined on the grid of
             ``cur`` and points to where that pixel is in ``prev``:
             ``prev[y + dy, x + dx] ≈ cur[y, x]``; so ``warp(prev, flow) ≈ cur``.
    origin   pixel centres sit on integer coordinates; (0, 0) is the centre of the
             top-left pixel, x grows right, y grows down.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import atomic_path, write_text_atomic

__all__ = [
    "FLOW_METHODS",
    "SCENE_CUT",
    "compute_flow",
    "warp",
    "occlusion_mask",
    "scene_cut_score",
    "added_flicker",
    "FlickerMeter",
    "FlowCache",
]

FLOW_METHODS = ("dis", "farneback")

# Farneback parameters (OpenCV's documented example values; 5 levels so ~30 px motions are caught).
FARNEBACK_PYR_SCALE = 0.5  # each pyramid level is half the previous
FARNEBACK_LEVELS = 5  # pyramid levels above the full-resolution one
FARNEBACK_WINSIZE = 15  # averaging window, px: larger is smoother and more robust to noise
FARNEBACK_ITERATIONS = 3  # iterations per pyramid level
FARNEBACK_POLY_N = 5  # neighbourhood for the polynomial expansion, px
FARNEBACK_POLY_SIGMA = 1.2  # Gaussian sigma of that expansion (1.2 goes with poly_n 5)

# Forward-backward consistency (Sundaram, Brox & Keutzer 2010, "Dense point trajectories
# by GPU-accelerated large displacement optical flow"): a pixel is consistent when
# |w + ŵ|² < CONSISTENCY_REL * (|w|² + |ŵ|²) + CONSISTENCY_ABS, w in px.
CONSISTENCY_REL = 0.01  # tolerance growing with motion, since long vectors are less precise
CONSISTENCY_ABS = 0.5  # px²: a floor, so near-static pixels may differ by ~0.7 px
MASK_FEATHER_SIGMA = 1.0  # px: Gaussian that softens the inner edge of unreliable regions

SCENE_CUT = 0.5  # scene_cut_score above this = a hard cut; pans and zooms on one scene score ~0.0-0.15
CUT_THUMB_SIZE = (64, 36)  # (w, h) grey thumbnail the cut score compares: small, so detail and noise average out
CUT_SEARCH = (8, 4)  # (x, y) thumbnail px of global shift searched: 12.5% / 11% of the frame
# SSIM stabilisers (Wang et al. 2004) for 0..255 data: they keep flat frames (fades) well defined.
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2

FLICKER_RELIABLE = 0.5  # mask value above which a pixel counts in the flicker metric

_BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,  # mirror about the edge pixel: no dark fringe
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,  # zeros
}


def _grey_u8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W), uint8 or 0..255 float -> (H, W) uint8 grey, as DIS needs."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # (h, w) uint8
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]  # (h, w) uint8
    if image.ndim == 2:
        return image
    raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey image. Got: {image.shape}")


def compute_flow(src: np.ndarray, dst: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense flow telling, for each pixel of ``src``, where that content is in ``dst``.

    The backward flow of frame t is ``compute_flow(frame_t, frame_t_minus_1)``.
    ``"dis"`` (OpenCV DIS, medium preset) is the default: fast and good on large
    motions; ``"farneback"`` is the classic alternative. Both are deterministic.

    Convention:
        src, dst: (H, W, 3) RGB or (H, W) grey, uint8 or float32 in 0..255; converted
            to grey uint8 inside.
        returns: (H, W, 2) float32 (dx, dy) in px on the grid of ``src``, with
            ``dst[y + dy, x + dx] ≈ src[y, x]``; pixel centres on integers.
    """
    if method not in FLOW_METHODS:
        raise ZoomdreamError(f"unknown flow method {method!r}; expected one of: {', '.join(FLOW_METHODS)}")
    a, b = _grey_u8(src), _grey_u8(dst)  # (h, w) uint8 each
    if a.shape != b.shape:
        raise ValueError(f"src and dst must have the same size. Got: {a.shape} and {b.shape}")
    # OpenCV's flow(I0, I1) satisfies I0(x) ≈ I1(x + flow(x)): exactly our src -> dst.
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOpticalFlow_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(
            a, b, None, FARNEBACK_PYR_SCALE, FARNEBACK_LEVELS, FARNEBACK_WINSIZE,
            FARNEBACK_ITERATIONS, FARNEBACK_POLY_N, FARNEBACK_POLY_SIGMA, 0,
        )
    return np.ascontiguousarray(flow, dtype=np.float32)  # (h, w, 2) float32


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates: x (h, w) and y (h, w), float32 (made once per size; read-only)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)  # (h, w) each
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, *, border: str = "reflect") -> np.ndarray:
    """Backward warp: ``out[y, x] = image[y + dy(y, x), x + dx(y, x)]``, bilinear.

    With the backward flow of frame t, ``warp(frame_t_minus_1, flow)`` lines the
    previous frame up with frame t. ``border`` is ``"reflect"`` (mirror, the default),
    ``"replicate"`` or ``"constant"`` (zeros) for samples that fall outside.

    Convention:
        image: (H, W), (H, W, C) any C; uint8 stays uint8 (rounded), float32 stays float32.
        flow: (H, W, 2) float32 (dx, dy) in px, backward (see the module docstring).
        returns: same shape and dtype as ``image``.
    """
    image = np.asarray(image)
    flow = np.asarray(flow, dtype=np.float32)
    h, w = image.shape[:2]
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow must be (H, W, 2) matching the image {image.shape[:2]}. Got: {flow.shape}")
    if border not in _BORDERS:
        raise ValueError(f"unknown border {border!r}; expected one of: {', '.join(_BORDERS)}")
    xs, ys = _grid(h, w)
    out = cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                    borderMode=_BORDERS[border])
    return out.reshape(image.shape)  # cv2 drops a trailing channel of 1; restore (h, w[, c])


def _sq_norm(v: np.ndarray) -> np.ndarray:
    """(h, w, 2) vectors -> (h, w) squared lengths (per component: a sum over the last axis is ~20x slower)."""
    x, y = v[..., 0], v[..., 1]
    return x * x + y * y


def occlusion_mask(flow_bwd: np.ndarray, flow_fwd: np.ndarray, *, threshold: float = 1.0) -> np.ndarray:
    """Where the backward flow can be trusted: 1 = carry the dream over, 0 = occluded.

    Forward-backward check (Sundaram et al. 2010): pixel x of frame t lands at
    p = x + w(x) in frame t−1 (w = ``flow_bwd``); the forward flow ŵ = ``flow_fwd``(p)
    should bring it back, so a pixel is reliable when
    ``|w + ŵ|² < threshold * (0.01 (|w|² + |ŵ|²) + 0.5)``. ``threshold`` scales the
    whole tolerance (2 = twice as lenient). Pixels whose p leaves the frame are 0. The
    0/1 mask is then feathered inward by a small blur, so reliable pixels next to
    unreliable ones fade in over ~2 px, while unreliable pixels stay exactly 0.

    Convention:
        flow_bwd: (H, W, 2) float32 px, t → t−1, on the grid of frame t.
        flow_fwd: (H, W, 2) float32 px, t−1 → t, on the grid of frame t−1
            (``compute_flow(prev, cur)``).
        returns: (H, W) float32 in [0, 1] on the grid of frame t.
    """
    flow_bwd = np.asarray(flow_bwd, dtype=np.float32)
    flow_fwd = np.asarray(flow_fwd, dtype=np.float32)
    if flow_bwd.ndim != 3 or flow_bwd.shape[2] != 2 or flow_fwd.shape != flow_bwd.shape:
        raise ValueError(f"flows must both be (H, W, 2). Got: {flow_bwd.shape} and {flow_fwd.shape}")
    h, w = flow_bwd.shape[:2]
    # 1) the forward flow, sampled where each pixel of t came from in t-1
    fwd_at_p = warp(flow_fwd, flow_bwd, border="replicate")  # (h, w, 2) float32
    # 2) consistency test
    err = _sq_norm(flow_bwd + fwd_at_p)  # (h, w)
    tol = threshold * (CONSISTENCY_REL * (_sq_norm(flow_bwd) + _sq_norm(fwd_at_p)) + CONSISTENCY_ABS)  # (h, w)
    # 3) targets outside the frame's extent [-0.5, size - 0.5) have nothing to carry
    xs, ys = _grid(h, w)
    px, py = xs + flow_bwd[..., 0], ys + flow_bwd[..., 1]  # (h, w) each
    inside = (px >= -0.5) & (px < w - 0.5) & (py >= -0.5) & (py < h - 0.5)
    hard = ((err < tol) & inside).astype(np.float32)  # (h, w) 0/1
    # 4) feather inward only: multiplying by the hard mask keeps rejected pixels at 0
    soft = cv2.GaussianBlur(hard, (0, 0), MASK_FEATHER_SIGMA, borderType=cv2.BORDER_REPLICATE)
    return np.clip(hard * soft, 0.0, 1.0).astype(np.float32)  # (h, w) float32


def _global_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two same-size grey arrays with ONE window covering all of them."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(), b.var()
    cov = np.mean((a - ma) * (b - mb))
    return ((2 * ma * mb + SSIM_C1) * (2 * cov + SSIM_C2)) / ((ma * ma + mb * mb + SSIM_C1) * (va + vb + SSIM_C2))


def scene_cut_score(prev: np.ndarray, cur: np.ndarray) -> float:
    """How much ``cur`` looks like a different shot from ``prev``: 0 = same, 1 = cut.

    1) Both frames shrink to 64×36 grey thumbnails.
    2) The centre of ``cur``'s thumbnail (a CUT_SEARCH margin cut off) is located in
       ``prev``'s by normalised cross-correlation, so a pan of up to ~12% of the frame
       per frame is compensated instead of read as a change of scene.
    3) The score is ``1 − SSIM`` (Wang et al. 2004, one global window) of the matched
       pair, clipped to [0, 1]; the SSIM constants keep flat frames (fades) defined.

    On the bundled photos, pans of up to 48 px and a 5% zoom score ≤ 0.12 while cuts
    between different photos, or between different parts of one photo, score ≥ 0.6;
    compare with ``SCENE_CUT``.

    Convention:
        prev, cur: (H, W, 3) RGB or (H, W) grey, uint8 or float32 in 0..255; sizes may differ.
    """
    a = cv2.resize(_grey_u8(prev), CUT_THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)  # (36, 64)
    b = cv2.resize(_grey_u8(cur), CUT_THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)  # (36, 64)
    mx, my = CUT_SEARCH
    template = b[my:-my, mx:-mx]  # (28, 48)
    match = cv2.matchTemplate(a, template, cv2.TM_CCOEFF_NORMED)  # (2 * my + 1, 2 * mx + 1)
    _, _, _, (x, y) = cv2.minMaxLoc(match)
    window = a[y:y + template.shape[0], x:x + template.shape[1]]  # (28, 48), the best-aligned part of prev
    return float(np.clip(1.0 - _global_ssim(window, template), 0.0, 1.0))


def added_flicker(out_prev: np.ndarray, out_cur: np.ndarray, src_prev: np.ndarray, src_cur: np.ndarray,
                  flow_bwd: np.ndarray, mask: np.ndarray) -> float:
    """Flicker the dreaming added between two frames, in 0..255 units.

    ``mean |out_cur − warp(out_prev, flow_bwd)|`` over reliable pixels (``mask`` > 0.5),
    minus the same quantity for the source frames, so motion the flow cannot explain
    (noise, lighting) is not blamed on the dream. 0 = as steady as the source;
    negative = steadier than the source. ``nan`` when no pixel is reliable.

    Convention:
        out_*, src_*: (H, W, 3) uint8 or float32 in 0..255, all the same size.
        flow_bwd: (H, W, 2) float32 px, t → t−1; mask: (H, W) float32 in [0, 1].
    """
    reliable = (np.asarray(mask) > FLICKER_RELIABLE).astype(np.uint8)  # (h, w) 0/1
    if not reliable.any():
        return float("nan")

    def residual(prev, cur):
        prev_w = warp(np.asarray(prev, dtype=np.float32), flow_bwd)  # (h, w, c) float32
        diff = cv2.absdiff(np.asarray(cur, dtype=np.float32), prev_w)  # (h, w, c)
        channels = 1 if diff.ndim == 2 else diff.shape[2]
        return float(np.mean(cv2.mean(diff, mask=reliable)[:channels]))  # over reliable pixels and channels

    return residual(out_prev, out_cur) - residual(src_prev, src_cur)


class FlickerMeter:
    """Running mean of ``added_flicker`` over a render.

    ``add(...)`` takes the same arguments as ``added_flicker`` and returns that frame's
    value; frames with no reliable pixel (``nan``) are not counted.
    """

    def __init__(self):
        self._sum = 0.0
        self.count = 0  # frames measured

    def add(self, out_prev, out_cur, src_prev, src_cur, flow_bwd, mask) -> float:
        value = added_flicker(out_prev, out_cur, src_prev, src_cur, flow_bwd, mask)
        if not math.isnan(value):
            self._sum += value
            self.count += 1
        return value

    @property
    def mean(self) -> float:
        """Mean added flicker in 0..255 units; ``nan`` before the first counted frame."""
        return self._sum / self.count if self.count else float("nan")


CACHE_KEY_HASH_CHARS = 16  # hex chars of sha256(key) naming the subfolder: ample against collisions


FLOW_CACHE_FORMAT = 2  # part of every key: entries of another layout are never read


class FlowCache:
    """A per-clip folder of flow fields, so re-dreaming a clip skips the flow step.

    ``key`` must identify everything the flow depends on (the clip's content, the flow
    method, the working size); each key (with :data:`FLOW_CACHE_FORMAT`) gets its own
    subfolder ``folder/<sha256(key)[:16]>/`` holding ``key.json`` (the full key) and one
    ``NNNNNN.npy`` per frame index, so a different key in the same folder never sees
    another's data. Fields are stored as float16 ((2, H, W, 2), half the size): exact to
    1/2048 relative, i.e. better than 1/30 px below 64 px of motion.

    It stays a cache: an entry that is damaged, of the wrong shape or dtype, not finite, or
    in a folder whose ``key.json`` names another key is a miss (recomputed); a cache that
    cannot be written is skipped. Writes are atomic.

    Convention:
        entry ``index`` holds the flows between frames ``index - 1`` and ``index``:
        flow_bwd (t -> t-1, grid of frame t) and flow_fwd (t-1 -> t, grid of frame t-1),
        each (H, W, 2) float32 (dx, dy) in px.
    """

    def __init__(self, folder: str | os.PathLike, key: str):
        self.key = json.dumps({"format": FLOW_CACHE_FORMAT, "key": str(key)}, sort_keys=True)
        digest = hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:CACHE_KEY_HASH_CHARS]
        self.folder = Path(folder) / digest
        self.usable = True
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            key_file = self.folder / "key.json"
            if not key_file.exists():
                write_text_atomic(key_file, self.key + "\n")
            self.usable = key_file.read_text().strip() == self.key  # another key's folder: not ours to use
        except (OSError, ZoomdreamError, UnicodeDecodeError):
            self.usable = False

    def _path(self, index: int) -> Path:
        if int(index) != index or index < 0:
            raise ValueError(f"frame index must be a non-negative int. Got: {index!r}")
        return self.folder / f"{int(index):06d}.npy"

    def get(self, index: int, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow_bwd, flow_fwd) as float32 for frame ``index``, or None if not cached (or unusable).

        ``shape``: the frames' (H, W); an entry of another size is a miss.
        """
        path = self._path(index)
        if not self.usable or not path.is_file():
            return None
        try:
            pair = np.load(path, allow_pickle=False)  # (2, h, w, 2) float16
        except (OSError, ValueError, EOFError):
            return None  # damaged: recompute rather than fail a long render
        if (not isinstance(pair, np.ndarray) or pair.dtype != np.float16 or pair.ndim != 4 or pair.shape[0] != 2
                or pair.shape[3] != 2 or (shape is not None and tuple(pair.shape[1:3]) != tuple(shape))):
            return None
        pair = pair.astype(np.float32)
        if not np.isfinite(pair).all():
            return None
        return pair[0], pair[1]

    def put(self, index: int, flow_bwd: np.ndarray, flow_fwd: np.ndarray) -> None:
        """Store the two flows of frame ``index`` (atomically, as float16); a failed write is skipped."""
        flow_bwd, flow_fwd = np.asarray(flow_bwd), np.asarray(flow_fwd)
        if flow_bwd.shape != flow_fwd.shape or flow_bwd.ndim != 3 or flow_bwd.shape[2] != 2:
            raise ValueError(f"flows must both be (H, W, 2). Got: {flow_bwd.shape} and {flow_fwd.shape}")
        if not self.usable:
            return
        pair = np.stack([flow_bwd, flow_fwd]).astype(np.float16)  # (2, h, w, 2) float16
        try:
            with atomic_path(self._path(index)) as tmp, open(tmp, "wb") as f:
                np.save(f, pair, allow_pickle=False)
        except OSError:
            self.usable = False  # full disk, read-only cache: the render goes on without it
