"""Motion matrices and the one-warp resample (values over time are schedules: test_schedule.py).

Goldens are hand-computed on tiny images (STYLE 13a). Exact-grid moves use
``interpolation="nearest"`` where interpolation must not enter the comparison.
"""

import math

import numpy as np
import pytest

from zoomdream import motion
from zoomdream.errors import ZoomdreamError
from zoomdream.motion import (
    REFERENCE_FPS,
    Motion,
    center_px,
    frame_matrix,
    rotate,
    translate,
    warp_affine,
    zoom,
)

from conftest import DTYPES, assert_close, smooth_rgb


def apply(M, x, y):
    """Where matrix ``M`` sends the point (x, y)."""
    px, py, one = M @ np.array([x, y, 1.0])
    assert one == pytest.approx(1.0)
    return px, py


def test_public_names():
    for name in ["REFERENCE_FPS", "zoom", "rotate", "translate", "center_px", "frame_matrix", "warp_affine",
                 "Motion"]:
        assert name in motion.__all__ and hasattr(motion, name), name
    assert REFERENCE_FPS == 24


# ---------------------------------------------------------------------------------------
# Matrices and the warp


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotate_90_is_rot90(dtype):
    img = np.arange(16, dtype=dtype).reshape(4, 4)
    M = rotate(90, center=center_px((4, 4)))  # centre (1.5, 1.5)
    out = warp_affine(img, M, interpolation="nearest")
    # positive = counter-clockwise on screen: the top-right pixel ends up top-left
    assert out[0, 0] == img[0, 3]
    assert_close(out, np.rot90(img))


def test_rotate_90_lanczos_uint8_exact_on_grid():
    # a 90° turn lands every sample on the grid, so even Lanczos must be exact
    img = (np.arange(36, dtype=np.uint8) * 7).reshape(6, 6)
    assert_close(warp_affine(img, rotate(90, center=center_px((6, 6)))), np.rot90(img))


def test_rotate_sign_points():
    # a point right of the centre moves up (y grows down): counter-clockwise on screen
    assert apply(rotate(90, center=(10, 10)), 11, 10) == pytest.approx((10, 9))
    assert apply(rotate(-90, center=(10, 10)), 11, 10) == pytest.approx((10, 11))


def test_translate_moves_content_right_and_down():
    img = np.zeros((5, 6), np.uint8)
    img[2, 2] = 255
    out = warp_affine(img, translate(1, 2), interpolation="nearest")
    assert out[4, 3] == 255 and out[2, 2] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_pan_one_pixel_camera_right_moves_content_left(dtype):
    img = (np.arange(30, dtype=np.float32) * 3).reshape(5, 6).astype(dtype)
    M = frame_matrix(Motion(pan=(1.0, 0.0)), fps=REFERENCE_FPS, size=(6, 5))
    assert apply(M, 4, 2) == pytest.approx((3, 2))
    out = warp_affine(img, M, interpolation="nearest")
    assert_close(out[:, :-1], img[:, 1:])  # the last column is mirrored border
    out = warp_affine(img, M)  # Lanczos on an integer shift is exact too
    assert_close(out[:, :-1], img[:, 1:])


def test_zoom_2_doubles_a_centred_square():
    img = np.zeros((8, 8), np.uint8)
    img[3:5, 3:5] = 255  # 2x2 square; the frame centre is (3.5, 3.5)
    M = frame_matrix(Motion(zoom=2.0), fps=REFERENCE_FPS, size=(8, 8))
    # the square's left edge x = 2.5 goes to 3.5 + 2 * (2.5 - 3.5) = 1.5
    assert apply(M, 2.5, 2.5) == pytest.approx((1.5, 1.5))
    out = warp_affine(img, M, interpolation="nearest")
    expected = np.zeros((8, 8), np.uint8)
    expected[2:6, 2:6] = 255  # 4x4, still centred
    assert_close(out, expected)


def test_zoom_out_keeps_the_centre_fixed():
    assert apply(zoom(0.5, center=(4, 6)), 4, 6) == pytest.approx((4, 6))
    assert apply(zoom(0.5, center=(4, 6)), 8, 6) == pytest.approx((6, 6))


