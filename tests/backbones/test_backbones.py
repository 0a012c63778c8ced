"""Backbones: bundled weights really load, ImageNet backbones load files or fail clearly, never random."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zoomdream import backbones, objectives
from zoomdream.dream import dream, to_uint8, to_unit
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import presets


def test_bundled_vgg16_has_the_hed_weights(backbone):
    import h5py

    with h5py.File(backbones.hed_weights_path(), "r") as f:
        kernel = np.asarray(f["block3/layers/conv2d_1/vars/0"])
    np.testing.assert_array_equal(backbone.model.get_layer("block3_conv2").get_weights()[0], kernel)
    assert backbone.weights.startswith("bundled")


def test_registry_has_the_required_backbones():
    assert {"vgg16-hed", "inception_v3", "vgg19", "resnet50", "inception_resnet_v2", "mobilenet_v2",
            "xception"} <= set(backbones.REGISTRY)
    with pytest.raises(ZoomdreamError, match="unknown model 'alexnet'.*vgg16-hed"):
        backbones.get_spec("alexnet")


def test_static_layer_table_matches_the_network(backbone):
    static = backbones.list_layers("vgg16-hed")
    built = [row for row in backbone.layer_table() if row[0] in {r[0] for r in static}]
    assert [(n, c) for n, _, c in static] == [(n, c) for n, _, c in built]


def test_feature_model_stops_at_the_deepest_layer(backbone):
    fm = backbone.feature_model(("block3_conv1",))
    names = {layer.name for layer in fm.layers}
    assert "block3_conv1" in names and "block4_conv1" not in names and "block5_conv3" not in names


@pytest.fixture(scope="module")
def inception_random():
    return backbones.load_backbone("inception_v3", weights=backbones.RANDOM, precision="fp32")


def _randomise_batch_norm(model, seed: int = 0) -> None:
    """Give every BatchNormalization non-trivial statistics (fresh ones are mean 0, variance 1: a near no-op)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = ([rng.uniform(0.5, 1.5, c)] if layer.scale else []) + \
                     ([rng.normal(0, 0.3, c)] if layer.center else []) + [rng.normal(0, 0.5, c), rng.uniform(0.2, 3, c)]
            layer.set_weights([v.astype(np.float32) for v in values])


@pytest.fixture(scope="module")
def inception_keras():
    """InceptionV3 as Keras builds it (BatchNormalization unfolded), random weights and BN statistics.

    Built here, not through load_backbone, so the statistics set below never reach its cache.
    """
    import keras

    from zoomdream.backbones.tf import tf

    tf()
    model = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(None, None, 3))
    _randomise_batch_norm(model)
    return model


def _features(model, names, x):
    import keras

    return [np.asarray(a, np.float32) for a in keras.Model(model.input, [model.get_layer(n).output for n in names])(x)]


FOLDED_CONVS = ("plain", "biased", "depthwise", "separable")


