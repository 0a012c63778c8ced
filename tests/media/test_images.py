"""Photo loading and saving: every odd file becomes upright RGB uint8, or one clear error.

Fixtures are built with Pillow/cv2 in tmp_path: high bit depths, orientations, alpha, colour
spaces, bombs, truncated and fake files, odd names. Expected pixels come from numpy, not from the
Pillow calls under test.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, features

from zoomdream import fileio
from zoomdream.errors import ZoomdreamError
from zoomdream.media import images
from zoomdream.media.images import (
    ALPHA_BACKGROUND,
    MAX_PIXELS,
    fit_size,
    image_header,
    load_image,
    load_png_fast,
    resize_max,
    save_image,
    save_png_fast,
)

from conftest import assert_close

JPEG_TOLERANCE = 8  # mean abs difference (0..255) allowed after a quality-95 JPEG round trip

# An asymmetric 4 (high) x 6 (wide) pattern: every pixel distinct, so any wrong flip shows.
PATTERN = (np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3)  # (4, 6, 3) uint8

# EXIF Orientation -> how the stored pixels must be turned to be upright, from the EXIF
# spec's "where row 0 / column 0 are" table, written with numpy only.
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # row 0 top, col 0 right
    3: lambda a: a[::-1, ::-1],  # row 0 bottom, col 0 right
    4: lambda a: a[::-1],  # row 0 bottom, col 0 left
    5: lambda a: a.transpose(1, 0, 2),  # row 0 left, col 0 top
    6: lambda a: np.rot90(a, -1),  # row 0 right, col 0 top: turn clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # row 0 right, col 0 bottom
    8: lambda a: np.rot90(a, 1),  # row 0 left, col 0 bottom: turn counter-clockwise
}


def _save_with_orientation(path, array, orientation, **kw):
    exif = Image.Exif()
    exif[images.ORIENTATION_TAG] = orientation
    Image.fromarray(array).save(path, exif=exif, **kw)
    return path


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A gray PNG whose IHDR claims width x height but whose IDAT holds one row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    idat = zlib.compress(b"\x00" * (width + 1), 9)  # filter byte + one row of zeros
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if fileio.PARTIAL_TAG in n)


# ---------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_exactly(tmp_path, orientation):
    path = _save_with_orientation(tmp_path / f"o{orientation}.png", PATTERN, orientation)
    got = load_image(path)
    expected = UPRIGHT[orientation](PATTERN)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_keeps_pixels_as_stored(tmp_path, orientation):
    path = _save_with_orientation(tmp_path / "bad.png", PATTERN, orientation)
    np.testing.assert_array_equal(load_image(path), PATTERN)


def test_exif6_jpeg_turns_landscape_into_portrait(tmp_path):
    yy, xx = np.mgrid[0:60, 0:100]
    src = np.dstack([xx * 2.5, yy * 4, 255 - xx * 2.5]).astype(np.uint8)  # (60, 100, 3) smooth
    path = _save_with_orientation(tmp_path / "exif6.jpg", src, 6, quality=95)
    got = load_image(path)
    assert got.shape == (100, 60, 3)
    assert np.abs(got.astype(int) - np.rot90(src, -1)).mean() < JPEG_TOLERANCE


def test_corrupt_exif_keeps_pixels_as_stored_with_a_note(tmp_path, caplog):
    Image.fromarray(PATTERN).save(tmp_path / "ok.jpg", quality=100)
    # An APP1 Exif block whose IFD claims 50 entries but holds one: Pillow warns "Corrupt EXIF data".
    tiff = b"II*\x00" + struct.pack("<IH", 8, 50) + b"\x12\x01\x03\x00"
    app1 = b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\x00\x00" + tiff
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "bad.jpg").write_bytes(data[:2] + app1 + data[2:])
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        got = load_image(tmp_path / "bad.jpg")  # an escaping warning would fail the test
    np.testing.assert_array_equal(got, load_image(tmp_path / "ok.jpg"))
    assert "bad.jpg: Corrupt EXIF data" in caplog.text


# ---------------------------------------------------------------- pixel modes
def test_palette_png_gives_its_colours(tmp_path):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    src = colours[np.arange(24).reshape(4, 6) % 4]  # (4, 6, 3), four colours
    Image.fromarray(src).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "pal.png")
    with Image.open(tmp_path / "pal.png") as im:
        assert im.mode == "P"
    np.testing.assert_array_equal(load_image(tmp_path / "pal.png"), src)


def test_palette_transparency_becomes_background(tmp_path):
    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    pal.save(tmp_path / "t.png", transparency=1)
    got = load_image(tmp_path / "t.png")
    assert got.shape == (2, 4, 3)
    np.testing.assert_array_equal(got[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(got[0, 1], ALPHA_BACKGROUND)


def test_gray8_is_replicated_to_three_equal_channels(tmp_path):
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10  # (4, 6)
    Image.fromarray(gray).save(tmp_path / "g8.png")
    got = load_image(tmp_path / "g8.png")
    assert got.shape == (4, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], gray)


def test_one_bit_image_is_black_and_white(tmp_path):
    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / "bw.png")
    got = load_image(tmp_path / "bw.png")
    np.testing.assert_array_equal(got[:, :, 0], np.eye(4) * 255)


RAMP16 = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (60, 1))  # (60, 256) uint16


def _write_ramp(path, kind):
    if kind == "png16":
        cv2.imwrite(str(path), RAMP16)  # Pillow reads it as I;16
    elif kind == "tif16":
        cv2.imwrite(str(path), RAMP16)
    elif kind == "int32":
        Image.fromarray(RAMP16.astype(np.int32)).save(path)  # mode I
    elif kind == "float01":
        Image.fromarray(RAMP16.astype(np.float32) / 65535).save(path)  # mode F in [0, 1]
    elif kind == "float255":
        Image.fromarray(RAMP16.astype(np.float32) / 257).save(path)  # mode F in [0, 255]


@pytest.mark.parametrize("kind, name", [("png16", "g16.png"), ("tif16", "g16.tif"), ("int32", "i32.tif"),
                                        ("float01", "f01.tif"), ("float255", "f255.tif")])
def test_high_depth_gray_ramp_is_scaled_not_clipped(tmp_path, kind, name):
    # a naive read (imageio.imread(mode="RGB")) gave mean 254.5 and 99.6 % white here
    path = tmp_path / name
    _write_ramp(path, kind)
    got = load_image(path)
    assert got.shape == (60, 256, 3) and got.dtype == np.uint8
    assert abs(got.mean() - 127.5) <= 1.0
    assert (got == 255).mean() < 0.01
    assert np.all(np.diff(got[0, :, 0].astype(int)) >= 0)  # still a ramp


def test_16bit_rgb_png_keeps_the_high_byte(tmp_path):
    rgb16 = np.dstack([RAMP16, RAMP16 // 2, 65535 - RAMP16])  # (60, 100, 3) uint16 RGB
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[:, :, ::-1])  # cv2 wants BGR
    got = load_image(tmp_path / "rgb16.png")
    np.testing.assert_array_equal(got, (rgb16 >> 8).astype(np.uint8))


def test_rgba_is_composited_onto_background(tmp_path, caplog):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[:, :, :3] = (200, 100, 50)
    rgba[0, 0, 3] = 0  # fully transparent: background exactly
    rgba[0, 1, 3] = 255  # opaque: colour exactly
    rgba[0, 2, 3] = 128  # half: in between
    rgba[1, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        got = load_image(tmp_path / "rgba.png")
    assert got.shape == (2, 3, 3)
    np.testing.assert_array_equal(got[0, 0], ALPHA_BACKGROUND)
    np.testing.assert_array_equal(got[0, 1], (200, 100, 50))
    half = (np.array([200, 100, 50]) * 128 + np.array(ALPHA_BACKGROUND) * 127) / 255
    np.testing.assert_allclose(got[0, 2], half, atol=1)
    assert "composited" in caplog.text and "rgba.png" in caplog.text


def test_opaque_rgba_is_just_rgb_without_a_note(tmp_path, caplog):
    rgba = np.dstack([PATTERN, np.full((4, 6), 255, np.uint8)])  # (4, 6, 4)
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        np.testing.assert_array_equal(load_image(tmp_path / "opaque.png"), PATTERN)
    assert caplog.text == ""


def test_gray_with_alpha(tmp_path):
    la = Image.fromarray(np.array([[90, 90]], np.uint8)).convert("LA")
    la.putalpha(Image.fromarray(np.array([[0, 255]], np.uint8)))
    la.save(tmp_path / "la.png")
    got = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(got, [[ALPHA_BACKGROUND, (90, 90, 90)]])


def test_cmyk_jpeg_comes_out_as_rgb(tmp_path):
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # pure red ink
    got = load_image(tmp_path / "cmyk.jpg")
    assert got.shape == (8, 16, 3)
    np.testing.assert_allclose(got.reshape(-1, 3).mean(0), (255, 0, 0), atol=10)


def test_animated_gif_gives_frame_zero_and_a_note(tmp_path, caplog):
    frames = [Image.new("RGB", (8, 6), c) for c in ("red", "blue", "lime")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        got = load_image(tmp_path / "anim.gif")
    assert got.shape == (6, 8, 3)
    np.testing.assert_array_equal(got.reshape(-1, 3), np.tile([255, 0, 0], (48, 1)))
    assert "3 frames" in caplog.text


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_animated_webp_gives_frame_zero(tmp_path):
    frames = [Image.new("RGB", (8, 6), c) for c in ("blue", "red")]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    got = load_image(tmp_path / "anim.webp")
    np.testing.assert_array_equal(got.reshape(-1, 3), np.tile([0, 0, 255], (48, 1)))


# ---------------------------------------------------------------- size
def test_max_size_downscales_keeping_aspect(tmp_path):
    src = np.zeros((80, 120, 3), np.uint8)
    src[:, 60:] = 255  # left half black, right half white
    Image.fromarray(src).save(tmp_path / "big.png")
    got = load_image(tmp_path / "big.png", max_size=30)
    assert got.shape == (20, 30, 3)
    assert got[:, :14].max() == 0 and got[:, 16:].min() == 255  # halves stay halves
    assert load_image(tmp_path / "big.png", max_size=500).shape == (80, 120, 3)  # never enlarged


def test_max_size_on_rotated_jpeg_matches_a_full_decode(tmp_path):
    yy, xx = np.mgrid[0:600, 0:800]
    src = np.dstack([xx * 255 // 800, yy * 255 // 600, (xx + yy) * 255 // 1400]).astype(np.uint8)  # (600, 800, 3)
    path = _save_with_orientation(tmp_path / "big.jpg", src, 6, quality=95)
    small = load_image(path, max_size=100)  # JPEG draft path (DCT-scaled decode)
    assert small.shape == (100, 75, 3)  # portrait after orientation 6
    reference = cv2.resize(load_image(path), (75, 100), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - reference).mean() < 2


def test_resize_max_fits_the_longer_side_and_never_enlarges():
    flat = np.full((1, 1000, 3), 77, np.uint8)  # (1, 1000, 3)
    out = resize_max(flat, 10)
    assert out.shape == (1, 10, 3) and np.all(out == 77)  # area average of a constant is exact
    small = np.zeros((5, 7, 3), np.uint8)
    assert resize_max(small, 7) is small
    assert resize_max(np.zeros((300, 200), np.float32), 150).shape == (150, 100)


# ---------------------------------------------------------------- bad input
def _bomb(tmp_path):
    data = _png_header_only(20000, 20000)
    assert len(data) < 128 and 20000 * 20000 > MAX_PIXELS  # the doc's 99-byte bomb: tiny file, 400 MP claimed
    (tmp_path / "bomb.png").write_bytes(data)
    return tmp_path / "bomb.png"


def _truncated_jpeg(tmp_path):
    src = (np.random.default_rng(0).random((60, 100, 3)) * 255).astype(np.uint8)
    Image.fromarray(src).save(tmp_path / "full.jpg", quality=90)
    (tmp_path / "trunc.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:400])
    return tmp_path / "trunc.jpg"


def _truncated_png(tmp_path):
    Image.fromarray(PATTERN).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:20])  # inside IHDR
    return tmp_path / "cut.png"


def _text(tmp_path):
    (tmp_path / "text.jpg").write_text("hello, not an image\n")
    return tmp_path / "text.jpg"


def _empty(tmp_path):
    (tmp_path / "empty.png").touch()
    return tmp_path / "empty.png"


def _directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    return tmp_path / "folder.png"


def _missing(tmp_path):
    return tmp_path / "missing.jpg"


def _fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block forever
    return tmp_path / "pipe.png"


@pytest.mark.parametrize("make, problem", [
    (_bomb, "is 20000x20000 (400 MP), over the 100 MP limit"),
    (_truncated_jpeg, "image is truncated or corrupt"),
    (_truncated_png, "image is truncated or corrupt"),
    (_text, "not an image file (cannot identify format)"),
    (_empty, "empty file"),
    (_directory, "image is a directory, not a file"),
    (_missing, "image not found"),
    (_fifo, "not a regular file"),
], ids=["bomb", "truncated_jpeg", "truncated_png", "text", "empty", "directory", "missing", "fifo"])
def test_bad_input_is_one_line_error_naming_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ZoomdreamError) as err:
            load_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message
    assert err.value.__cause__ is None  # no chained traceback
    assert err.value.__context__ is None or err.value.__suppress_context__
    assert [str(w.message) for w in caught] == []  # no DecompressionBombWarning or ResourceWarning


def test_bomb_check_leaves_pillow_guard_as_it_was(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ZoomdreamError):
        load_image(_bomb(tmp_path))
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.parametrize("side", [40, 100])  # Pillow's warning range, then its error range
def test_our_limit_governs_not_pillows(tmp_path, monkeypatch, side):
    # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; MAX_PIXELS sits
    # between the two, so Pillow's guard must neither warn nor refuse below our limit.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (side, side), "blue").save(tmp_path / "sq.png")
    got = load_image(tmp_path / "sq.png")  # a warning would fail the test (filterwarnings = error)
    assert got.shape == (side, side, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_over_our_limit_is_refused_with_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 2_000_000)
    (tmp_path / "wide.png").write_bytes(_png_header_only(3000, 1000))
    with pytest.raises(ZoomdreamError, match=r"wide\.png: image is 3000x1000 \(3 MP\), over the 2 MP limit"):
        load_image(tmp_path / "wide.png")


def test_unreadable_file_reports_the_reason(tmp_path, monkeypatch):
    # Root ignores chmod, so simulate the open() failure instead of relying on mode bits.
    Image.fromarray(PATTERN).save(tmp_path / "locked.png")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(images, "open", denied, raising=False)
    with pytest.raises(ZoomdreamError, match=r"locked\.png: cannot read the file \(Permission denied\)"):
        load_image(tmp_path / "locked.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_by_mode(tmp_path):
    path = tmp_path / "locked.png"
    Image.fromarray(PATTERN).save(path)
    path.chmod(0)
    with pytest.raises(ZoomdreamError, match="locked.png: cannot read the file"):
        load_image(path)


# ---------------------------------------------------------------- save_image
def test_png_round_trip_is_exact_and_deterministic(tmp_path):
    img = (np.random.default_rng(3).random((33, 21, 3)) * 255).astype(np.uint8)  # odd size on purpose
    save_image(tmp_path / "a.png", img)
    save_image(tmp_path / "b.png", img.copy())
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), img)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".JPG", ".webp"])
def test_lossy_round_trip_is_close(tmp_path, ext):
    if ext == ".webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    yy, xx = np.mgrid[0:40, 0:64]
    img = np.dstack([xx * 4, yy * 6, 255 - xx * 4]).astype(np.uint8)  # (40, 64, 3) smooth
    save_image(tmp_path / f"out{ext}", img)
    got = load_image(tmp_path / f"out{ext}")
    assert got.shape == img.shape
    assert np.abs(got.astype(int) - img).mean() < JPEG_TOLERANCE


def test_save_overwrites_an_existing_file_in_place(tmp_path):
    save_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8))
    save_image(tmp_path / "x.png", np.full((2, 2, 3), 9, np.uint8))
    assert load_image(tmp_path / "x.png").max() == 9
    assert sorted(os.listdir(tmp_path)) == ["x.png"]


@pytest.mark.parametrize("name", ["out.xyz", "out"])
def test_unsupported_extension_writes_nothing(tmp_path, name):
    with pytest.raises(ZoomdreamError) as err:
        save_image(tmp_path / name, PATTERN)
    ext = os.path.splitext(name)[1] or "(none)"
    assert str(err.value) == f"{tmp_path / name}: unsupported image format '{ext}' (use .png or .jpg)"
    assert os.listdir(tmp_path) == []


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("writer", [save_image, save_png_fast], ids=["save_image", "save_png_fast"])
def test_failed_write_leaves_no_file_and_no_temp(tmp_path, monkeypatch, writer):
    monkeypatch.setattr(fileio.os, "replace", _disk_full)
    with pytest.raises(ZoomdreamError, match=r"out\.png: cannot write \(No space left on device\)"):
        writer(tmp_path / "out.png", PATTERN)
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    save_image(tmp_path / "out.png", PATTERN)
    before = (tmp_path / "out.png").read_bytes()
    monkeypatch.setattr(fileio.os, "replace", _disk_full)
    with pytest.raises(ZoomdreamError):
        save_image(tmp_path / "out.png", PATTERN[::-1])
    assert (tmp_path / "out.png").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_missing_output_folder_is_a_zoomdream_error(tmp_path):
    with pytest.raises(ZoomdreamError, match=r"nowhere[/\\]out\.png: cannot write"):
        save_image(tmp_path / "nowhere" / "out.png", PATTERN)


@pytest.mark.parametrize("bad", [np.zeros((4, 6), np.uint8), np.zeros((4, 6, 4), np.uint8),
                                 np.zeros((4, 6, 3), np.float32)], ids=["2d", "rgba", "float"])
def test_save_rejects_arrays_outside_the_convention(tmp_path, bad):
    with pytest.raises(ValueError, match="Got:"):
        save_image(tmp_path / "x.png", bad)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- frame cache PNGs
def test_png_fast_round_trip_is_exact_and_deterministic(tmp_path):
    img = (np.random.default_rng(5).random((17, 31, 3)) * 255).astype(np.uint8)
    save_png_fast(tmp_path / "000001.png", img)
    save_png_fast(tmp_path / "000002.png", img.copy())
    np.testing.assert_array_equal(load_png_fast(tmp_path / "000001.png"), img)
    np.testing.assert_array_equal(load_image(tmp_path / "000001.png"), img)  # a standard PNG, in RGB order
    assert (tmp_path / "000001.png").read_bytes() == (tmp_path / "000002.png").read_bytes()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_png_fast_refuses_a_truncated_frame(tmp_path, keep):
    save_png_fast(tmp_path / "f.png", PATTERN)
    data = (tmp_path / "f.png").read_bytes()
    (tmp_path / "f.png").write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ZoomdreamError, match=r"f\.png: PNG is truncated or corrupt"):
        load_png_fast(tmp_path / "f.png")


def test_png_fast_refuses_garbage_with_a_valid_trailer(tmp_path):
    (tmp_path / "g.png").write_bytes(b"garbage" * 10 + images.PNG_END)
    with pytest.raises(ZoomdreamError, match=r"g\.png: PNG is truncated or corrupt"):
        load_png_fast(tmp_path / "g.png")


def test_png_fast_missing_frame(tmp_path):
    with pytest.raises(ZoomdreamError, match=r"nope\.png: file not found"):
        load_png_fast(tmp_path / "nope.png")


# ---------------------------------------------------------------- file names
@pytest.mark.parametrize("name", ["uni cödé 動画 .png", "-dash.png", "time 12:30.png", "file:odd.png",
                                  "dots..in..name.jpg"])
def test_odd_file_names_work_relative_and_absolute(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    save_image(name, PATTERN)  # relative: "-dash.png" must not look like an option
    got = load_image(name)
    if name.endswith(".png"):
        np.testing.assert_array_equal(got, PATTERN)
    assert load_image(tmp_path / name).shape == PATTERN.shape
    save_png_fast(f"cache {name}.png", PATTERN)
    np.testing.assert_array_equal(load_png_fast(f"cache {name}.png"), PATTERN)


def test_photos_and_frames_read_alike(tmp_path, caplog):
    # One door for image files: a frame of an image folder is the photo's pixels (alpha over the
    # same background), as stored (no EXIF turn: video frames, not photos) and without a note.
    from zoomdream.media.probe import probe
    from zoomdream.media.read import iter_frames

    rgba = np.dstack([PATTERN, np.tile(np.array([0, 128, 255], np.uint8), (4, 2))])  # (4, 6, 4)
    folder = tmp_path / "frames"
    folder.mkdir()
    _save_with_orientation(folder / "0.png", rgba, 6)
    photo = load_image(folder / "0.png")  # may log its alpha note: what follows must not
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zoomdream"):
        frame = images.load_frame(folder / "0.png")
        (from_folder,) = iter_frames(probe(folder))
    assert caplog.text == ""
    np.testing.assert_array_equal(UPRIGHT[6](frame), photo)
    np.testing.assert_array_equal(from_folder, frame)
    assert frame.flags.writeable and from_folder.flags.writeable
    np.testing.assert_array_equal(frame, images.composite_alpha(rgba))
    np.testing.assert_array_equal(frame[:, 0], np.tile(ALPHA_BACKGROUND, (4, 1)))  # alpha 0: background


@pytest.mark.parametrize("kind", ["float01", "float255", "png16"])
def test_frames_scale_high_depth_like_photos(tmp_path, kind):
    path = tmp_path / ("ramp.png" if kind == "png16" else "ramp.tif")
    _write_ramp(path, kind)
    np.testing.assert_array_equal(images.load_frame(path), load_image(path))


@pytest.mark.parametrize("what, noun", [("image", "image"), ("media", "media file")])
def test_check_file_names_the_file_and_the_problem(tmp_path, what, noun):
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "ok.bin").write_bytes(b"x")
    for name, problem in [("nope.bin", f"{noun} not found"), ("empty.bin", f"{noun} is an empty file"),
                          (".", f"{noun} is a directory, not a file")]:
        with pytest.raises(ZoomdreamError, match=re.escape(f"{tmp_path / name}: {problem}")):
            images.check_file(tmp_path / name, what=what)
    assert images.check_file(tmp_path / "ok.bin", what=what) == str(tmp_path / "ok.bin")


# ---------------------------------------------------------------- fit_size
def test_fit_size_crop_only_is_exact():
    img = np.arange(32, dtype=np.uint8).reshape(4, 8)
    assert_close(fit_size(img, (4, 4)), img[:, 2:6])  # scale 1: centre crop of columns 2..5


def test_fit_size_shapes_and_dtype():
    wide = np.zeros((100, 200, 3), np.float32)
    wide[:, 100:] = 255.0  # right half white
    out = fit_size(wide, (50, 50))  # shrink to 50x25, crop to the middle 50 columns
    assert out.shape == (50, 50, 3) and out.dtype == np.float32
    assert out[:, :20].max() == 0.0 and out[:, 30:].min() == 255.0
    tall = fit_size(np.zeros((10, 10), np.uint8), (20, 40))  # grow x4, crop width
    assert tall.shape == (40, 20) and tall.dtype == np.uint8
    with pytest.raises(ZoomdreamError, match="size"):
        fit_size(wide, (0, 10))


def test_image_header_reads_the_size_alone_and_refuses_a_cut_short_png(tmp_path):
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    save_image(png, np.zeros((30, 50, 3), np.uint8))
    save_image(jpg, np.zeros((20, 10, 3), np.uint8))
    assert image_header(png) == (50, 30) and image_header(jpg) == (10, 20)
    png.write_bytes(png.read_bytes()[:-12])  # the IEND chunk gone: the pixels may still be there
    with pytest.raises(ZoomdreamError, match=r"a.png: image is truncated or corrupt \(the PNG is cut short\)$"):
        image_header(png)
    (tmp_path / "c.png").write_bytes(b"not an image at all")
    with pytest.raises(ZoomdreamError, match="not an image file"):
        image_header(tmp_path / "c.png")
