"""Photo input and output: any common image file in, upright 8-bit RGB out.

``load_image`` is the one door for photos (stills, zoom sources, guides, masks). Whatever
the file holds (EXIF-rotated JPEG, palette or grayscale PNG, 16-bit or float TIFF, CMYK
JPEG, alpha, an animated GIF) it returns the same thing, and every problem with the file
is a one-line ``ZoomdreamError`` naming it. ``load_frame`` is the same door for the images
of an image-folder video (``media`` reads them through it). ``save_image`` writes stills
atomically; ``save_png_fast``/``load_png_fast`` are the frame cache's lossless round trip.
``resize_max`` and ``fit_size`` size a photo for a render (a still's cap, a zoom's frame).

Convention: images are (H, W, 3) uint8 RGB in [0, 255], row 0 at the top as the photo
is meant to be seen (EXIF orientation applied). 16-bit samples become 8-bit by ``>> 8``
(never clipped); transparent pixels are composited onto ``ALPHA_BACKGROUND`` (black, the
same as video frames in ``media``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import atomic_path, check_readable, write_bytes_atomic

__all__ = [
    "IMAGE_EXTENSIONS",
    "SAVE_FORMATS",
    "MAX_PIXELS",
    "ALPHA_BACKGROUND",
    "load_image",
    "load_frame",
    "image_header",
    "png_size",
    "save_image",
    "save_png_fast",
    "load_png_fast",
    "resize_max",
    "fit_size",
    "composite_alpha",
    "check_file",
]

log = logging.getLogger("zoomdream")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # extension -> Pillow format
# Refuse images above this many pixels before decoding a byte of pixel data: a 99-byte PNG
# can claim 20000x20000 (1.2 GB as RGB, several times that once dreamed). 100 MP still
# admits any camera photo (a 61 MP full-frame shot, a 12000x8000 pano).
MAX_PIXELS = 100_000_000
ALPHA_BACKGROUND = (0, 0, 0)  # RGB under transparent pixels; black, for photos and video frames alike
PNG_FAST_COMPRESSION = 1  # zlib level for frame-cache PNGs: ~3x faster than the default 3, ~10% bigger
PNG_COMPRESSION = 6  # zlib level for stills (Pillow's default): size matters more than speed there
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # every complete PNG ends with this IEND chunk

# EXIF Orientation (tag 0x0112) -> the transpose that makes the photo upright. 1 and any
# invalid value (0 is common, imageio#1158) mean "as stored".
ORIENTATION_TAG = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,  # stored on its side: turn 90 degrees clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Leading bytes of common formats: a file that starts like one but that Pillow
# cannot identify was cut short or damaged, which is a different fix from "not an image".
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")  # distinctive ones only

# Pillow's own bomb guard warns above 89 MP and raises above 179 MP inside Image.open,
# before we can read the size, and through a module global. We switch it off (under a
# lock, and only while reading the header) and apply MAX_PIXELS ourselves.
_PILLOW_GUARD_LOCK = threading.Lock()


def load_image(path: str | os.PathLike, *, max_size: int | None = None) -> np.ndarray:
    """Read a photo as upright 8-bit RGB.

    Convention: returns (H, W, 3) uint8 RGB in [0, 255], C-contiguous, row 0 at the top
    after EXIF orientation. Mode by mode:

    - L / 1 / P: replicated or palette-expanded to RGB; CMYK, YCbCr: converted to RGB.
    - 16-bit (I;16*, I): ``>> 8`` (a 0..65535 ramp keeps its mean 127.5); 16-bit RGB(A)
      PNG/TIFF: Pillow keeps the high byte, which is the same thing. I (int32) is clipped
      to 0..65535 first.
    - F (float TIFF): [0, 1] when its maximum is <= 1, else [0, 255] when <= 255, else
      [0, 65535]; NaN becomes 0.
    - alpha (RGBA, LA, PA, P with transparency): composited onto ``ALPHA_BACKGROUND``,
      with a note when any pixel is not opaque.
    - multi-frame (animated GIF/WebP, MPO): frame 0, with a note.

    ``max_size``: when given, the longer side is shrunk to at most this (aspect kept,
    INTER_AREA; JPEGs are first DCT-scaled while decoding). Never enlarges.

    Raises ZoomdreamError "<path>: <problem>" for a missing, empty, unreadable, non-image,
    truncated or over-``MAX_PIXELS`` file, before decoding pixels where it can.
    """
    return _load(path, max_size=max_size, upright=True, notes=True)


def load_frame(path: str | os.PathLike) -> np.ndarray:
    """Read one image of an image-folder video as 8-bit RGB, as stored.

    Convention: returns a fresh, writable (H, W, 3) uint8 RGB array in [0, 255] like
    ``load_image``, mode by mode and error by error, with two differences that suit frames:
    EXIF orientation is not applied (these are video frames, not photos), and nothing is
    logged per file (an alpha or Pillow notice would repeat for every frame of the clip).
    """
    image = _load(path, max_size=None, upright=False, notes=False)
    return image if image.flags.writeable else image.copy()  # Pillow's buffer is read-only


def _load(path, *, max_size: int | None, upright: bool, notes: bool) -> np.ndarray:
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be a positive number of pixels, got {max_size}")
    name = os.fspath(path)
    check_file(name)
    try:
        f = open(name, "rb")
    except OSError as e:
        raise ZoomdreamError(f"{name}: cannot read the file ({e.strerror or e})") from None
    # Pillow reports odd input through warnings (corrupt EXIF, bomb size); collect them and
    # pass them on as one-line notes rather than letting them reach the terminal.
    with f, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = _decode(f, name, max_size, upright=upright, notes=notes)
    for w in caught if notes else ():
        # Bomb size: MAX_PIXELS decides. Resource/Deprecation: for developers, not users.
        if not issubclass(w.category, (Image.DecompressionBombWarning, ResourceWarning, DeprecationWarning)):
            log.info("%s: %s", name, " ".join(str(w.message).split()) or w.category.__name__)
    if max_size is not None:
        image = resize_max(image, max_size)
    return image


def save_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> None:
    """Write a still as PNG, JPEG or WebP (by extension), atomically.

    Convention: ``image`` is (H, W, 3) uint8 RGB. PNG is lossless and deterministic (the
    same array gives the same bytes: no timestamp chunk); JPEG uses ``quality`` with 4:4:4
    chroma, since dream patterns are fine colour detail that 4:2:0 would smear; WebP uses
    ``quality`` (lossy).

    The file is written to a temp beside ``path`` and renamed when complete, so a failed
    write (full disk, read-only folder) leaves no file at ``path`` and no temp. Raises
    ZoomdreamError for an unsupported extension (nothing is created) or a failed write.
    """
    _check_rgb(image)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    name = os.fspath(path)
    ext = Path(name).suffix.lower()
    if ext not in SAVE_FORMATS:
        raise ZoomdreamError(f"{name}: unsupported image format '{ext or '(none)'}' (use .png or .jpg)")
    fmt = SAVE_FORMATS[ext]
    options = {
        "PNG": {"compress_level": PNG_COMPRESSION},
        "JPEG": {"quality": quality, "subsampling": 0},
        "WEBP": {"quality": quality},
    }[fmt]
    pil = Image.fromarray(np.ascontiguousarray(image))
    try:
        with atomic_path(name) as tmp:
            pil.save(tmp, format=fmt, **options)
    except OSError as e:
        raise ZoomdreamError(f"{name}: cannot write ({e.strerror or e})") from None


def save_png_fast(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a frame-cache PNG: lossless, deterministic, fast, atomic.

    Convention: ``image`` is (H, W, 3) uint8 RGB; ``load_png_fast`` returns it bit for bit.
    Raises ZoomdreamError when the file cannot be written (no partial file is left).
    """
    _check_rgb(image)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # (h, w, 3) uint8 BGR, cv2's channel order
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_FAST_COMPRESSION])
    if not ok:
        raise ZoomdreamError(f"{os.fspath(path)}: cannot encode PNG ({image.shape[1]}x{image.shape[0]})")
    write_bytes_atomic(path, buf.tobytes())


