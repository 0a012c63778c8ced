"""Objectives: what "more" means when the dream climbs the gradient.

An :class:`Objective` is a weighted sum of terms, combined with ``+`` and ``*``
(lucid style), so the seed's dict ``{mixed3: 0.5, mixed4: 1.5}`` is
``0.5 * layer("mixed3") + 1.5 * layer("mixed4")``. Terms:

* ``layer(name, channels=None, border=0)``: the seed's loss, the sum of squared
  activations with ``border`` cells dropped at each edge, divided by the size of the
  whole activation (only the picked channels count when ``channels`` is given);
* ``guide(name, features)``: the guided dreaming of the original DeepDream notebook:
  each position's activation vector is pulled toward the guide image's best-matching
  feature vector (loss = mean over positions of the max dot product with the guide).

The *structure* of an objective (its terms) decides what the compiled gradient
function computes; the *weights* are fed in as a tensor, so a schedule that changes
layer weights every frame never retraces the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from zoomdream.backbones.tf import tf as _tf
from zoomdream.errors import ZoomdreamError

__all__ = ["Term", "Objective", "layer", "guide", "guide_features", "from_settings"]


@dataclass(frozen=True, eq=False)
class Term:
    kind: str  # "layer" or "guide"
    layer: str
    channels: tuple[int, ...] | None = None
    border: int = 0
    features: np.ndarray | None = None  # guide: (M, C) float32 feature vectors of the guide image

    @property
    def key(self) -> tuple:
        return (self.kind, self.layer, self.channels, self.border, None if self.features is None else id(self.features))


class Objective:
    """A weighted sum of :class:`Term`; immutable, composable with ``+`` and ``*``."""

    def __init__(self, terms: Sequence[Term], weights: Sequence[float]):
        assert len(terms) == len(weights)
        self.terms = tuple(terms)
        self.weights = tuple(float(w) for w in weights)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms, self.weights + other.weights)

    def __mul__(self, k: float) -> "Objective":
        return Objective(self.terms, [k * w for w in self.weights])

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __repr__(self) -> str:
        parts = [f"{w:g}*{t.kind}({t.layer}{'' if t.channels is None else f', {list(t.channels)}'})"
                 for t, w in zip(self.terms, self.weights)]
        return " + ".join(parts) or "Objective()"

    @property
    def structure(self) -> tuple:
        """What the compiled function depends on (not the weights)."""
        return tuple(t.key for t in self.terms)

    def layers(self) -> tuple[str, ...]:
        """The distinct layers the terms read, in first-use order."""
        return tuple(dict.fromkeys(t.layer for t in self.terms))

    def with_weights(self, weights: Mapping[str, float]) -> "Objective":
        """Same structure, layer-term weights taken from ``weights`` (missing layers get 0)."""
        return Objective(self.terms, [weights.get(t.layer, 0.0) if t.kind == "layer" else w
                                      for t, w in zip(self.terms, self.weights)])

    def weight_tensor(self):
        return _tf().constant(self.weights, dtype="float32")

    def losses(self, acts: Mapping[str, object]):
        """Per-term losses, a float32 vector of len(terms); traced inside the compiled step."""
        tf = _tf()
        out = []
        for t in self.terms:
            a = tf.cast(acts[t.layer], tf.float32)  # (1, h, w, c); bf16 activations summed in float32
            if t.kind == "layer":
                size = tf.cast(tf.size(a), tf.float32)
                if t.channels is not None:
                    a = tf.gather(a, list(t.channels), axis=-1)
                if t.border:
                    b = t.border
                    a = a[:, b:-b, b:-b, :]
                out.append(tf.reduce_sum(tf.square(a)) / size)
            else:
                x = tf.reshape(a, (-1, a.shape[-1]))  # (N, C)
                y = tf.constant(t.features)  # (M, C)
                out.append(tf.reduce_mean(tf.reduce_max(tf.matmul(x, y, transpose_b=True), axis=1)))
        return tf.stack(out)  # (T,)


def layer(name: str, channels: Sequence[int] | None = None, border: int = 0) -> Objective:
    """The seed's layer objective (squared activations), optionally restricted to channels."""
    return Objective([Term("layer", name, None if channels is None else tuple(int(c) for c in channels), int(border))],
                     [1.0])


def guide(name: str, features: np.ndarray) -> Objective:
    """Guided dreaming on layer ``name`` toward guide ``features`` of shape (M, C)."""
    return Objective([Term("guide", name, features=np.asarray(features, np.float32))], [1.0])


def guide_features(backbone, image_uint8: np.ndarray, layer_name: str, max_side: int = 224) -> np.ndarray:
    """Feature vectors (M, C) of a guide image on ``layer_name``, the image shrunk to ``max_side``."""
    import cv2  # noqa: PLC0415

    tf = _tf()
    h, w = image_uint8.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(backbone.min_size, round(w * s)), max(backbone.min_size, round(h * s)))
    img = cv2.resize(image_uint8, size, interpolation=cv2.INTER_AREA)  # (h', w', 3) uint8
    x = tf.constant(img[None].astype(np.float32) / 127.5 - 1.0)  # (1, h', w', 3) unit range
    act = backbone.feature_model((layer_name,))(backbone.preprocess(x), training=False)
    act = tf.cast(act, tf.float32)
    return tf.reshape(act, (-1, act.shape[-1])).numpy()  # (M, C)


def from_settings(dream, backbone, guide_image: np.ndarray | None = None) -> Objective:
    """Build the objective a :class:`~zoomdream.settings.DreamSettings` describes, checking layers and channels."""
    known = set(backbone.layer_names())
    obj = None
    for name, weight in dream.layers.items():
        if name not in known:
            backbone.channels(name)  # raises the "no layer" error with suggestions
        chans = dream.channels.get(name)
        if chans is not None:
            n = backbone.channels(name)
            bad = [c for c in chans if not 0 <= c < n]
            if bad:
                raise ZoomdreamError(f"channels {bad} out of range for layer {name} ({n} channels: 0..{n - 1})")
        term = float(weight) * layer(name, chans, dream.border)
        obj = term if obj is None else obj + term
    if guide_image is not None:
        deepest = _deepest(backbone, list(dream.layers) or [backbone.spec.interesting[-1]])
        g = dream.guide_weight * guide(deepest, guide_features(backbone, guide_image, deepest))
        obj = g if obj is None else obj + g
    if obj is None:
        raise ZoomdreamError("the objective is empty: give at least one layer (or a guide image)")
    return obj


def _deepest(backbone, names: Sequence[str]) -> str:
    order = {n: i for i, n in enumerate(backbone.layer_names())}
    return max(names, key=lambda n: order.get(n, -1))
