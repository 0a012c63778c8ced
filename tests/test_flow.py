"""Optical flow: direction convention, warping, occlusion, cuts, flicker, cache.

Goldens are hand-computed (STYLE 13a): np.roll gives a known constant motion, so the
backward flow's sign and the warp's result are known exactly.
"""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoomdream import flow
from zoomdream.errors import ZoomdreamError
from zoomdream.flow import (
    FLOW_METHODS,
    SCENE_CUT,
    FlickerMeter,
    FlowCache,
    added_flicker,
    compute_flow,
    occlusion_mask,
    scene_cut_score,
    warp,
)

# One per-dtype tolerance table (STYLE 14): (atol, rtol), in the array's own units.
# float16 is the FlowCache's storage type: 11 significant bits.
TOL = {np.dtype(np.uint8): (0, 0), np.dtype(np.float16): (1e-3, 2 ** -10), np.dtype(np.float32): (1e-4, 0)}
DTYPES = [np.uint8, np.float32]
MARGIN = 8  # px of border left out of "interior" checks
ASSETS = Path(__file__).resolve().parent.parent / "zoomdream" / "assets"


def assert_close(actual, expected, dtype=None):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol, rtol = TOL[np.dtype(dtype) if dtype is not None else actual.dtype]
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)


def texture(h, w, seed, sigma=2.0):
    """A seeded, smooth RGB uint8 texture: enough structure for flow, no aliasing."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), sigma)  # (h, w, 3) float32
    img = (img - img.min()) / (img.max() - img.min()) * 255.0
    return img.round().astype(np.uint8)


def constant_flow(h, w, dx, dy):
    f = np.empty((h, w, 2), np.float32)
    f[..., 0], f[..., 1] = dx, dy
    return f


def interior(a):
    return a[MARGIN:-MARGIN, MARGIN:-MARGIN]


def test_public_names():
    for name in ["FLOW_METHODS", "SCENE_CUT", "compute_flow", "warp", "occlusion_mask", "scene_cut_score",
                 "added_flicker", "FlickerMeter", "FlowCache"]:
        assert name in flow.__all__ and hasattr(flow, name), name
    assert FLOW_METHODS == ("dis", "farneback")


# ---------------------------------------------------------------------------------------
# compute_flow


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_constant_shift_backward_flow_sign(method):
    prev = texture(96, 128, seed=0)
    # content moves 3 px right and 2 px up: cur[y, x] = prev[y + 2, x - 3]
    cur = np.roll(prev, (-2, 3), axis=(0, 1))
    bwd = compute_flow(cur, prev, method=method)  # so prev[y + dy, x + dx] = cur[y, x]: (dx, dy) = (-3, +2)
    assert bwd.shape == (96, 128, 2) and bwd.dtype == np.float32
    assert np.median(interior(bwd[..., 0])) == pytest.approx(-3.0, abs=0.5)
    assert np.median(interior(bwd[..., 1])) == pytest.approx(2.0, abs=0.5)
    fwd = compute_flow(prev, cur, method=method)  # the opposite direction
    assert np.median(interior(fwd[..., 0])) == pytest.approx(3.0, abs=0.5)
    assert np.median(interior(fwd[..., 1])) == pytest.approx(-2.0, abs=0.5)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_compute_flow_is_deterministic_and_takes_float(method):
    prev = texture(64, 80, seed=1)
    cur = np.roll(prev, 2, axis=1)
    a = compute_flow(cur, prev, method=method)
    assert np.array_equal(a, compute_flow(cur, prev, method=method))
    assert np.array_equal(a, compute_flow(cur.astype(np.float32), prev.astype(np.float32), method=method))


def test_unknown_method_lists_valid_ones():
    img = texture(16, 16, seed=0)
    with pytest.raises(ZoomdreamError, match="dis, farneback"):
        compute_flow(img, img, method="raft")


# ---------------------------------------------------------------------------------------
# warp


@pytest.mark.parametrize("dtype", DTYPES)
def test_warp_constant_integer_flow_is_roll(dtype):
    img = (np.arange(12 * 10 * 3) % 251).reshape(12, 10, 3).astype(dtype)
    out = warp(img, constant_flow(12, 10, dx=2, dy=-1))
    # out[y, x] = img[y - 1, x + 2] = np.roll(img, (1, -2))[y, x]
    expected = np.roll(img, (1, -2), axis=(0, 1))
    assert out.dtype == img.dtype
    assert_close(out[1:, :-2], expected[1:, :-2])  # the rest samples the mirrored border


def test_warp_half_pixel_is_bilinear_and_keeps_shapes():
    img = np.array([[0.0, 10.0, 20.0, 30.0]] * 3, np.float32)  # (3, 4)
    out = warp(img, constant_flow(3, 4, dx=0.5, dy=0))
    assert_close(out[:, :3], np.array([[5.0, 15.0, 25.0]] * 3, np.float32))
    assert warp(img[..., None], constant_flow(3, 4, 0, 0)).shape == (3, 4, 1)
    assert warp(np.zeros((3, 4, 5), np.float32), constant_flow(3, 4, 0, 0)).shape == (3, 4, 5)


def test_warp_border_modes():
    img = np.array([[1, 2, 3]], np.uint8)
    f = constant_flow(1, 3, dx=1, dy=0)
    assert warp(img, f).tolist() == [[2, 3, 2]]  # mirror about the edge pixel
    assert warp(img, f, border="replicate").tolist() == [[2, 3, 3]]
    assert warp(img, f, border="constant").tolist() == [[2, 3, 0]]


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_warp_along_computed_flow_reproduces_current_frame(method):
    prev = texture(96, 128, seed=2)
    cur = np.roll(prev, (1, -4), axis=(0, 1))
    aligned = warp(prev, compute_flow(cur, prev, method=method))
    err = np.abs(interior(aligned).astype(np.float32) - interior(cur)).mean()
    unaligned = np.abs(interior(prev).astype(np.float32) - interior(cur)).mean()
    assert err < 2.0 and err < 0.1 * unaligned


# ---------------------------------------------------------------------------------------
# occlusion_mask


def test_occlusion_consistent_flows_are_reliable():
    mask = occlusion_mask(constant_flow(40, 50, -3, 2), constant_flow(40, 50, 3, -2))
    assert mask.shape == (40, 50) and mask.dtype == np.float32
    assert interior(mask).min() > 0.99


def test_occlusion_inconsistent_flows_are_rejected():
    bwd = constant_flow(40, 50, -3, 2)
    mask = occlusion_mask(bwd, bwd.copy())  # the forward flow should be -bwd
    assert mask.max() == 0.0


def test_occlusion_out_of_frame_targets_are_zero():
    mask = occlusion_mask(constant_flow(20, 30, 5, 0), constant_flow(20, 30, -5, 0))
    # x + 5 >= 29.5 for the last 5 columns: they came from outside the previous frame
    assert mask[:, 25:].max() == 0.0
    assert mask[:, :22].min() > 0.99  # the feather reaches ~3 px in, no further


def test_occlusion_threshold_scales_the_tolerance():
    bwd = constant_flow(20, 20, 0, 0)
    fwd = constant_flow(20, 20, 0.9, 0)  # |w + ŵ|² = 0.81; tolerance 0.01 * 0.81 + 0.5 = 0.5081
    assert occlusion_mask(bwd, fwd).max() == 0.0
    assert occlusion_mask(bwd, fwd, threshold=2.0).min() > 0.99  # tolerance 1.0162


def test_occlusion_edges_are_feathered():
    bwd = constant_flow(30, 30, 0, 0)
    fwd = constant_flow(30, 30, 0, 0)
    fwd[10:20, 10:20] = 5.0  # a disoccluded block
    mask = occlusion_mask(bwd, fwd)
    assert mask[10:20, 10:20].max() == 0.0
    assert 0.0 < mask[15, 9] < 0.9  # just outside the block: partly trusted, no hard seam
    assert mask[15, 4] > 0.99


# ---------------------------------------------------------------------------------------
# scene_cut_score


def test_scene_cut_synthetic():
    a = texture(144, 256, seed=3, sigma=6)
    panned = np.roll(a, 8, axis=1)
    other = texture(144, 256, seed=4, sigma=6)
    assert scene_cut_score(a, a) == pytest.approx(0.0, abs=1e-6)
    assert scene_cut_score(a, panned) < SCENE_CUT < scene_cut_score(a, other)


def load_rgb(name):
    return cv2.cvtColor(cv2.imread(str(ASSETS / name)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("shift", [4, 12, 24, 48])
def test_scene_cut_photo_pans_score_low(shift):
    cat = load_rgb("chelsea.jpg")  # (300, 451, 3)
    h, w = cat.shape[:2]
    assert scene_cut_score(cat[:, : w - shift], cat[:, shift:]) < SCENE_CUT / 2
    assert scene_cut_score(cat[: h - shift // 2], cat[shift // 2:]) < SCENE_CUT / 2


def test_scene_cut_photo_cuts_score_high():
    cat, cup = load_rgb("chelsea.jpg"), load_rgb("coffee.jpg")
    assert scene_cut_score(cat, cup) > SCENE_CUT
    # two parts of one photo: similar colours, different layout
    assert scene_cut_score(cat[:150, :220], cat[150:, 230:]) > SCENE_CUT
    assert scene_cut_score(cup[:200, :300], cup[200:, 300:]) > SCENE_CUT


def test_scene_cut_flat_frames():
    black, white = np.zeros((36, 64, 3), np.uint8), np.full((36, 64, 3), 255, np.uint8)
    assert scene_cut_score(black, black) == pytest.approx(0.0)
    assert scene_cut_score(black, white) > SCENE_CUT


# ---------------------------------------------------------------------------------------
# added_flicker and FlickerMeter


def test_added_flicker_hand_computed():
    src = np.full((8, 8, 3), 100, np.uint8)
    out_prev, out_cur = src, np.full((8, 8, 3), 110, np.uint8)
    zero, ones = constant_flow(8, 8, 0, 0), np.ones((8, 8), np.float32)
    assert added_flicker(out_prev, out_cur, src, src, zero, ones) == pytest.approx(10.0)
    assert math.isnan(added_flicker(out_prev, out_cur, src, src, zero, np.zeros((8, 8), np.float32)))


def test_added_flicker_zero_for_source_and_positive_for_noise():
    prev = texture(64, 80, seed=5)
    cur = np.roll(prev, (1, 2), axis=(0, 1))
    bwd, fwd = compute_flow(cur, prev), compute_flow(prev, cur)
    mask = occlusion_mask(bwd, fwd)
    assert added_flicker(prev, cur, prev, cur, bwd, mask) == 0.0
    rng = np.random.default_rng(6)
    noisy = np.clip(cur + rng.normal(0, 20, cur.shape), 0, 255).astype(np.uint8)
    assert added_flicker(prev, noisy, prev, cur, bwd, mask) > 5.0


def test_flicker_meter():
    meter = FlickerMeter()
    assert meter.count == 0 and math.isnan(meter.mean)
    src = np.full((4, 4, 3), 100, np.uint8)
    zero, ones = constant_flow(4, 4, 0, 0), np.ones((4, 4), np.float32)
    assert meter.add(src, src + 10, src, src, zero, ones) == pytest.approx(10.0)
    meter.add(src, src, src, src, zero, ones)  # 0 added
    meter.add(src, src + 50, src, src, zero, np.zeros((4, 4), np.float32))  # nothing reliable: not counted
    assert meter.count == 2 and meter.mean == pytest.approx(5.0)


# ---------------------------------------------------------------------------------------
# FlowCache


def test_flow_cache_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    bwd = rng.normal(0, 10, (12, 16, 2)).astype(np.float32)
    fwd = rng.normal(0, 10, (12, 16, 2)).astype(np.float32)
    cache = FlowCache(tmp_path, "clip.mp4|dis|16x12")
    assert cache.get(3) is None
    cache.put(3, bwd, fwd)
    got = FlowCache(tmp_path, "clip.mp4|dis|16x12").get(3)  # a new instance: it persists
    assert got is not None
    assert got[0].dtype == np.float32
    assert_close(got[0], bwd, dtype=np.float16)  # float16 storage: ~1/2048 relative
    assert_close(got[1], fwd, dtype=np.float16)
    assert cache.get(4) is None
    assert json.loads((cache.folder / "key.json").read_text()) == {"format": 2, "key": "clip.mp4|dis|16x12"}
    assert not list(tmp_path.rglob("*.partial*"))  # atomic writes leave no temp files


def test_flow_cache_keys_do_not_share_entries(tmp_path):
    a = FlowCache(tmp_path, "clip.mp4|dis|16x12")
    b = FlowCache(tmp_path, "clip.mp4|farneback|16x12")
    a.put(1, constant_flow(12, 16, 1, 1), constant_flow(12, 16, -1, -1))
    assert b.get(1) is None
    b.put(1, constant_flow(12, 16, 2, 2), constant_flow(12, 16, -2, -2))
    assert a.get(1)[0][0, 0, 0] == 1.0 and b.get(1)[0][0, 0, 0] == 2.0


def test_flow_cache_damaged_entry_is_a_miss(tmp_path):
    cache = FlowCache(tmp_path, "k")
    (cache.folder / "000002.npy").write_bytes(b"not a numpy file")
    assert cache.get(2) is None
