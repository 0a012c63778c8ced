"""Which settings change over time, and their value at every frame of one render.

The animated settings are those declared ``schedulable`` in :mod:`zoomdream.settings` (``ANIMATED`` is
derived from the declarations, plus the layer weights): each may be a number, a schedule string
or a keyframe map (:mod:`zoomdream.settings.schedule`); every other setting is constant. An
:class:`Animation` evaluates all of them for frames 0..n-1 up front and holds every value at
every frame to the setting's own declaration (the range a constant must be in; for layer
weights, that of a constant weight), so a NaN, an out-of-range value or an audio feature without
audio is refused, naming the setting and the first bad frame, before anything is created. The
render loops only look values up by frame index (a pure function of the frame, also in Ray
chunks) and hand the dream core one resolved :class:`~zoomdream.settings.DreamFrame` per frame.

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
from typing import Mapping

import numpy as np

from zoomdream import motion
from zoomdream import settings as S
from zoomdream.settings import schedule
from zoomdream.settings.values import LAYER_WEIGHT

__all__ = ["ANIMATED", "Animated", "Animation", "check_settings", "features_used", "carries", "dream_at",
           "uses_frame_count"]


@dataclass(frozen=True)
class Animated:
    """One setting that may change over time, as its declaration in ``settings.py`` says."""

    key: str  # settings key: "step", "zoom.zoom", "video.pan", ...
    flag: str  # its command-line flag ("" for a preset-only key)
    check: S.Number  # the range of one value (for a pair, of each of x and y)
    pair: bool = False  # two schedules (x, y)

    @property
    def section(self) -> str:
        return self.key.partition(".")[0] if "." in self.key else "dream"

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]

    @property
    def label(self) -> str:
        return f"{self.key} ({self.flag})" if self.flag else self.key


def _animated(key: str, spec: S.Spec) -> Animated:
    check = spec.check.base if isinstance(spec.check, S.Keyframed) else spec.check
    pair = isinstance(check, S.Pair)
    return Animated(key, spec.flags[0] if spec.flags else "", check.item if pair else check, pair)


def _is_layers(spec: S.Spec) -> bool:
    return isinstance(spec.check.base if isinstance(spec.check, S.Keyframed) else spec.check, S.Layers)


# Every schedulable setting but the layer weights (which are a mapping of schedules, below),
# derived from the declarations: a new schedulable setting is animated and range-checked by declaring it.
ANIMATED: dict[str, Animated] = {key: _animated(key, spec) for key, spec in S.declarations().items()
                                 if spec.schedulable and not _is_layers(spec)}
_CAMERA = ("zoom", "rotate", "pan", "center")
LAYERS_LABEL = "layers (--layers)"


def _keys_for(kind: str) -> list[Animated]:
    return [a for a in ANIMATED.values() if a.section in ("dream", kind)]


def _value(settings, a: Animated):
    section = settings.dream if a.section == "dream" else getattr(settings, a.section)
    return getattr(section, a.name)


def _label(a: Animated, flags: Mapping[str, str] | None = None) -> str:
    if flags is not None and a.key in flags:
        return flags[a.key]
    return a.label


def _curves(settings, kind: str, flags=None) -> list[tuple[Animated, tuple]]:
    """Parsed schedules of every animated setting of ``kind`` (raises naming the setting)."""
    out = []
    for a in _keys_for(kind):
        value = _value(settings, a)
        where = _label(a, flags)
        curves = schedule.parse_pair(value, where=where) if a.pair else (schedule.parse(value, where=where),)
        out.append((a, curves))
    return out


def _layer_curves(d, flags=None) -> dict[str, tuple[str, schedule.Curve]]:
    """The dream's layer weights: name -> (where, schedule)."""
    label = (flags or {}).get("layers", LAYERS_LABEL)
    out = {}
    for name, w in d.layers.items():
        where = f"{label} {name}"
        out[name] = (where, schedule.parse(w, where=where))
    return out


def _keyframed_layers(settings) -> dict[str, tuple[str, schedule.Curve]]:
    """``zoom.layers`` {frame: {layer: weight}} as one schedule per layer: smoothstep between keyframes,
    a layer missing at a keyframe weighs 0 there (so layers fade in and out); weights may be expressions."""
    keyframes = settings.zoom.layers
    if not keyframes:
        return {}
    names = dict.fromkeys(n for weights in keyframes.values() for n in weights)
    out = {}
    for name in names:
        where = f"zoom.layers {name}"
        out[name] = (where, schedule.parse({k: w.get(name, 0.0) for k, w in keyframes.items()}, where=where))
    return out