def _every_kind_of_convolution():
    """A model with each foldable convolution kind, and two BNs that must not fold."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(3)
    x = keras.Input((None, None, 3))
    a = L.BatchNormalization(name="bn_plain")(L.Conv2D(8, 3, padding="same", use_bias=False, name="plain")(x))
    a = L.ReLU(name="relu")(a)
    b = L.BatchNormalization(scale=False, name="bn_biased")(L.Conv2D(8, 1, name="biased")(a))
    c = L.BatchNormalization(name="bn_depthwise")(L.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                                                    name="depthwise")(b))
    d = L.BatchNormalization(name="bn_separable")(L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2,
                                                                    name="separable")(c))
    shared = L.Conv2D(6, 1, name="shared")(d)  # its output also feeds the sum: must not fold
    e = L.Add(name="sum")([L.BatchNormalization(name="bn_shared")(shared), shared])
    f = L.BatchNormalization(name="bn_activated")(L.Conv2D(4, 1, activation="relu", name="activated")(e))
    model = keras.Model(x, f)
    _randomise_batch_norm(model)
    return model


def test_batch_norm_folds_into_each_kind_of_convolution():
    model = _every_kind_of_convolution()
    folded, pairs = backbones.fold_batch_norm(model)

    kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
    assert pairs == {f"bn_{c}": c for c in FOLDED_CONVS}
    assert {k for k, v in kinds.items() if v == "BatchNormalization"} == {"bn_shared", "bn_activated"}
    assert folded.get_layer("plain").use_bias and folded.get_layer("biased").use_bias
    probe = np.random.default_rng(4).normal(size=(2, 9, 11, 3)).astype(np.float32)
    # Every layer's output, except the folded convolutions' (they now emit what their BN did).
    names = [layer.name for layer in model.layers[1:] if layer.name not in FOLDED_CONVS]
    for before, after in zip(_features(model, names, probe), _features(folded, names, probe)):
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())


def test_batch_norm_folding_keeps_mixed_precision():
    with backbones.dtype_policy("bf16"):
        model = _every_kind_of_convolution()
    folded, pairs = backbones.fold_batch_norm(model)
    assert len(pairs) == 4
    assert {layer.dtype_policy.name for layer in folded.layers[1:]} == {"mixed_bfloat16"}
    probe = np.random.default_rng(7).normal(size=(1, 12, 10, 3)).astype(np.float32)
    (before,), (after,) = _features(model, ["bn_activated"], probe), _features(folded, ["bn_activated"], probe)
    assert folded(probe).dtype.name == "bfloat16"
    assert np.abs(after - before).max() <= 3e-2 * np.abs(before).max()  # bf16 rounding, not a different net


def test_batch_norm_outside_inference_or_on_an_output_is_not_folded():
    import keras
    from keras import layers as L

    x = keras.Input((None, None, 3))
    conv = L.Conv2D(2, 1)(x)
    assert backbones.fold_batch_norm(keras.Model(x, [conv, L.BatchNormalization()(conv)]))[1] == {}
    assert backbones.fold_batch_norm(keras.Model(x, L.BatchNormalization()(L.Conv2D(2, 1)(x), training=True)))[1] == {}
    y = keras.Input((5, 5, 3))
    not_channels = L.BatchNormalization(axis=1)(L.Conv2D(2, 1)(y))  # normalises rows, not channels
    assert backbones.fold_batch_norm(keras.Model(y, not_channels))[1] == {}


def test_a_folded_convolution_still_dreams_on_its_own_output(inception_keras):
    folded, pairs = backbones.fold_batch_norm(inception_keras)
    bb = backbones.Backbone(backbones.get_spec("inception_v3"), folded, "fp32", backbones.RANDOM, folded=pairs,
                            unfolded_model=inception_keras)
    probe = np.random.default_rng(8).uniform(-1, 1, (1, 99, 101, 3)).astype(np.float32)
    conv, mixed = bb.feature_model(("conv2d_5",)), bb.feature_model(("mixed2",))
    (want_conv, want_mixed) = _features(inception_keras, ["conv2d_5", "mixed2"], probe)
    np.testing.assert_array_equal(np.asarray(conv(probe)), want_conv)  # the convolution's own output, not its BN's
    assert np.abs(np.asarray(mixed(probe)) - want_mixed).max() <= 1e-5 * np.abs(want_mixed).max()
    assert type(mixed.get_layer("batch_normalization_5")).__name__ == "FoldedBatchNorm"  # the fast path
    with pytest.raises(ZoomdreamError, match="has no layer 'conv2d_5x'"):
        bb.feature_model(("conv2d_5x",))


def test_inception_v3_folds_all_its_batch_norms_and_keeps_its_features(inception_keras, inception_random):
    import keras

    folded, pairs = backbones.fold_batch_norm(inception_keras)
    assert len(pairs) == len(inception_random.folded) == 94
    for model in (folded, inception_random.model):
        assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    names = ["mixed0", "mixed2", "mixed5", "mixed10"]
    assert [layer.name for layer in folded.layers][1:] == [layer.name for layer in inception_keras.layers][1:]
    probe = np.random.default_rng(5).uniform(-1, 1, (1, 107, 131, 3)).astype(np.float32)
    for before, after in zip(_features(inception_keras, names, probe), _features(folded, names, probe)):
        assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()


def test_every_listed_layer_of_every_backbone_exists():
    for name, spec in backbones.REGISTRY.items():
        have = {row[0] for row in backbones.list_layers(name)}
        assert set(spec.interesting) <= have, (name, sorted(set(spec.interesting) - have))


def test_inception_classic_dreams_with_inception_v3(inception_random, sample_path):
    import cv2

    settings = presets.load_preset("inception-classic").dream
    # Random weights give huge activations: without max_loss the seed's loop runs every step.
    settings = dataclasses.replace(settings, precision="fp32", max_loss=None)
    img = cv2.resize(cv2.cvtColor(cv2.imread(str(sample_path)), cv2.COLOR_BGR2RGB), (160, 120))
    obj = objectives.from_settings(settings, inception_random)
    hist = []
    out = to_uint8(dream(to_unit(img), obj, inception_random, settings, history=hist))
    assert out.shape == img.shape and not np.array_equal(out, img)
    assert len(hist) == 2 * settings.iterations  # 2 octaves fit above InceptionV3's 75 px minimum
    assert hist[4] > hist[0] and hist[9] > hist[5]  # the seed's loss climbs within each octave
    assert "mixed10" in inception_random.layer_names() and "mixed0" in inception_random.layer_names()


def test_weights_file_round_trip(tmp_path, inception_keras):
    path = tmp_path / "inception_v3_notop.weights.h5"
    inception_keras.save_weights(path)  # Keras's own layout, as a user's file has it
    exact = backbones.load_backbone("inception_v3", weights=str(path), precision="fp32", fold=False)
    assert exact.weights == str(path)
    for a, b in zip(inception_keras.layers, exact.model.layers):
        assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights())), a.name
    folded = backbones.load_backbone("inception_v3", weights=str(path), precision="fp32")
    assert len(folded.folded) == 94
    probe = np.random.default_rng(6).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    (before,), (after,) = _features(exact.model, ["mixed3"], probe), _features(folded.model, ["mixed3"], probe)
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()


def test_cli_dreams_with_a_saved_weights_file(tmp_path, capsys, inception_keras):
    from zoomdream.cli import main
    from zoomdream.media.images import save_image

    weights = tmp_path / "inception_v3_notop.weights.h5"
    inception_keras.save_weights(weights)
    src = tmp_path / "in.png"
    save_image(src, (np.random.default_rng(1).random((80, 96, 3)) * 255).astype(np.uint8))
    out = tmp_path / "out.png"
    code = main(["image", str(src), "-o", str(out), "--preset", "inception-classic", "--weights", str(weights),
                 "--octaves", "2", "--iterations", "2", "--precision", "fp32", "-q"])
    assert code == 0, capsys.readouterr().err
    assert out.exists() and (tmp_path / "out.png.yaml").exists()


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "notweights.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(ZoomdreamError, match="notweights.h5: not a weights file for inception_v3"):
        backbones.load_backbone("inception_v3", weights=str(bad), precision="fp32")
    with pytest.raises(ZoomdreamError, match="weights file not found"):
        backbones.load_backbone("inception_v3", weights=str(tmp_path / "missing.h5"))


def test_offline_and_uncached_names_the_three_ways_out(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: [Errno -2] Name or service not known")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ZoomdreamError) as info:
        backbones.load_backbone("inception_v3", precision="fp32")
    msg = str(info.value)
    assert "inception_v3" in msg and "--weights FILE" in msg and "--model vgg16-hed" in msg and "internet" in msg
    assert "\n" not in msg


def test_offline_error_through_the_cli_is_exit_2(tmp_path, monkeypatch, capsys, sample_path):
    from keras.src.utils import file_utils

    from zoomdream.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: (_ for _ in ()).throw(Exception("offline")))
    out = tmp_path / "o.png"
    code = main(["image", str(sample_path), "-o", str(out), "--model", "xception", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert "xception" in err[0] and not out.exists()


@pytest.mark.parametrize(("fast_bf16", "gpu", "model", "want"), [
    (False, False, None, "fp32"),                  # no native bfloat16: fp32 whatever the network
    (False, True, "vgg16-hed", "fp32"),
    (True, False, None, "bf16"),                   # native bfloat16, no network named: the hardware decides
    (True, False, "vgg16-hed", "bf16"),
    (True, False, "efficientnet-lite0", "fp32"),   # depthwise convolutions are slower in bfloat16 on a CPU
    (True, True, "efficientnet-lite0", "measured"),  # on a GPU: measured per network
])
def test_precision_auto_follows_the_hardware_and_the_network(monkeypatch, fast_bf16, gpu, model, want):
    monkeypatch.setattr(backbones, "supports_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(backbones, "has_gpu", lambda: gpu)
    measured = []
    monkeypatch.setattr(backbones, "measured_precision", lambda spec: measured.append(spec.name) or "measured")
    spec = None if model is None else backbones.get_spec(model)
    assert backbones.resolve_precision("auto", spec) == want
    assert measured == ([model] if want == "measured" else [])
    assert backbones.resolve_precision("fp32", spec) == "fp32" and backbones.resolve_precision("bf16", spec) == "bf16"


def test_an_unknown_precision_is_refused():
    with pytest.raises(ZoomdreamError):
        backbones.resolve_precision("fp8")


def test_precision_auto_on_a_gpu_is_measured_once_and_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOMDREAM_CACHE", str(tmp_path))
    monkeypatch.setattr(backbones, "has_gpu", lambda: True)
    monkeypatch.setattr(backbones, "supports_fast_bf16", lambda: True)
    timed = []

    def seconds(spec, precision):
        timed.append(precision)
        return {"fp32": 1.0, "bf16": 2.0}[precision]  # here bfloat16 is the slower one

    monkeypatch.setattr(backbones, "step_seconds", seconds)
    spec = backbones.get_spec("vgg16-hed")  # bf16_on_cpu: the CPU rule alone would say bf16
    assert backbones.resolve_precision("auto", spec) == "fp32"
    assert sorted(timed) == ["bf16", "fp32"]
    assert backbones.resolve_precision("auto", spec) == "fp32" and len(timed) == 2  # remembered
    assert "fp32" in (tmp_path / "precision.json").read_text()
    assert backbones.resolve_precision("bf16", spec) == "bf16"  # an explicit choice is never second-guessed


def test_a_precision_probe_runs_on_this_machine():
    seconds = backbones.step_seconds(backbones.get_spec("efficientnet-lite0"), "fp32", side=64)
    assert 0 < seconds < 60
