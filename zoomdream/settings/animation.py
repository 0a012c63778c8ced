"""Which settings change over time, and their value at every frame of one render.

The animated settings (``ANIMATED``) may be numbers, schedule strings or keyframe maps
(:mod:`zoomdream.settings.schedule`); every other setting is constant. An :class:`Animation` evaluates
all of them for frames 0..n-1 up front, so a NaN, an out-of-range value or an audio feature
without audio is refused before anything is rendered, and the render loops only look values
up by frame index (a pure function of the frame, also in Ray chunks).

- zoom: the camera (``zoom.zoom``, ``zoom.rotate``, ``zoom.pan``, ``zoom.center``, per frame at
  24 fps as always), dream strength ``step``, the layer weights (``layers`` values, or the
  ``zoom.layers`` keyframes, which win) and ``zoom.colour_lock``.
- video: the same dream values, ``video.blend``, ``video.colour_lock`` (toward each source frame's
  own colours) and a camera ``video.zoom``/``rotate``/``pan``/``center``. In a video the camera is
  ABSOLUTE, not a rate: frame i of the source is shown zoomed by ``video.zoom`` at frame i
  (1 = as shot), rotated by ``video.rotate`` degrees and with the camera moved ``video.pan`` px,
  before flow and dreaming, so the carried dream follows the moved picture.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from zoomdream import motion
from zoomdream.settings import schedule

__all__ = ["ANIMATED", "Animation", "check_settings", "features_used", "carries", "still_dream",
           "uses_frame_count"]


@dataclass(frozen=True)
class Animated:
    """One setting that may change over time."""

    section: str  # "dream", "zoom" or "video"
    name: str  # field name in that section
    flag: str  # command-line flag
    pair: bool = False  # two schedules (x, y)
    check: Callable[[float], bool] | None = None
    expected: str = ""

    @property
    def key(self) -> str:
        return self.name if self.section == "dream" else f"{self.section}.{self.name}"


def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


def _unit(v):
    return 0.0 <= v <= 1.0


_CAMERA = ("zoom", "rotate", "pan", "center")
ANIMATED: dict[str, Animated] = {a.key: a for a in (
    Animated("dream", "step", "--step", check=_non_negative, expected="a step >= 0"),
    Animated("zoom", "zoom", "--zoom", check=_positive, expected="a zoom factor > 0"),
    Animated("zoom", "rotate", "--rotate"),
    Animated("zoom", "pan", "--pan", pair=True),
    Animated("zoom", "center", "--center", pair=True, check=_unit, expected="a fraction in 0..1"),
    Animated("zoom", "colour_lock", "--colour-lock", check=_unit, expected="a strength in 0..1"),
    Animated("video", "blend", "--blend", check=_unit, expected="a blend in 0..1"),
    Animated("video", "colour_lock", "--colour-lock", check=_unit, expected="a strength in 0..1"),
    Animated("video", "zoom", "--zoom", check=_positive, expected="a zoom factor > 0"),
    Animated("video", "rotate", "--rotate"),
    Animated("video", "pan", "--pan", pair=True),
    Animated("video", "center", "--center", pair=True, check=_unit, expected="a fraction in 0..1"),
)}
LAYER_WEIGHTS = "layers"  # the dream's layer weights: each may be a schedule


def _keys_for(kind: str) -> list[Animated]:
    return [a for a in ANIMATED.values() if a.section in ("dream", kind)]


def _value(settings, a: Animated):
    section = settings.dream if a.section == "dream" else getattr(settings, a.section)
    return getattr(section, a.name)


def _label(a: Animated, flags: Mapping[str, str] | None = None) -> str:
    if flags is not None:
        return flags.get(a.key, a.key)
    return f"{a.key} ({a.flag})"


def _curves(settings, kind: str, flags=None) -> list[tuple[Animated, tuple]]:
    """Parsed schedules of every animated setting of ``kind`` (raises naming the setting)."""
    out = []
    for a in _keys_for(kind):
        value = _value(settings, a)
        where = _label(a, flags)
        curves = schedule.parse_pair(value, where=where) if a.pair else (schedule.parse(value, where=where),)
        out.append((a, curves))
    return out


def _layer_curves(settings, flags=None) -> dict[str, schedule.Curve]:
    where = (flags or {}).get(LAYER_WEIGHTS, "layers (--layers)")
    return {name: schedule.parse(w, where=f"{where} {name}") for name, w in settings.dream.layers.items()}


def check_settings(settings, *, flags: Mapping[str, str] | None = None) -> None:
    """Parse every animated setting, so a bad schedule is refused before anything runs.

    ``flags`` maps settings keys to the flag that set them (errors then name the flag).
    """
    for kind in ("zoom", "video"):
        _curves(settings, kind, flags)
    _layer_curves(settings, flags)


def features_used(settings, kind: str) -> set[str]:
    """The audio features any animated setting of a ``kind`` ("zoom"/"video") render refers to."""
    used = set()
    for _, curves in _curves(settings, kind):
        for c in curves:
            used |= c.features
    for c in _layer_curves(settings).values():
        used |= c.features
    return used


def uses_frame_count(settings, kind: str) -> bool:
    """True when a schedule refers to ``n`` (then the frame count decides the frames' pixels)."""
    curves = [c for _, cs in _curves(settings, kind) for c in cs] + list(_layer_curves(settings).values())
    return any("n" in c.names for c in curves)


def carries(settings) -> bool:
    """False only when the video blend is a constant 0 (nothing is carried between frames)."""
    curve = schedule.parse(settings.video.blend, where="video.blend (--blend)")
    return curve.constant is None or curve.constant > 0


def still_dream(d):
    """``d`` (DreamSettings) with its animated values taken at frame 0, for a still image.

    A still has no audio and no frames after the first: a schedule that uses an audio feature is refused.
    """
    env = schedule.frame_variables(1, 24.0)
    step = schedule.evaluate(schedule.parse(d.step, where="step (--step)"), env, where="step (--step)",
                             check=_non_negative, expected="a step >= 0")[0]
    layers = {name: float(schedule.evaluate(schedule.parse(w, where=f"layers {name}"), env,
                                            where=f"layers {name} (--layers)")[0])
              for name, w in d.layers.items()}
    return dataclasses.replace(d, step=float(step), layers=layers)


class Animation:
    """Every animated value of one render, at frames 0..n-1, checked up front.

    ``kind`` is "zoom" or "video"; ``features`` maps audio feature names to (n,) arrays (None
    without audio). Values are looked up by frame index; beyond ``n`` the last frame's values hold.
    """

    def __init__(self, settings, *, kind: str, n: int, fps: float, features: Mapping[str, np.ndarray] | None = None):
        assert kind in ("zoom", "video"), kind
        self.kind, self.n = kind, n
        env = schedule.frame_variables(n, fps, features)
        self.tables: dict[str, np.ndarray] = {}  # key -> (n,) or (n, 2) float64
        self.constant: dict[str, bool] = {}
        for a, curves in _curves(settings, kind):
            cols = [schedule.evaluate(c, env, where=_label(a), check=a.check, expected=a.expected) for c in curves]
            self.tables[a.key] = cols[0] if len(cols) == 1 else np.stack(cols, axis=1)
            self.constant[a.key] = all(c.constant is not None for c in curves)
        layer_curves = _layer_curves(settings)
        self.layer_tables = {name: schedule.evaluate(c, env, where=f"layers {name} (--layers)")
                             for name, c in layer_curves.items()}
        self.layers_animated = any(c.constant is None for c in layer_curves.values())
        self.layer_keyframes = None
        if kind == "zoom" and settings.zoom.layers:  # {frame: {layer: weight}} keyframes (smoothstep) win
            self.layer_keyframes = motion.Schedule(settings.zoom.layers)
        camera = [f"video.{c}" for c in _CAMERA]
        self.camera_moves = kind == "video" and not all(
            self.constant[k] and np.all(self.tables[k][0] == _STILL[k]) for k in camera)

    def _at(self, key: str, i: int):
        row = self.tables[key][min(i, self.n - 1)]
        return float(row) if np.ndim(row) == 0 else (float(row[0]), float(row[1]))

    def step(self, i: int) -> float:
        return self._at("step", i)

    def blend(self, i: int) -> float:
        return self._at("video.blend", i)

    def colour_lock(self, i: int) -> float:
        return self._at(f"{self.kind}.colour_lock", i)

    def layers(self, i: int) -> dict[str, float] | None:
        """The layer weights at frame i, or None when they never change (the objective's own weights)."""
        if self.layer_keyframes is not None:
            return self.layer_keyframes.value_at(i)
        if not self.layers_animated:
            return None
        j = min(i, self.n - 1)
        return {name: float(v[j]) for name, v in self.layer_tables.items()}

    def constant_layers(self) -> dict[str, float]:
        """Layer weights at frame 0: what the objective is built with."""
        return {name: float(v[0]) for name, v in self.layer_tables.items()}

    def motion(self, i: int):
        """The camera at frame i as a :class:`~zoomdream.motion.Motion` (zoom: per frame; video: absolute)."""
        k = self.kind
        return motion.Motion(zoom=self._at(f"{k}.zoom", i), rotate=self._at(f"{k}.rotate", i),
                      pan=self._at(f"{k}.pan", i), center=self._at(f"{k}.center", i))

    def camera_matrix(self, i: int, size: tuple[int, int]) -> np.ndarray:
        """Video: the absolute camera at frame i, ``translate(-pan) @ rotate(c) @ zoom(c)``; 3x3 float64.

        Convention: ``size`` is (width, height) px; source -> destination, as ``motion.warp_affine`` takes it.
        """
        m = self.motion(i)
        c = motion.center_px(size, m.center)
        return motion.translate(-m.pan[0], -m.pan[1]) @ motion.rotate(m.rotate, c) @ motion.zoom(m.zoom, c)

    def camera_digest(self) -> str:
        """A short hash of the video camera's values (flow fields depend on them)."""
        h = hashlib.sha256()
        for c in _CAMERA:
            h.update(np.ascontiguousarray(self.tables[f"video.{c}"]).tobytes())
        return h.hexdigest()[:16]


_STILL = {"video.zoom": 1.0, "video.rotate": 0.0, "video.pan": (0.0, 0.0), "video.center": (0.5, 0.5)}