def _all_curves(settings, kind: str) -> list[schedule.Curve]:
    curves = [c for _, cs in _curves(settings, kind) for c in cs]
    curves += [c for _, c in _layer_curves(settings.dream).values()]
    if kind == "zoom":
        curves += [c for _, c in _keyframed_layers(settings).values()]
    return curves


def check_settings(settings, *, flags: Mapping[str, str] | None = None) -> None:
    """Parse every animated setting, so a bad schedule is refused before anything runs.

    ``flags`` maps settings keys to the flag that set them (errors then name the flag).
    """
    for kind in ("zoom", "video"):
        _curves(settings, kind, flags)
    _layer_curves(settings.dream, flags)
    _keyframed_layers(settings)


def features_used(settings, kind: str) -> set[str]:
    """The audio features any animated setting of a ``kind`` ("zoom"/"video") render refers to."""
    return set().union(*(c.features for c in _all_curves(settings, kind)))


def uses_frame_count(settings, kind: str) -> bool:
    """True when a schedule refers to ``n`` (then the frame count decides the frames' pixels)."""
    return any("n" in c.names for c in _all_curves(settings, kind))


def carries(settings) -> bool:
    """False only when the video blend is a constant 0 (nothing is carried between frames)."""
    curve = schedule.parse(settings.video.blend, where=ANIMATED["video.blend"].label)
    return curve.constant is None or curve.constant > 0


def _one_frame(frame: int) -> dict:
    """The names an expression may use at frame ``frame`` alone (24 fps, no audio, ``n`` = frame + 1)."""
    t = np.array([float(frame)])  # (1,)
    return {"t": t, "s": t / 24.0, "fps": np.float64(24.0), "n": np.float64(frame + 1)}


def dream_at(d: S.DreamSettings, frame: int = 0) -> S.DreamSettings:
    """``d`` with its animated values (step, layer weights) taken at ``frame``, as plain numbers.

    For a still or one ``dream_image`` call: no audio and 24 fps, so a schedule that uses an audio
    feature is refused; every value is held to its declaration (step 0..1, weights as constant ones).
    """
    env = _one_frame(frame)
    a = ANIMATED["step"]
    step = schedule.evaluate(schedule.parse(d.step, where=a.label), env, where=a.label, check=a.check.inside,
                             expected=a.check.what)[0]
    layers = {name: float(schedule.evaluate(c, env, where=where, check=LAYER_WEIGHT.inside,
                                            expected=LAYER_WEIGHT.what)[0])
              for name, (where, c) in _layer_curves(d).items()}
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
            axes = ("x", "y") if a.pair else ("",)
            cols = [schedule.evaluate(c, env, where=f"{a.label} {axis}".strip(), check=a.check.inside,
                                      expected=a.check.what) for c, axis in zip(curves, axes)]
            self.tables[a.key] = cols[0] if len(cols) == 1 else np.stack(cols, axis=1)
            self.constant[a.key] = all(c.constant is not None for c in curves)
        weight = LAYER_WEIGHT

        def weights(curves):
            return {name: schedule.evaluate(c, env, where=where, check=weight.inside, expected=weight.what)
                    for name, (where, c) in curves.items()}

        layer_curves = _layer_curves(settings.dream)
        self.layer_tables = weights(layer_curves)
        self.layers_animated = any(c.constant is None for _, c in layer_curves.values())
        self.layer_keyframes = weights(_keyframed_layers(settings)) if kind == "zoom" else {}
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
        j = min(i, self.n - 1)
        if self.layer_keyframes:  # zoom.layers keyframes win over the dream's layers
            return {name: float(v[j]) for name, v in self.layer_keyframes.items()}
        if not self.layers_animated:
            return None
        return {name: float(v[j]) for name, v in self.layer_tables.items()}

    def dream(self, i: int, base: S.DreamFrame) -> S.DreamFrame:
        """Frame i's dream: ``base`` (made once per render) with this frame's step."""
        return dataclasses.replace(base, step=self.step(i))

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
