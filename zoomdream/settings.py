"""Settings: frozen dataclasses, one comment per field (unit and effect).

Layers apply in order: defaults (here) → preset YAML → command-line flags. Nothing
mutates a settings object; ``dataclasses.replace`` (via :func:`merge`) makes new ones.
A preset file is the YAML form of :class:`Settings`: top-level dream keys, plus a
``video:`` and a ``zoom:`` section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_MODEL = "efficientnet-lite0"
PRECISIONS = ("auto", "fp32", "bf16")
GRAD_NORMS = ("mean_abs", "std")
MAX_GRAD_LEVELS = 8  # Laplacian bands: 8 halvings take a 4K frame's gradient down to ~15 px
MAX_GRAD_BLUR = 8.0  # px; a wider blur leaves only the coarsest shapes to dream
FLOW_METHODS = ("dis", "farneback")


@dataclass(frozen=True)
class DreamSettings:
    """What one still dream does (the seed's octave algorithm and its knobs)."""

    model: str = DEFAULT_MODEL  # backbone name from the registry (`zoomdream layers` lists them)
    weights: str | None = None  # weights file for the backbone; None = bundled or Keras cache/download
    layers: Mapping[str, float] = field(default_factory=lambda: {"block5c_expand_activation": 1.0})  # layer -> weight in the loss
    channels: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # layer -> only these channels count
    guide: str | None = None  # guide image: maximise the match to its features (on the objective's deepest layer)
    guide_weight: float = 1.0  # weight of the guide term when layers are also given
    octaves: int = 4  # number of scales, smallest processed first (clamped to what the backbone accepts)
    octave_scale: float = 1.4  # size ratio between consecutive octaves
    iterations: int = 10  # gradient-ascent steps per octave
    step: float = 0.01  # step size, in units of the [-1, 1] image range, applied to the normalised gradient
    max_loss: float | None = None  # an octave stops early once the loss exceeds this (None = never)
    border: int = 0  # activation cells dropped at each edge of a layer in the loss (the seed uses 2)
    grad_norm: str = "mean_abs"  # gradient normalisation: "mean_abs" (the seed) or "std"
    grad_levels: int = 4  # Laplacian-pyramid bands of the gradient each scaled to unit spread (0 = off): no hatching
    grad_blur: float = 0.7  # Gaussian blur of the gradient after that, sigma in px (0 = off): removes the finest hatch
    clip: bool = True  # keep the image in range after every step (the seed clips only at the end)
    jitter: int = 32  # max random roll in pixels per step, undone after, so no fixed grid shows
    tile: int = 512  # tile side in pixels; larger frames are dreamed in overlapping feathered tiles
    precision: str = "auto"  # compute precision: fp32, bf16, or auto (whichever runs this backbone faster here)
    seed: int = 0  # all randomness (jitter) derives from (seed, frame index, octave)
    max_size: int | None = None  # inputs larger than this (longer side, px) are downscaled first


@dataclass(frozen=True)
class VideoSettings:
    """How consecutive video frames are tied together."""

    blend: float = 0.5  # 0..1: share of the previous frame's flow-warped dream delta carried into this frame
    flow: str = "dis"  # optical flow: "dis" (fast, default) or "farneback"
    iterations_per_frame: int = 2  # steps per octave for frames that carry a dream (the first frame uses `iterations`)
    occlusion: float = 1.0  # forward-backward flow check strictness (higher tolerates more); 0 disables the mask
    scene_cut: float = 0.5  # scene-cut score above which the carried dream is reset (1 disables)


@dataclass(frozen=True)
class ZoomSettings:
    """The infinite-zoom motion. Motion values are per frame at 24 fps (REFERENCE_FPS), or keyframe maps."""

    zoom: Any = 1.02  # zoom factor per frame at 24 fps (>1 moves in); or {frame: value} keyframes
    rotate: Any = 0.0  # degrees per frame at 24 fps, positive = counter-clockwise; or keyframes
    pan: Any = (0.0, 0.0)  # camera movement (x, y) in px per frame at 24 fps; or keyframes
    center: Any = (0.5, 0.5)  # zoom/rotation centre as a fraction of (width, height); or keyframes
    layers: Any = None  # optional {frame: {layer: weight}} keyframes that override the dream layers over time
    iterations_per_frame: int = 3  # steps per octave for frames after the first (which uses `iterations`)
    octaves_per_frame: int = 1  # octaves for frames after the first: the feedback loop is the pyramid
    colour_lock: float = 0.7  # 0..1: pull each frame's colour statistics toward the source photo's
    dream_every: int = 1  # dream every Nth frame; frames in between are pure motion
    fps: float = 24.0  # output frame rate
    frames: int = 72  # number of frames to render
    size: tuple[int, int] | None = None  # output (width, height); None = the photo's size (after max_size)
    pingpong: bool = False  # append the frames in reverse for a seamless back-and-forth loop


@dataclass(frozen=True)
class Settings:
    """A whole preset: a description, the dream, and the video and zoom sections."""

    description: str = ""  # one line, shown by `zoomdream presets`
    dream: DreamSettings = field(default_factory=DreamSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    zoom: ZoomSettings = field(default_factory=ZoomSettings)


SECTIONS = {"video": VideoSettings, "zoom": ZoomSettings}


def merge(base: Settings, overrides: Mapping[str, Any]) -> Settings:
    """Return ``base`` with ``overrides`` applied; keys are dream fields or ``video.x`` / ``zoom.x``.

    None values mean "not given" and are skipped, so argparse defaults of None pass through.
    """
    dream, sections = {}, {name: {} for name in SECTIONS}
    top = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.rpartition(".")
        if section in SECTIONS:
            sections[section][name] = value
        elif key == "description":
            top[key] = value
        else:
            dream[key] = value
    return dataclasses.replace(
        base,
        dream=dataclasses.replace(base.dream, **dream),
        video=dataclasses.replace(base.video, **sections["video"]),
        zoom=dataclasses.replace(base.zoom, **sections["zoom"]),
        **top,
    )


def to_dict(settings: Settings) -> dict:
    """The settings as plain YAML-ready data (the preset format)."""

    def plain(v):
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    out = {"description": settings.description}
    for f in dataclasses.fields(DreamSettings):
        out[f.name] = plain(getattr(settings.dream, f.name))
    for name in SECTIONS:
        section = getattr(settings, name)
        out[name] = {f.name: plain(getattr(section, f.name)) for f in dataclasses.fields(section)}
    return out
