"""The seed post's DeepDream, ported faithfully to TensorFlow 2 / Keras 3: the baseline.

The seed (the script of the original Keras DeepDream blog post, InceptionV3) is a
TF1-era Keras script. This port keeps every choice it makes and changes only the API:

* loss: for each layer, ``coeff * sum(square(act[:, b:-b, b:-b, :])) / prod(shape(act))``,
  summed over the layers in dict order; ``b = border = 2`` in the seed;
* ONE compiled function for the whole image, like its ``K.function([model_input],
  [loss, grads])``: a single ``tf.function`` over a (1, H, W, 3) batch with unknown
  spatial size, returning the loss and d(loss)/d(image) already divided by
  ``max(mean(|grad|), K.epsilon() = 1e-7)`` *inside*, as the seed does;
* the seed's numpy outer loop: ``scipy.ndimage.zoom(order=1)`` on the whole (1, H, W, 3)
  batch array, octave shapes ``int(dim / scale**i)`` smallest first, ``gradient_ascent``
  with the ``max_loss`` early stop checked *before* the update, ``x += step * grad``, and
  the detail re-injection exactly as its ``main()`` writes it;
* no jitter, no tiling, no clipping until the final ``deprocess`` (which truncates to
  uint8 like the seed's ``astype('uint8')``).

The image lives in the seed's range: InceptionV3's ``preprocess_input`` maps [0, 255] to
[-1, 1] (zoomdream calls it the "unit range"). For any other network the port takes a
``preprocess`` that maps the unit range to that network's input *inside* the compiled
function (zoomdream's ``Backbone.preprocess`` does exactly that), so ``step`` means the
same thing on every backbone.

Library use::

    from seed_reference import seed_dream
    out = seed_dream(image_uint8, (keras_model, {"mixed3": 0.5, "mixed4": 1.5}, preprocess),
                     step=0.01, num_octave=4, octave_scale=1.4, iterations=5, max_loss=10.0)

Script use::

    python benchmarks/seed_reference.py assets/coffee.jpg -o /tmp/seed.png [--model vgg16-hed]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import scipy.ndimage

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

EPSILON = 1e-7  # keras.backend.epsilon(), the seed's floor under the gradient normaliser


def _tf():
    from zoomdream.backbones.tf import tf  # quiet import: TF's C++ start-up lines go to /dev/null

    return tf()


# --------------------------------------------------------------------------- the compiled loss + gradient
class SeedNet:
    """The seed's ``K.function``: one compiled (loss, normalised gradient) of the whole image.

    Args:
        model: a Keras model whose layers ``layer_coeffs`` names.
        layer_coeffs: {layer name: coefficient}, in the order the loss sums them.
        preprocess: maps a (1, H, W, 3) float32 unit-range batch to the model input, inside
            the graph; None = identity (InceptionV3, the seed's network).
        border: activation cells dropped at each edge in the loss (the seed: 2).
    """

    def __init__(self, model, layer_coeffs: Mapping[str, float], preprocess: Callable | None = None,
                 border: int = 2):
        tf = _tf()
        import keras

        self.layer_coeffs = dict(layer_coeffs)
        self.border = int(border)
        names = list(self.layer_coeffs)
        coeffs = [float(self.layer_coeffs[n]) for n in names]
        # The seed reads layers[name].output of the full model; the graph from the input to
        # those outputs is what K.function runs (nothing past the deepest layer).
        self.features = keras.Model(model.input, [model.get_layer(n).output for n in names], name="seed_features")
        features, b = self.features, self.border

        def loss_and_gradients(x):  # x: (1, H, W, 3) float32 unit range
            with tf.GradientTape(watch_accessed_variables=False) as tape:  # K.gradients(loss, model_input)
                tape.watch(x)
                acts = features(preprocess(x) if preprocess is not None else x, training=False)  # learning phase 0
                if not isinstance(acts, (list, tuple)):
                    acts = [acts]
                loss = tf.constant(0.0, tf.float32)  # K.variable(0.)
                for coeff, act in zip(coeffs, acts):
                    act = tf.cast(act, tf.float32)
                    cropped = act[:, b:-b, b:-b, :] if b else act
                    loss += coeff * tf.reduce_sum(tf.square(cropped)) / tf.reduce_prod(tf.cast(tf.shape(act), tf.float32))
            grads = tape.gradient(loss, x)
            grads /= tf.maximum(tf.reduce_mean(tf.abs(grads)), EPSILON)
            return loss, grads

        # The seed's placeholder is (None, None, None, 3): one graph for every octave size.
        self.fn = tf.function(loss_and_gradients, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """``eval_loss_and_gradients(x)``: numpy in, (float loss, numpy gradient) out."""
        loss, grads = self.fn(x)
        return float(loss), grads.numpy()


_NETS: dict = {}


def _identity_of(fn) -> tuple:
    # Bound methods are new objects on every attribute access: key them by (instance, function).
    return (id(getattr(fn, "__self__", fn)), id(getattr(fn, "__func__", fn)))


def get_net(net, border: int = 2) -> SeedNet:
    """A :class:`SeedNet` from a SeedNet, a (model, layer_coeffs, preprocess) tuple, or a callable returning one.

    Tuples are compiled once and cached, so repeated dreams reuse one trace (as the seed's
    script builds its K.function once).
    """
    if isinstance(net, SeedNet):
        return net
    if callable(net) and not isinstance(net, tuple):
        net = net()
        if isinstance(net, SeedNet):
            return net
    model, coeffs, preprocess = (tuple(net) + (None,))[:3]
    key = (id(model), tuple(dict(coeffs).items()), _identity_of(preprocess) if preprocess is not None else None,
           int(border))
    if key not in _NETS:
        _NETS[key] = (SeedNet(model, coeffs, preprocess, border), model, preprocess)  # keep ids alive
    return _NETS[key][0]


# --------------------------------------------------------------------------- the seed's numpy loop
def preprocess_uint8(image_uint8: np.ndarray) -> np.ndarray:
    """``inception_v3.preprocess_input(np.expand_dims(img_to_array(img), 0))``: (1, H, W, 3) float32 in [-1, 1]."""
    x = np.expand_dims(np.asarray(image_uint8).astype(np.float32), axis=0)
    x /= 127.5
    x -= 1.0
    return x


def deprocess(image: np.ndarray) -> np.ndarray:
    """The seed's ``deprocess``: (1, H, W, 3) unit range -> (H, W, 3) uint8, clipped then truncated."""
    image = image.reshape((image.shape[1], image.shape[2], 3))
    image /= 2.0
    image += 0.5
    image *= 255.0
    return np.clip(image, 0, 255).astype("uint8")


def resize(image: np.ndarray, size) -> np.ndarray:
    """The seed's ``resize``: bilinear ``scipy.ndimage.zoom`` of the (1, H, W, 3) batch array."""
    image = np.copy(image)
    factors = (1, float(size[0]) / image.shape[1], float(size[1]) / image.shape[2], 1)
    return scipy.ndimage.zoom(image, factors, order=1)


def gradient_ascent(net: SeedNet, image: np.ndarray, iterations: int, step: float, max_loss: float | None = None,
                    history: list | None = None) -> np.ndarray:
    """The seed's ``gradient_ascent``: the loss is checked *before* the update it would stop."""
    for _ in range(iterations):
        loss_value, grad_values = net(image)
        if history is not None:
            history.append(loss_value)
        if max_loss is not None and loss_value > max_loss:
            break
        image += step * grad_values
    return image


def octave_shapes(input_shape, num_octave: int, octave_scale: float) -> list[tuple[int, ...]]:
    """The seed's ``all_shapes``: ``int(dim / scale**i)``, smallest first (no minimum-size clamp)."""
    all_shapes = [tuple(input_shape)]
    for i in range(1, num_octave):
        all_shapes.append(tuple(int(dim / (octave_scale ** i)) for dim in input_shape))
    return all_shapes[::-1]


def seed_dream(image_uint8: np.ndarray, net, *, step: float = 0.01, num_octave: int = 4, octave_scale: float = 1.4,
               iterations: int = 5, max_loss: float | None = 10.0, border: int = 2,
               history: list | None = None) -> np.ndarray:
    """The seed's ``main()`` on an (H, W, 3) uint8 RGB image; returns (H, W, 3) uint8.

    Args:
        net: a :class:`SeedNet`, a ``(keras_model, layer_coeffs, preprocess)`` tuple (compiled once
            and cached), or a callable returning either. ``preprocess`` maps the unit range [-1, 1]
            to the model's input (None for InceptionV3, whose input is the unit range).
        step, num_octave, octave_scale, iterations, max_loss: the seed's hyperparameters
            (``iterations`` is its ``max_iterations``).
        border: activation cells dropped at each edge in the loss (used when ``net`` is compiled here).
        history: if given, receives the loss of every gradient evaluation, in order.
    """
    net = get_net(net, border)
    image = preprocess_uint8(image_uint8)
    input_shape = image.shape[1:3]
    all_shapes = octave_shapes(input_shape, num_octave, octave_scale)
    original_image = np.copy(image)
    shrunk_image = resize(image, all_shapes[0])
    for shape in all_shapes:
        image = resize(image, shape)
        image = gradient_ascent(net, image, iterations=iterations, step=step, max_loss=max_loss, history=history)
        upscaled_image = resize(shrunk_image, shape)
        resized_image = resize(original_image, shape)
        lost_detail_image = resized_image - upscaled_image
        image += lost_detail_image
        shrunk_image = resize(original_image, shape)
    return deprocess(np.copy(image))


# --------------------------------------------------------------------------- script
def main(argv: list[str] | None = None) -> int:
    from _common import default_layers, parse_layers  # script-only helpers

    p = argparse.ArgumentParser(description="The seed post's DeepDream (a faithful TF2 port), on any zoomdream backbone.")
    p.add_argument("image", help="input image (any format PIL reads)")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.add_argument("--model", default="vgg16-hed",
                   help="zoomdream backbone name (default vgg16-hed, bundled offline; the seed's is inception_v3)")
    p.add_argument("--weights", default=None,
                   help="weights file, or 'random' (an untrained net: only for timing); default bundled/ImageNet")
    p.add_argument("--layers", default=None,
                   help="name=coeff,... (default: the seed's mixed2-5 on inception_v3, the default preset's on vgg16-hed)")
    p.add_argument("--step", type=float, default=0.01)
    p.add_argument("--octaves", type=int, default=4, help="the seed's num_octave")
    p.add_argument("--scale", type=float, default=1.4, help="the seed's octave scale")
    p.add_argument("--iterations", type=int, default=5, help="the seed's max_iterations")
    p.add_argument("--max-loss", default="auto",
                   help="early-stop loss per octave, or 'none'; auto = the seed's 10 on inception_v3, none otherwise "
                        "(VGG16-HED's loss starts near 70, so a limit of 10 would stop every octave before its first step)")
    p.add_argument("--border", type=int, default=2, help="activation cells dropped at each edge in the loss")
    args = p.parse_args(argv)

    from PIL import Image

    from zoomdream.backbones import load_backbone
    from zoomdream.errors import ZoomdreamError

    if args.max_loss == "auto":
        max_loss = 10.0 if args.model == "inception_v3" else None
    elif args.max_loss.lower() == "none":
        max_loss = None
    else:
        max_loss = float(args.max_loss)
    layers = parse_layers(args.layers) if args.layers else default_layers(args.model)
    try:
        _tf()
        # The seed is fp32 and runs the network as Keras builds it (BatchNormalization not folded).
        backbone = load_backbone(args.model, weights=args.weights, precision="fp32", fold=False)
    except ZoomdreamError as e:
        print(f"seed_reference: {e}", file=sys.stderr)
        if args.model != "vgg16-hed":
            print("seed_reference: offline, use --model vgg16-hed, or --weights random to time an untrained net",
                  file=sys.stderr)
        return 1
    with Image.open(args.image) as im:
        image = np.asarray(im.convert("RGB"), np.uint8)
    history: list = []
    t = time.perf_counter()
    out = seed_dream(image, (backbone.model, layers, backbone.preprocess), step=args.step, num_octave=args.octaves,
                     octave_scale=args.scale, iterations=args.iterations, max_loss=max_loss, border=args.border,
                     history=history)
    dt = time.perf_counter() - t
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(args.output)
    print(f"{args.output}: {out.shape[1]}x{out.shape[0]}, model {args.model} ({backbone.weights}), layers {layers}, "
          f"{len(history)} gradient evaluations, loss {history[0]:.4g} -> {history[-1]:.4g}, {dt:.1f} s "
          f"(first call, includes tracing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