def test_composition_order_right_to_left():
    # zoom(2) @ translate(1, 0): shift first, then zoom about the origin
    assert apply(zoom(2) @ translate(1, 0), 0, 0) == pytest.approx((2, 0))
    assert apply(translate(1, 0) @ zoom(2), 0, 0) == pytest.approx((1, 0))
    # one warp through the product equals two warps applied right-to-left (exact grid moves)
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    A, B = rotate(90, center=(3.5, 3.5)), translate(0, 2)
    two = warp_affine(warp_affine(img, B, interpolation="nearest"), A, interpolation="nearest")
    one = warp_affine(img, A @ B, interpolation="nearest")
    assert_close(one[:, 2:], two[:, 2:])  # columns 0-1 come from the mirrored border


def test_fps_invariance_composite_motion():
    m = Motion(zoom=1.03, rotate=2.0, pan=(3.0, -1.5), center=(0.3, 0.6))
    size = (320, 180)
    m24 = frame_matrix(m, fps=24, size=size)
    m48 = frame_matrix(m, fps=48, size=size)
    m12 = frame_matrix(m, fps=12, size=size)
    np.testing.assert_allclose(m48 @ m48, m24, atol=1e-9)
    np.testing.assert_allclose(m24 @ m24, m12, atol=1e-9)
    # 5 frames at 60 fps last as long as 1 frame at 12 fps
    np.testing.assert_allclose(np.linalg.matrix_power(frame_matrix(m, fps=60, size=size), 5), m12, atol=1e-9)


def test_fps_rescaling_rules_per_component():
    size = (101, 101)  # centre (50, 50)
    # zoom: exponential
    M = frame_matrix(Motion(zoom=1.21), fps=48, size=size)
    assert M[0, 0] == pytest.approx(1.1) and M[1, 1] == pytest.approx(1.1) and M[0, 1] == pytest.approx(0)
    # rotate: linear
    M = frame_matrix(Motion(rotate=30.0), fps=12, size=size)
    assert math.degrees(math.atan2(-M[1, 0], M[0, 0])) == pytest.approx(60.0)
    # pan: linear
    M = frame_matrix(Motion(pan=(4.0, -2.0)), fps=48, size=size)
    np.testing.assert_allclose(M, translate(-2.0, 1.0), atol=1e-12)


def test_frame_matrix_at_reference_is_the_plain_composition():
    m = Motion(zoom=1.05, rotate=-1.0, pan=(2.0, 1.0), center=(0.25, 0.75))
    c = center_px((200, 100), (0.25, 0.75))
    assert c == (49.5, 74.5)
    expected = translate(-2.0, -1.0) @ rotate(-1.0, center=c) @ zoom(1.05, center=c)
    np.testing.assert_allclose(frame_matrix(m, fps=24, size=(200, 100)), expected, atol=1e-12)


def test_warp_affine_reflect_border_has_no_black():
    rng = np.random.default_rng(1)
    img = rng.integers(180, 256, size=(48, 64, 3), dtype=np.uint8)
    M = rotate(10, center=center_px((64, 48))) @ zoom(0.8, center=center_px((64, 48)))
    out = warp_affine(img, M)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert out.min() > 100  # a constant border would leave black wedges (0)


def test_warp_affine_keeps_float32_and_many_channels():
    img = smooth_rgb(16, 20, seed=2)
    stack = np.concatenate([img, img[..., ::-1]], axis=2)  # (16, 20, 6): more than OpenCV's 4 for Lanczos
    M = rotate(7, center=(9.5, 7.5))
    out = warp_affine(stack, M)
    assert out.dtype == np.float32 and out.shape == stack.shape
    assert_close(out[..., 3:], warp_affine(img[..., ::-1].copy(), M))
    grey = warp_affine(img[..., :1], M)
    assert grey.shape == (16, 20, 1)


def test_bad_inputs_are_user_errors():
    with pytest.raises(ZoomdreamError, match="lanczos"):
        warp_affine(np.zeros((4, 4), np.uint8), np.eye(3), interpolation="bicubic-ish")
    with pytest.raises(ZoomdreamError, match="zoom"):
        zoom(0.0)
    with pytest.raises(ZoomdreamError, match="pan"):
        Motion(pan=(1.0,))
    with pytest.raises(ZoomdreamError, match="fps"):
        frame_matrix(Motion(), fps=0, size=(4, 4))
