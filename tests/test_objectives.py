"""Objectives: composition with + and *, re-weighting without a new structure, hand-computed losses, from_settings."""

from types import SimpleNamespace

import numpy as np
import pytest

from zoomdream import objectives
from zoomdream.backbones.tf import tf as _tf
from zoomdream.errors import ZoomdreamError
from zoomdream.objectives import Objective, from_settings, guide, layer
from zoomdream.settings import DreamSettings


def test_sum_and_scaling_compose_terms_and_weights():
    obj = 0.5 * layer("mixed3") + layer("mixed4") * 1.5
    assert isinstance(obj, Objective)
    assert [t.layer for t in obj.terms] == ["mixed3", "mixed4"]
    assert obj.weights == (0.5, 1.5)
    assert (-obj).weights == (-0.5, -1.5) and (2 * obj).weights == (1.0, 3.0)
    assert obj.layers() == ("mixed3", "mixed4")
    assert (obj + layer("mixed3")).layers() == ("mixed3", "mixed4")  # distinct layers, first-use order
    assert repr(obj) == "0.5*layer(mixed3) + 1.5*layer(mixed4)"


def test_structure_ignores_weights_but_not_channels_or_border():
    a = layer("l1") + layer("l2")
    assert (3 * a).structure == a.structure == (0.1 * layer("l1") + 7 * layer("l2")).structure
    assert layer("l1", channels=[2, 5]).structure != layer("l1").structure
    assert layer("l1", border=1).structure != layer("l1").structure
    assert layer("l1", channels=np.array([2, 5])).terms[0].channels == (2, 5)  # ints, hashable


def test_with_weights_keeps_the_structure_zeroes_missing_layers_and_keeps_guides():
    features = np.ones((4, 3), np.float32)
    obj = layer("a") + 2.0 * layer("b") + 0.3 * guide("b", features)
    re = obj.with_weights({"b": 5.0})
    assert re.structure == obj.structure
    assert re.weights == (0.0, 5.0, 0.3)
    assert obj.weights == (1.0, 2.0, 0.3)  # the original is unchanged


def test_losses_hand_computed():
    tf = _tf()
    act = tf.constant(np.arange(1, 17, dtype=np.float32).reshape(1, 2, 2, 4))  # (1, 2, 2, 4): 1..16
    values = act.numpy()
    obj = layer("x") + layer("x", channels=[1]) + layer("x", border=0)
    got = obj.losses({"x": act}).numpy()
    full = float((values ** 2).sum() / values.size)
    only_1 = float((values[..., 1] ** 2).sum() / values.size)  # still divided by the whole size
    np.testing.assert_allclose(got, [full, only_1, full], rtol=1e-6)
    feats = np.array([[1, 0, 0, 0], [0, 0, 0, 1]], np.float32)  # (M=2, C=4)
    g = guide("x", feats).losses({"x": act}).numpy()
    best = np.maximum(values.reshape(-1, 4)[:, 0], values.reshape(-1, 4)[:, 3])  # max dot product per position
    np.testing.assert_allclose(g, [best.mean()], rtol=1e-6)


def test_border_drops_the_edge_cells():
    tf = _tf()
    values = np.zeros((1, 4, 4, 1), np.float32)
    values[0, 1:3, 1:3, 0] = 2.0  # the inner 2x2 cells
    values[0, 0, 0, 0] = 100.0  # an edge cell the border leaves out
    loss = layer("x", border=1).losses({"x": tf.constant(values)}).numpy()
    np.testing.assert_allclose(loss, [4 * 4.0 / 16], rtol=1e-6)


def test_from_settings_builds_the_weighted_sum(backbone):
    d = DreamSettings(layers={"block3_conv1": 0.5, "block2_conv2": 2.0}, channels={"block3_conv1": [0, 3]}, border=1)
    obj = from_settings(d, backbone)
    assert obj.weights == (0.5, 2.0)
    assert [(t.layer, t.channels, t.border) for t in obj.terms] == [("block3_conv1", (0, 3), 1),
                                                                     ("block2_conv2", None, 1)]
    assert obj.structure == (0.5 * layer("block3_conv1", [0, 3], 1) + 2.0 * layer("block2_conv2", None, 1)).structure


def test_from_settings_refusals_name_the_layer(backbone):
    with pytest.raises(ZoomdreamError, match="no layer 'block9_conv1'"):
        from_settings(DreamSettings(layers={"block9_conv1": 1.0}), backbone)
    with pytest.raises(ZoomdreamError, match=r"channels \[256\] out of range for layer block3_conv1 \(256 channels"):
        from_settings(DreamSettings(layers={"block3_conv1": 1.0}, channels={"block3_conv1": [1, 256]}), backbone)
    # DreamSettings itself refuses an empty layer map; from_settings still guards any caller's settings.
    empty = SimpleNamespace(layers={}, channels={}, border=0, guide_weight=1.0)
    with pytest.raises(ZoomdreamError, match="objective is empty"):
        from_settings(empty, backbone)


def test_from_settings_with_a_guide_adds_a_guide_term_on_the_deepest_layer(backbone, photo):
    d = DreamSettings(layers={"block2_conv2": 1.0, "block3_conv1": 1.0}, guide_weight=0.25)
    obj = from_settings(d, backbone, photo)
    kinds = [(t.kind, t.layer) for t in obj.terms]
    assert kinds == [("layer", "block2_conv2"), ("layer", "block3_conv1"), ("guide", "block3_conv1")]
    assert obj.weights[-1] == 0.25
    features = obj.terms[-1].features
    assert features.ndim == 2 and features.shape[1] == backbone.channels("block3_conv1")
    np.testing.assert_allclose(features, objectives.guide_features(backbone, photo, "block3_conv1"), rtol=1e-5)
