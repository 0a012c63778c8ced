"""BatchNormalization folding: a graph rewrite that merges each inference-mode BN into its convolution.

Every BatchNormalization that directly follows a convolution becomes part of that
convolution's kernel and bias, and the BN layer a pass-through of the same name, so every
layer name still resolves. The features are the same up to float rounding; a dream step
gets 3-8 % faster in float32 and 15-20 % in bfloat16, where Keras's BatchNormalization
computes in float32 with a cast on either side. ``backbones.load_backbone`` folds every
network it builds unless asked not to.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["fold_batch_norm"]

# Keras is imported inside the functions: importing it pulls in TensorFlow, which only the
# commands that build a network should pay for.


@functools.cache
def _folded_batch_norm_class():
    import keras  # noqa: PLC0415

    class FoldedBatchNorm(keras.layers.Layer):
        """Where a BatchNormalization was: its scale and shift now live in the convolution before it."""

        def call(self, inputs, training=None, mask=None):  # the signature BatchNormalization is called with
            return inputs

    return FoldedBatchNorm


def _foldable(model) -> dict:
    """{batch-norm layer name: convolution layer name} for every BN that can be folded.

    A BN folds into the convolution feeding it when the convolution is a plain, depthwise
    or separable 2-D convolution in channels-last layout with no activation of its own,
    its output goes to that BN alone (and is not a model output), each layer is used once,
    and the BN normalises the channel axis with its moving statistics (not training=True).
    """
    import keras  # noqa: PLC0415

    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    pairs = {}
    for bn in model.layers:
        if type(bn) is not keras.layers.BatchNormalization or len(bn._inbound_nodes) != 1:
            continue
        axis = bn.axis if isinstance(bn.axis, int) else None
        node = bn._inbound_nodes[0]
        inputs = node.input_tensors
        if (len(inputs) != 1 or axis not in (-1, len(inputs[0].shape) - 1) or node.arguments.kwargs.get("training")
                or any(inputs[0] is t for t in model.outputs)):
            continue
        conv = inputs[0]._keras_history.operation
        if (type(conv) in convs and conv.data_format == "channels_last"
                and conv.activation in (None, keras.activations.linear)
                and len(conv._inbound_nodes) == 1 and len(conv._outbound_nodes) == 1):
            pairs[bn.name] = conv.name
    return pairs


def fold_batch_norm(model):
    """A copy of functional ``model`` with each foldable BatchNormalization merged into its convolution.

    For a BN after a convolution, ``BN(conv(x)) = conv'(x)`` with the kernel's output
    channels scaled by ``s = gamma / sqrt(moving_variance + epsilon)`` and bias
    ``beta - moving_mean * s`` (plus ``s`` times the convolution's own bias). The BN layer
    becomes a pass-through of the same name, so every layer name still resolves. Models
    with nothing to fold come back unchanged.

    Returns:
        (model, {BN layer name: convolution layer name} for each fold)
    """
    import keras  # noqa: PLC0415

    pairs = _foldable(model)
    if not pairs:
        return model, {}
    bn_of = {conv: bn for bn, conv in pairs.items()}
    folded_cls = _folded_batch_norm_class()

    def clone(layer):
        if layer.name in pairs:
            return folded_cls(name=layer.name, dtype=layer.dtype_policy)
        config = layer.get_config()
        if layer.name in bn_of:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for old in model.layers:
        if not old.weights or old.name in pairs:
            continue
        weights = old.get_weights()
        if old.name in bn_of:
            bn = model.get_layer(bn_of[old.name])
            mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
            gamma = bn.gamma.numpy() if bn.scale else np.ones_like(mean)
            beta = bn.beta.numpy() if bn.center else np.zeros_like(mean)
            s = gamma / np.sqrt(var + bn.epsilon)
            bias = beta - mean * s + (weights.pop() * s if old.use_bias else 0.0)
            kernel = weights.pop()  # the kernel that makes the output channels (pointwise for separable)
            # Depthwise kernels are (h, w, in, multiplier); output channel i * multiplier + m.
            kernel = kernel * s.reshape(kernel.shape[-2:] if isinstance(old, keras.layers.DepthwiseConv2D) else -1)
            weights += [kernel, bias]
        new.get_layer(old.name).set_weights([w.astype(np.float32) for w in weights])
    return new, pairs
