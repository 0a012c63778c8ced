"""The colour lock: hand-computed statistics, strength 0 and 1, and stability over a feedback loop."""

import numpy as np
import pytest

from zoomdream import colour
from zoomdream.colour import colour_lock, colour_reference, colour_stats
from zoomdream.errors import ZoomdreamError
from zoomdream.motion import center_px, warp_affine, zoom

from conftest import DTYPES, assert_close, smooth_rgb


def test_public_names():
    for name in ["colour_stats", "colour_reference", "colour_lock"]:
        assert name in colour.__all__ and hasattr(colour, name), name


def stats_within(image, ref_stats, rel):
    mean, std = colour_stats(image)
    ref_mean, ref_std = ref_stats
    return bool(np.all(np.abs(mean - ref_mean) <= rel * ref_mean) and np.all(np.abs(std - ref_std) <= rel * ref_std))


def test_colour_stats_hand_computed():
    img = np.array([[[0, 10, 100], [20, 10, 200]]], np.uint8)  # (1, 2, 3)
    mean, std = colour_stats(img)
    np.testing.assert_allclose(mean, [10, 10, 150])
    np.testing.assert_allclose(std, [10, 0, 50])


@pytest.mark.parametrize("dtype", DTYPES)
def test_colour_lock_strength_0_identity_and_1_match(dtype):
    img = np.clip(smooth_rgb(64, 64, seed=3, mean=(100, 140, 120), std=(20, 30, 15)), 0, 255).astype(dtype)
    ref = colour_stats(smooth_rgb(64, 64, seed=4, mean=(130, 110, 125), std=(28, 22, 24)))
    assert_close(colour_lock(img, ref, strength=0.0), img)
    locked = colour_lock(img, ref, strength=1.0)
    assert locked.dtype == img.dtype and locked.shape == img.shape
    assert stats_within(locked, ref, rel=0.01)
    with pytest.raises(ZoomdreamError, match="strength"):
        colour_lock(img, ref, strength=1.5)


def wash_out(frame):
    """Zoom in slightly and fade toward grey: the drift that dulls a feedback loop."""
    M = zoom(1.02, center=center_px((frame.shape[1], frame.shape[0])))
    grey = np.full_like(frame, 128)
    return (0.95 * warp_affine(frame, M).astype(np.float32) + 0.05 * grey).round().astype(np.uint8)


def saturate(frame):
    """Boost contrast and push red up / blue down: the drift that blows colours out."""
    x = frame.astype(np.float32)
    x = (x - x.mean((0, 1))) * 1.06 + x.mean((0, 1)) + np.array([3.0, 0.0, -3.0])
    return np.clip(x, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("drift", [wash_out, saturate])
def test_colour_lock_holds_stats_over_feedback(drift):
    source = np.clip(smooth_rgb(48, 64, seed=5), 0, 255).astype(np.uint8)
    ref = colour_stats(source)
    free, locked = source, source
    for _ in range(100):
        free = drift(free)
        locked = colour_lock(drift(locked), ref, strength=0.5)
    assert not stats_within(free, ref, rel=0.10)
    assert stats_within(locked, ref, rel=0.10)


def test_full_colour_lock_matches_covariance_and_holds_the_palette():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (64, 64, 1))
    photo = np.clip(np.concatenate([150 + 40 * base, 80 + 30 * base, 50 + 20 * base + rng.normal(0, 5, (64, 64, 1))],
                                   axis=2), 0, 255).astype(np.uint8)  # browns: strongly correlated channels
    ref = colour_reference(photo)
    mean, cov = ref
    # A feedback loop that pushes red and green apart (the neon drift) plus a little blur.
    frame = photo.copy()
    for _ in range(60):
        x = frame.astype(np.float32)
        x[..., 0] += 0.1 * (x[..., 0] - x[..., 1])
        x[..., 1] -= 0.1 * (x[..., 0] - x[..., 1])
        frame = colour_lock(np.clip(x, 0, 255).astype(np.uint8), ref, 0.7)
    m, c = colour_reference(frame)
    corr = lambda k: k[0, 1] / np.sqrt(k[0, 0] * k[1, 1])  # noqa: E731
    assert abs(corr(c) - corr(cov)) < 0.1
    assert np.all(np.abs(m - mean) <= 0.1 * mean + 1)
    np.testing.assert_allclose(np.sqrt(np.diag(c)), np.sqrt(np.diag(cov)), rtol=0.1)
    full = colour_lock(np.clip(photo.astype(np.float32)[..., ::-1], 0, 255).astype(np.uint8), ref, 1.0)
    _, c_full = colour_reference(full)
    np.testing.assert_allclose(c_full, cov, rtol=0.05, atol=5)
    assert np.array_equal(colour_lock(photo, ref, 0.0), photo)