def png_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file that ends with a PNG's IEND chunk (whole, not cut short)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < len(PNG_END):
                return False
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of a PNG from its header, without decoding the pixels."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            head = f.read(24)  # signature (8), IHDR length and type (8), width (4), height (4)
    except OSError as e:
        raise ZoomdreamError(f"{name}: cannot read the file ({e.strerror or e})") from None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ZoomdreamError(f"{name}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def load_png_fast(path: str | os.PathLike) -> np.ndarray:
    """Read a frame-cache PNG written by ``save_png_fast``.

    Convention: returns (H, W, 3) uint8 RGB. A missing, truncated or corrupt file raises
    ZoomdreamError, so a half-written frame is re-rendered, never reused. Reads through
    ``np.fromfile`` because ``cv2.imread`` fails on some non-ASCII paths (opencv#4242).
    """
    name = os.fspath(path)
    try:
        data = np.fromfile(name, dtype=np.uint8)  # (n_bytes,)
    except FileNotFoundError:
        raise ZoomdreamError(f"{name}: file not found") from None
    except OSError as e:
        raise ZoomdreamError(f"{name}: cannot read the file ({e.strerror or e})") from None
    # Check the IEND trailer first: cheap, exact for truncation, and keeps libpng from
    # printing its own error lines for the common case.
    if data.size < len(PNG_END) or data[-len(PNG_END):].tobytes() != PNG_END:
        raise ZoomdreamError(f"{name}: PNG is truncated or corrupt")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # (h, w, 3) uint8 BGR, or None
    if bgr is None:
        raise ZoomdreamError(f"{name}: PNG is truncated or corrupt")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (h, w, 3) uint8 RGB


def resize_max(image: np.ndarray, max_size: int) -> np.ndarray:
    """Shrink ``image`` so its longer side is at most ``max_size``; never enlarge.

    Convention: (H, W, C) or (H, W) array of any cv2 dtype in, same layout out; the aspect
    ratio is kept (each side rounded, at least 1 px) and the longer side becomes exactly
    ``max_size``. Uses INTER_AREA, which averages and so does not alias. An image that
    already fits is returned as is (not copied).
    """
    if max_size < 1:
        raise ValueError(f"max_size must be a positive number of pixels, got {max_size}")
    h, w = image.shape[:2]
    if max(h, w) <= max_size:
        return image
    new_w, new_h = _fit((w, h), max_size)
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)  # (new_h, new_w, C)


