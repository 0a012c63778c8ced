"""The dream core: the seed's octave algorithm, jittered and tiled, compiled once.

Pure: an image and settings in, an image out; all randomness comes from the
``(seed, frame)`` key passed in. It knows no files, video or argv.

The algorithm (the seed post's, step by step):
1) octave shapes ``input / scale**i`` for i < octaves, processed smallest first;
2) at each octave: resize the running image, then ``iterations`` steps of
   ``image += step * g / max(mean|g|, eps)`` where g is d(loss)/d(image), stopping
   early once the loss exceeds ``max_loss``;
3) after each octave, re-inject the detail that downscaling lost:
   ``image += resize(original, shape) - resize(shrunk original, shape)``.
Added here: a random roll (jitter) before each gradient, undone after; gradients of
large images computed in overlapping tiles blended with feathered weights (memory
is bounded by the tile); gradient conditioning before the normalisation of 2) (each
band of a Laplacian pyramid of g scaled to unit spread, the TF1 DeepDream tutorial's
``lap_normalize``, and/or a small Gaussian blur), which stops strided and depthwise
convolutions from painting a pixel-scale checkerboard hatch; an optional mask that
limits where the image changes.

Convention: images are (H, W, 3) RGB. ``dream_image`` takes and returns uint8
[0, 255]; ``dream`` works on float32 in the unit range [-1, 1] (pixel/127.5 - 1).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from zoomdream.backbones import Backbone, load_backbone
from zoomdream.backbones.tf import tf as _tf
from zoomdream.errors import ZoomdreamError
from zoomdream.objectives import Objective, from_settings
from zoomdream.settings import DreamFrame, DreamSettings, Settings, validate
from zoomdream.settings.animation import dream_at
from zoomdream.settings.values import FRAME_INDEX, MAX_SEED, Number, quote

__all__ = ["GRAD_EPS", "TILE_OVERLAP_FRACTION", "BAND_FLOOR", "BLUR_RADIUS_SIGMAS", "to_unit", "to_uint8",
           "octave_shapes", "octave_note", "tile_spans", "TilePlan", "tile_plan", "GradientStep", "GradientFilter",
           "image_gradient", "dream", "total_steps", "dream_image"]

log = logging.getLogger("zoomdream")

GRAD_EPS = 1e-7  # the seed's floor under the gradient normaliser
TILE_OVERLAP_FRACTION = 0.25
  # tiles overlap by a quarter of their side; the overlap is feathered
BAND_FLOOR = 1e-3  # a Laplacian band is never boosted past 1000x: its spread is floored at this share of g's
BLUR_RADIUS_SIGMAS = 3.0  # the Gaussian kernel reaches 3 sigma each side


def to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] (H, W, 3) -> float32 [-1, 1]."""
    return image.astype(np.float32) / 127.5 - 1.0