def fit_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to cover ``size`` and centre-crop it: fills the frame, no bars.

    INTER_AREA when shrinking (no aliasing), cubic when growing.

    Convention: ``size`` is (width, height) px; image (H, W[, C]) uint8 or float32;
    returns (height, width[, C]) of the same dtype.
    """
    if len(size) != 2 or not all(_is_count(v) and v > 0 for v in size):
        raise ZoomdreamError(f"size must be two positive ints (width, height); got {size!r}")
    image = np.asarray(image)
    out_w, out_h = int(size[0]), int(size[1])
    h, w = image.shape[:2]
    scale = max(out_w / w, out_h / h)
    new_w, new_h = max(out_w, round(w * scale)), max(out_h, round(h * scale))
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, (new_w, new_h), interpolation=interp).reshape(
            new_h, new_w, *image.shape[2:])  # (new_h, new_w[, c])
    x0, y0 = (new_w - out_w) // 2, (new_h - out_h) // 2
    return np.ascontiguousarray(image[y0:y0 + out_h, x0:x0 + out_w])  # (out_h, out_w[, c])


# ---------------------------------------------------------------- helpers
def _fit(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """(w, h) scaled so the longer side is ``max_size``."""
    w, h = size
    scale = max_size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _is_count(value) -> bool:
    """An int (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array. Got: {got}")


# How check_file says "missing" for each kind of file; both wordings are what users have seen.
def check_file(path: str | os.PathLike, *, what: str = "image") -> str:
    """The absolute path of ``path`` if it is a non-empty regular file that can be read.

    ``what`` is the kind of file expected (``"image"``, or ``"media"`` for video and audio); it
    words the messages. Raises ZoomdreamError "<path>: <problem>" (:func:`fileio.check_readable`).
    """
    check_readable(path, "image" if what == "image" else f"{what} file", empty_ok=False)
    return os.path.abspath(os.fspath(path))


@contextlib.contextmanager
def _pillow_guard_off():
    with _PILLOW_GUARD_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def image_header(path: str | os.PathLike) -> tuple[int, int]:
    """(w, h) of an image as stored, from its header alone (no pixel is decoded); a PNG must also end
    with its IEND chunk. The cheap check of every member of a folder of frames before a render.

    Raises ZoomdreamError "<path>: <problem>" as ``load_image`` would for a missing, empty,
    non-image, over-sized or cut-short file.
    """
    name = check_file(path)
    try:
        f = open(name, "rb")
    except OSError as e:
        raise ZoomdreamError(f"{os.fspath(path)}: cannot read the file ({e.strerror or e})") from None
    with f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _open_header(f, os.fspath(path)) as im:
            size, kind = im.size, im.format
    if kind == "PNG" and not png_complete(name):
        raise ZoomdreamError(f"{os.fspath(path)}: image is truncated or corrupt (the PNG is cut short)")
    return size


def _open_header(f, name: str) -> Image.Image:
    """Pillow's lazy open of ``f`` (the header only), refusing what is no image, no pixels or a bomb."""
    try:
        with _pillow_guard_off():
            im = Image.open(f)
    except UnidentifiedImageError:
        f.seek(0)
        if f.read(8).startswith(_MAGIC):
            raise ZoomdreamError(f"{name}: image is truncated or corrupt (header unreadable)") from None
        raise ZoomdreamError(f"{name}: not an image file (cannot identify format)") from None
    except Exception as e:  # noqa: BLE001 - parsers of untrusted bytes fail with any type
        raise ZoomdreamError(f"{name}: image is truncated or corrupt ({_reason(e)})") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise ZoomdreamError(
            f"{name}: image is {w}x{h} ({w * h / 1e6:.4g} MP), over the {MAX_PIXELS // 1_000_000} MP limit; "
            f"shrink it with an image editor first (possible decompression bomb)")
    if w < 1 or h < 1:
        im.close()
        raise ZoomdreamError(f"{name}: image is {w}x{h}, it has no pixels")
    return im


def _decode(f, name: str, max_size: int | None, *, upright: bool, notes: bool) -> np.ndarray:
    """Open ``f`` with Pillow, refuse bombs from the header, decode frame 0 to RGB uint8.

    ``upright``: apply the EXIF orientation; ``notes``: log what was changed on the way.
    """
    # 1) header only: Image.open is lazy, so no pixel data is read yet
    im = _open_header(f, name)
    with im:
        w, h = im.size
        # 2) decode pixels (counting frames walks a GIF, so it can fail like decoding)
        try:
            n_frames = getattr(im, "n_frames", 1)
            if n_frames > 1:
                if notes:
                    log.info("%s: %d frames (animated or multi-page); using the first", name, n_frames)
                im.seek(0)
            if max_size is not None and im.format == "JPEG" and max(w, h) > max_size:
                im.draft(None, _fit((w, h), max_size))  # DCT scaling: decode at 1/2, 1/4 or 1/8 size
            im.load()
        except Image.DecompressionBombError:  # only if someone lowered Pillow's limit below ours
            raise ZoomdreamError(f"{name}: image is {w}x{h}, too large to decode safely") from None
        except MemoryError:
            raise ZoomdreamError(f"{name}: not enough memory to decode a {w}x{h} image") from None
        except Exception as e:  # noqa: BLE001 - see above
            raise ZoomdreamError(f"{name}: image is truncated or corrupt ({_reason(e)})") from None
        # 3) to RGB uint8, then upright
        rgb = _to_rgb(im, name, notes)  # (h, w, 3) uint8
        orientation = _orientation(im) if upright else 1
    if orientation in _UPRIGHT:
        rgb = np.asarray(Image.fromarray(rgb).transpose(_UPRIGHT[orientation]))  # (h, w, 3) or (w, h, 3)
    return np.ascontiguousarray(rgb)


def _reason(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return text or type(e).__name__


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8; 1 when absent, invalid or unreadable (a bad EXIF block is not fatal)."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - corrupt EXIF: keep the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image, name: str, notes: bool) -> np.ndarray:
    """Frame ``im`` (loaded) as (H, W, 3) uint8 RGB, mode by mode (see ``load_image``)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES:
        gray = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)  # (h, w), high byte
        return np.repeat(gray[:, :, None], 3, axis=2)  # (h, w, 3)
    if mode == "I":
        gray = (np.clip(np.asarray(im), 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)  # (h, w)
        return np.repeat(gray[:, :, None], 3, axis=2)  # (h, w, 3)
    if mode == "F":
        gray = _float_to_uint8(np.asarray(im, dtype=np.float32))  # (h, w)
        return np.repeat(gray[:, :, None], 3, axis=2)  # (h, w, 3)
    has_alpha = "A" in im.getbands() or "a" in im.getbands() or (mode == "P" and im.has_transparency_data)
    try:
        if has_alpha:
            rgba = np.asarray(im.convert("RGBA"))  # (h, w, 4) uint8
            return composite_alpha(rgba, note_for=name if notes else None)
        return np.asarray(im if mode == "RGB" else im.convert("RGB"))  # (h, w, 3) uint8
    except ValueError as e:  # a mode Pillow cannot convert (e.g. LAB)
        raise ZoomdreamError(f"{name}: unsupported pixel mode '{mode}' ({_reason(e)})") from None


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    """Float samples to uint8, guessing the range from the data: [0, 1], [0, 255] or [0, 65535]."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max()) if values.size else 0.0
    scale = 255.0 if top <= 1.0 else 1.0 if top <= 255.0 else 255.0 / 65535.0
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def composite_alpha(rgba: np.ndarray, *, note_for: str | None = None) -> np.ndarray:
    """Composite RGBA pixels onto ``ALPHA_BACKGROUND``: a new, writable RGB array.

    Convention: (H, W, 4) uint8 RGBA in, (H, W, 3) uint8 RGB out, rounded to nearest and
    exact at alpha 0 and 255. ``note_for``: a file name to log a notice for when any pixel
    is not opaque (None: silent, as for video frames, whose probe reports alpha once).
    """
    alpha = rgba[:, :, 3:4].astype(np.uint16)  # (h, w, 1)
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[:, :, :3])  # (h, w, 3) copy
    if note_for is not None:
        log.info("%s: transparent pixels composited onto RGB %s", note_for, ALPHA_BACKGROUND)
    rgb = rgba[:, :, :3].astype(np.uint16)  # (h, w, 3)
    bg = np.asarray(ALPHA_BACKGROUND, dtype=np.uint16)  # (3,)
    return ((rgb * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)  # (h, w, 3)