def to_uint8(image) -> np.ndarray:
    """float32 [-1, 1] (H, W, 3) -> uint8 [0, 255], rounded and clipped."""
    return np.clip(np.rint((np.asarray(image) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def octave_shapes(shape: tuple[int, int], octaves: int, scale: float, min_size: int) -> list[tuple[int, int]]:
    """The seed's octave shapes, smallest first, clamped so the smallest side stays >= ``min_size``.

    Fewer than ``octaves`` shapes means the smallest octaves were dropped (``octave_note`` says so).

    Convention: shapes are (H, W) in pixels; the last one is ``shape`` itself.
    """
    h, w = shape
    if min(h, w) < min_size:
        raise ZoomdreamError(f"image is {w}x{h}; this model needs at least {min_size} px on each side")
    shapes = [shape]
    for i in range(1, octaves):
        s = (int(h / scale**i), int(w / scale**i))
        if min(s) < min_size:
            break
        shapes.append(s)
    return shapes[::-1]


def octave_note(shape: tuple[int, int], settings: DreamSettings, min_size: int) -> str | None:
    """One line for the log when a dream of this (H, W) uses fewer octaves than asked, else None.

    Dreaming itself stays silent (it runs once per frame); a render logs this once.
    """
    used = len(octave_shapes(shape, settings.octaves, settings.octave_scale, min_size))
    if used >= settings.octaves:
        return None
    return (f"using {used} of {settings.octaves} octaves: a smaller octave would fall below the model's "
            f"{min_size} px minimum")


def border_note(shape: tuple[int, int], objective: Objective, backbone: Backbone) -> str | None:
    """One line for the log when ``border`` drops every activation cell of a layer at this (H, W), so that
    layer adds nothing to the dream (and with no other term, the image comes back unchanged); else None."""
    h, w = shape
    for term in objective.terms:
        if term.kind != "layer" or not term.border:
            continue
        try:  # the layer's map size for this input, from the graph alone (nothing runs)
            out = backbone.feature_model((term.layer,)).compute_output_shape((1, h, w, 3))
            rows, cols = (out[0] if isinstance(out, list) else out)[1:3]
        except Exception:  # noqa: BLE001 - a network that cannot say: no note
            continue
        if rows is not None and cols is not None and min(rows, cols) <= 2 * term.border:
            return (f"--border {term.border} leaves nothing of layer {term.layer} at {w}x{h} px (its map is "
                    f"{cols}x{rows} cells): it does not dream; use a smaller --border or a larger image")
    return None


def tile_spans(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/stop spans of tiles covering [0, n) with at least ``overlap`` shared pixels.

    As few tiles as fit within ``tile`` px, each only as long as needed, evenly spread, the
    last ending exactly at n (no skipped last row/column). Balanced lengths matter: two
    full-size tiles over 600 px would overlap by 424 px and nearly double the work.
    """
    if n <= tile:
        return [(0, n)]
    count = math.ceil((n - overlap) / (tile - overlap))
    length = min(tile, math.ceil((n + (count - 1) * overlap) / count) + 1)  # +1: room for rounding the starts
    starts = np.linspace(0, n - length, count).round().astype(int)
    return [(int(s), int(s) + length) for s in starts]


def _ramp(spans: list[tuple[int, int]], i: int, overlap: int) -> np.ndarray:
    """1-D feather weights for span i: linear ramps where it overlaps a neighbour, 1 elsewhere."""
    a, b = spans[i]
    w = np.ones(b - a, np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap  # strictly inside (0, 1)
    if i > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if i < len(spans) - 1:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


@dataclass
class TilePlan:
    """How a (h, w) image is cut into overlapping tiles, and each tile's share of the blended gradient."""

    boxes: list[tuple[int, int, int, int]]  # (y0, y1, x0, x1)
    windows: list  # per tile (th, tw, 1) float32 tensors: feather / sum of feathers (they sum to 1 everywhere)


@functools.lru_cache(maxsize=32)
def tile_plan(h: int, w: int, tile: int) -> TilePlan:
    """Tiles of at most ``tile`` px covering an (h, w) image, with feathered blend windows (made once per size)."""
    tf = _tf()
    overlap = max(8, int(tile * TILE_OVERLAP_FRACTION))
    ys, xs = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    boxes, raw = [], []
    norm = np.zeros((h, w), np.float32)
    for iy, (y0, y1) in enumerate(ys):
        for ix, (x0, x1) in enumerate(xs):
            win = np.outer(_ramp(ys, iy, overlap), _ramp(xs, ix, overlap))  # (th, tw)
            boxes.append((y0, y1, x0, x1))
            raw.append(win)
            norm[y0:y1, x0:x1] += win
    windows = [tf.constant((win / norm[y0:y1, x0:x1])[..., None]) for win, (y0, y1, x0, x1) in zip(raw, boxes)]
    return TilePlan(boxes, windows)


class GradientStep:
    """The compiled (loss, gradient) of an objective on one tile.

    One ``tf.function`` per (backbone, objective structure), with ``None`` spatial
    dimensions in its input signature, so octaves, tiles and frames of any size reuse
    one trace per shape class instead of retracing on every call. The backbone keeps
    its steps (``Backbone.compiled_steps``), so they go when the network goes.
    """

    def __init__(self, backbone: Backbone, objective: Objective):
        tf = _tf()
        self.backbone = backbone
        self.objective = objective
        self.features = backbone.feature_model(objective.layers())
        layers = objective.layers()

        def loss_of(tile, weights):
            """The weighted objective on one (h, w, 3) unit-range tile: a scalar float32."""
            acts = self.features(backbone.preprocess(tile[None]), training=False)
            acts = dict(zip(layers, acts if isinstance(acts, (list, tuple)) else [acts]))
            return tf.reduce_sum(weights * objective.losses(acts))

        self.loss = loss_of  # uncompiled, for callers that build their own gradient around it

        def step(tile, weights):
            with tf.GradientTape() as tape:
                tape.watch(tile)
                loss = loss_of(tile, weights)
            return loss, tape.gradient(loss, tile)  # (), (h, w, 3) float32

        self.fn = tf.function(
            step,
            input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([len(objective.terms)], tf.float32)],
            reduce_retracing=True,
        )

    @classmethod
    def get(cls, backbone: Backbone, objective: Objective) -> "GradientStep":
        """The backbone's compiled step for this objective's structure, built on first use."""
        steps = backbone.compiled_steps
        if objective.structure not in steps:
            steps[objective.structure] = cls(backbone, objective)
        return steps[objective.structure]


class GradientFilter:
    """The compiled gradient conditioning: Laplacian-band normalisation, then an optional blur.

    ``levels`` > 0: split g into ``levels`` band-pass images plus a low-pass residual
    (each level halves the size: antialiased bilinear down, bilinear back up), divide
    every band by its RMS, and add them back together, so coarse shapes get as much of
    the step as the pixel-scale detail that gradients through strided convolutions are
    full of. ``blur`` > 0: a separable Gaussian of that sigma (px), normalised at the
    borders, which removes the last checkerboard energy. Both run on the whole assembled
    gradient (never per tile, so no tile seams), in one ``tf.function`` whose ``None``
    spatial dimensions serve every octave and frame size without retracing.

    Convention: (H, W, 3) float32 in, same shape out. For given band weights it is a linear
    filter, shift-equivariant up to the aliasing of the 2x subsampling (the antialiased
    downscale keeps that small) and to the borders.
    """

    _cache: dict = {}

    def __init__(self, levels: int, blur: float):
        tf = _tf()
        self.levels, self.blur = levels, blur
        radius = max(1, math.ceil(BLUR_RADIUS_SIGMAS * blur)) if blur > 0 else 0
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(blur, 1e-6)) ** 2) if radius else np.ones(1)
        taps = (taps / taps.sum()).astype(np.float32)
        ky = tf.constant(np.tile(taps[:, None, None, None], (1, 1, 3, 1)))  # (2r+1, 1, 3, 1) depthwise
        kx = tf.constant(np.tile(taps[None, :, None, None], (1, 1, 3, 1)))  # (1, 2r+1, 3, 1)

        def gauss(x):  # (1, h, w, 3) -> same; zero padding, renormalised so borders keep their level
            blur_x = tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "SAME")
            blur_x = tf.nn.depthwise_conv2d(blur_x, kx, [1, 1, 1, 1], "SAME")
            wy = tf.nn.depthwise_conv2d(tf.ones_like(x[:, :, :1]), ky, [1, 1, 1, 1], "SAME")  # (1, h, 1, 3)
            wx = tf.nn.depthwise_conv2d(tf.ones_like(x[:, :1]), kx, [1, 1, 1, 1], "SAME")  # (1, 1, w, 3)
            return blur_x / (wy * wx)  # the kernel's mass inside the image, separable too

        def rms(x):
            return tf.sqrt(tf.reduce_mean(tf.square(x)))

        def condition(grad):
            g = grad  # (h, w, 3)
            floor = tf.maximum(BAND_FLOOR * rms(grad), 1e-30)  # rounding noise in an empty band stays noise

            def unit_spread(x):
                return x / tf.maximum(rms(x), floor)

            if levels > 0:
                bands = []
                for _ in range(levels):
                    size = tf.shape(g)[:2]
                    low = tf.image.resize(g, (size + 1) // 2, method="bilinear", antialias=True)  # (ceil h/2, ..)
                    bands.append(g - tf.image.resize(low, size, method="bilinear"))  # band-pass, (h_i, w_i, 3)
                    g = low
                g = unit_spread(g)  # the low-pass residual
                for band in reversed(bands):  # merge, coarsest first
                    g = tf.image.resize(g, tf.shape(band)[:2], method="bilinear") + unit_spread(band)
            if radius:
                g = gauss(g[None])[0]
            return g

        self.fn = tf.function(condition, input_signature=[tf.TensorSpec([None, None, 3], tf.float32)],
                              reduce_retracing=True)

    @classmethod
    def get(cls, levels: int, blur: float) -> "GradientFilter | None":
        """The filter for these settings, or None when both are off (the seed's raw gradient)."""
        if levels <= 0 and blur <= 0:
            return None
        key = (int(levels), float(blur))
        if key not in cls._cache:
            cls._cache[key] = cls(*key)
        return cls._cache[key]


def image_gradient(step: GradientStep, img, weights, shift: Sequence[int], plan: TilePlan | None):
    """Loss and d(loss)/d(img) of the whole image rolled by ``shift`` (the roll undone on the gradient).

    Tile by tile when a plan is given (the tiles' gradients blended by its windows), else in one call.
    Convention: img (H, W, 3) float32 unit range; shift (dy, dx) px; returns (scalar, (H, W, 3) float32).
    """
    tf = _tf()
    rolled = tf.roll(img, shift=shift, axis=(0, 1))
    if plan is None:
        loss, grad = step.fn(rolled, weights)
    else:
        loss, parts = 0.0, []
        for (y0, y1, x0, x1), win in zip(plan.boxes, plan.windows):
            tile_loss, g = step.fn(rolled[y0:y1, x0:x1], weights)
            loss += tile_loss
            parts.append(((y0, y1, x0, x1), g * win))
        grad = _assemble(parts, img.shape)
    return loss, tf.roll(grad, shift=[-s for s in shift], axis=(0, 1))


def _assemble(parts, shape):
    """Sum feathered tile gradients into one (H, W, 3) tensor without leaving the device.

    A variable takes sliced updates in place, so memory stays one frame plus one tile.
    """
    tf = _tf()
    total = tf.Variable(tf.zeros((int(shape[0]), int(shape[1]), 3), tf.float32), trainable=False)
    for (y0, y1, x0, x1), g in parts:
        total[y0:y1, x0:x1].assign(total[y0:y1, x0:x1] + g)
    return tf.convert_to_tensor(total)


def dream(image, objective: Objective, backbone: Backbone, settings: DreamFrame | DreamSettings, *,
          mask: np.ndarray | None = None, progress: Callable[[int], None] | None = None,
          history: list | None = None) -> np.ndarray:
    """Dream ``image`` (float32 unit range, (H, W, 3)) and return the result in the same convention.

    ``settings``: the frame's resolved dream (a ``DreamSettings`` of plain numbers is resolved as
    frame 0); its ``iterations`` (fewer on video frames that carry a dream) and its ``frame`` index
    are part of it, and jitter comes from ``(seed, frame, octave)``.

    Args:
        mask: (H, W) float32 in [0, 1]: where the dream may change the image (1 = fully).
        progress: called with the number of steps just done.
        history: if given, receives the loss of every step (floats), in order.
    """
    if not isinstance(settings, DreamFrame):
        settings = settings.frame()  # numbers only: a schedule is evaluated at a frame before it gets here
    iterations, seed, frame = settings.iterations, settings.seed, settings.frame
    if iterations == 0:  # no dreaming (a motion preview): the image as given, not resampled through the octaves
        return np.array(image, dtype=np.float32)
    tf = _tf()
    step = GradientStep.get(backbone, objective)
    conditioner = GradientFilter.get(settings.grad_levels, settings.grad_blur)
    weights = objective.weight_tensor()
    h, w = image.shape[:2]
    shapes = octave_shapes((h, w), settings.octaves, settings.octave_scale, backbone.min_size)

    original = tf.constant(image, tf.float32)  # (H, W, 3) unit range
    img = original
    shrunk = tf.image.resize(original, shapes[0], method="bilinear")  # 1) the smallest octave
    mask_t = None if mask is None else tf.constant(np.asarray(mask, np.float32)[..., None])  # (H, W, 1)
    track_loss = settings.max_loss is not None or history is not None
    for octave, shape in enumerate(shapes):
        rng = np.random.default_rng((seed, frame, octave))
        img = tf.image.resize(img, shape, method="bilinear")  # (h_o, w_o, 3)
        plan = tile_plan(*shape, settings.tile) if max(shape) > settings.tile else None
        octave_mask = None if mask_t is None else tf.image.resize(mask_t, shape, method="bilinear")
        done = 0
        for _ in range(iterations):  # 2) gradient ascent at this octave
            shift = [int(v) for v in rng.integers(-settings.jitter, settings.jitter + 1, size=2)]
            loss, grad = image_gradient(step, img, weights, shift, plan)
            if track_loss:
                value = float(loss)
                if history is not None:
                    history.append(value)
                if settings.max_loss is not None and value > settings.max_loss:
                    break
            if conditioner is not None:
                grad = conditioner.fn(grad)
            if settings.grad_norm == "std":
                norm = tf.math.reduce_std(grad)
            else:
                norm = tf.reduce_mean(tf.abs(grad))
            update = settings.step * grad / tf.maximum(norm, GRAD_EPS)
            if octave_mask is not None:
                update *= octave_mask
            img = img + update
            if settings.clip:  # a few pixels would otherwise run away into saturated blobs
                img = tf.clip_by_value(img, -1.0, 1.0)
            done += 1
            if progress:
                progress(1)
        if progress and done < iterations:
            progress(iterations - done)  # early stop: keep the bar's total honest
        # 3) re-inject the detail lost by downscaling
        upscaled_shrunk = tf.image.resize(shrunk, shape, method="bilinear")
        same_size = tf.image.resize(original, shape, method="bilinear")
        img = img + (same_size - upscaled_shrunk)
        shrunk = same_size
    return img.numpy()


def total_steps(shape: tuple[int, int], settings: DreamSettings, min_size: int, iterations: int | None = None) -> int:
    """How many gradient steps a dream of this size takes (for progress bars)."""
    n = len(octave_shapes(shape, settings.octaves, settings.octave_scale, min_size))
    return n * (settings.iterations if iterations is None else iterations)


def dream_image(image: np.ndarray, *, settings: DreamSettings | None = None, backbone: Backbone | None = None,
                seed: int | None = None, frame: int = 0, guide: np.ndarray | None = None,
                objective: Objective | None = None, mask: np.ndarray | None = None,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Dream one uint8 RGB image (H, W, 3) and return a uint8 RGB image of the same size.

    The model is built from ``settings`` unless ``backbone`` is given; the objective from
    ``settings.layers``/``channels`` (plus ``guide``, an RGB uint8 image) unless given.
    ``settings``: a DreamSettings (or a whole Settings, whose dream part is used); schedules in it
    (step, layer weights) are evaluated at ``frame`` (at 24 fps, without audio). ``mask``: (H, W)
    numbers in 0..1, where the dream may change the image. Every argument is checked first: a
    bad one is a ZoomdreamError naming it.
    """
    settings = _dream_settings(settings)
    validate(settings)  # also catches a settings object whose fields were changed behind the dataclass's back
    seed = None if seed is None else _argument("seed", seed, Number(0, MAX_SEED, integer=True))
    frame = _argument("frame", frame, FRAME_INDEX)
    image = _rgb("image", image)
    if guide is not None:
        guide = _rgb("guide", guide)
    if mask is not None:
        mask = _mask(mask, image.shape[:2])
    if backbone is not None and not isinstance(backbone, Backbone):
        raise ZoomdreamError(f"dream_image: backbone: expected a Backbone (load_backbone), got {quote(backbone)}")
    if objective is not None and not isinstance(objective, Objective):
        raise ZoomdreamError(f"dream_image: objective: expected an Objective, got {quote(objective)}")
    settings = dream_at(settings, frame)  # the step and layer weights at this frame, as numbers
    backbone = backbone or load_backbone(settings.model, weights=settings.weights, precision=settings.precision)
    objective = objective or from_settings(settings, backbone, guide)
    if settings.iterations:  # once per image: dream() itself runs once per frame and stays silent
        for note in (octave_note(image.shape[:2], settings, backbone.min_size),
                     border_note(image.shape[:2], objective, backbone)):
            if note:
                log.info(note)
    resolved = settings.frame(frame=frame) if seed is None else settings.frame(frame=frame, seed=seed)
    out = dream(to_unit(image), objective, backbone, resolved, mask=mask, progress=progress)
    return to_uint8(out)


def _dream_settings(settings) -> DreamSettings:
    if settings is None:
        return DreamSettings()
    if isinstance(settings, Settings):
        return settings.dream  # a whole preset: a still dreams with its dream part
    if not isinstance(settings, DreamSettings):
        raise ZoomdreamError(f"dream_image: settings: expected DreamSettings (or Settings), got {quote(settings)}")
    return settings


def _argument(name: str, value, check: Number):
    try:
        return check(value)
    except Exception as e:  # noqa: BLE001 - Invalid, or a comparison an odd type refuses
        raise ZoomdreamError(f"dream_image: {name}: {e}") from None


def _rgb(name: str, image) -> np.ndarray:
    image = np.asarray(image) if isinstance(image, np.ndarray) else image
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 \
            or 0 in image.shape:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ZoomdreamError(f"dream_image: {name}: expected an (H, W, 3) uint8 RGB array, got {got}")
    return image


def _mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) numbers in 0..1 matching the image, as float32; anything else is refused in one line."""
    m = mask if isinstance(mask, np.ndarray) else None
    if m is None or m.shape != tuple(shape) or not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        got = f"{m.shape} {m.dtype}" if m is not None else type(mask).__name__
        raise ZoomdreamError(f"dream_image: mask: expected an ({shape[0]}, {shape[1]}) array of numbers in 0..1 "
                             f"like the image, got {got}")
    m = m.astype(np.float32)
    bad = ~np.isfinite(m) | (m < 0) | (m > 1)
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0])
        raise ZoomdreamError(f"dream_image: mask: expected numbers in 0..1, got {float(m[y, x])} at (row {y}, "
                             f"column {x}) and {int(bad.sum()) - 1} more")
    return m
