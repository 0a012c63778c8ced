"""Up-front checks, made before any file or folder is created: the settings and render options,
every file a command names, and whether its frames fit on disk and in memory.

Each render function (``render_image``, ``render_sheet``, ``render_video``, ``render_zoom``,
``render_video_ray``) calls :func:`check_render` first and :func:`check_budget` once it knows
the frame size and count, so a command that cannot finish is refused in one line, saying
what it needs and what there is, instead of failing hours later with a full disk.

This module imports neither TensorFlow nor cv2 (the checks of images and media import them when they run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import check_readable

__all__ = ["PNG_RATIO", "FLOW_BYTES_PER_PIXEL", "MEMORY_BYTES_PER_PIXEL", "MEMORY_BASE_BYTES", "DISK_RESERVE_BYTES",
           "check_file", "check_render", "free_disk", "available_memory", "frame_size", "check_budget"]

# Bytes of a frame-cache PNG (save_png_fast, zlib level 1) per raw RGB byte. Measured on dreamed
# frames by benchmarks/bench_png_ratio.py: 0.61-0.69 (320x240 and 640x480; default, textures and
# structures presets), against 0.55-0.63 for the undreamed photo; rounded up for noisier sources.
PNG_RATIO = 0.75
FLOW_BYTES_PER_PIXEL = 8  # the flow cache keeps (2, H, W, 2) float16 per video frame, uncompressed
# Peak memory of a dream grows with the frame's pixels (the tile bounds the network's share):
# README's 3840x2160 still peaked at 2.14 GiB, ~180 B/px over the ~0.75 GiB a small render needs.
# 256 B/px leaves room for a video frame's flow fields, mask and carried dream.
MEMORY_BYTES_PER_PIXEL = 256
MEMORY_BASE_BYTES = 768 << 20  # TensorFlow, the backbone and the interpreter, whatever the frame size
DISK_RESERVE_BYTES = 64 << 20  # left free beyond the estimate: the encoder's output and the sidecars


def _size_text(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


# ---------------------------------------------------------------- files
def check_file(path, role: str, *, folder_ok: bool = False) -> Path:
    """``path`` exists, is a regular file (or a folder, where ``folder_ok``) and can be read.

    Raises ZoomdreamError naming the file and its role ("input", "mask", "guide image", ...).
    """
    check_readable(path, role, folder_ok=folder_ok)
    return Path(os.fspath(path))


def check_render(settings, *, input=None, input_folder_ok: bool = False, mask=None, audio=None,
                 **options) -> S.Settings:
    """Everything that can be checked before a render starts: the settings (as the dataclasses
    declare them), the keyword render options (``crf=``, ``start=``, ...), the input and every
    other file named (guide, weights, mask, audio). Returns the settings as a whole ``Settings``
    (a render given only a ``DreamSettings`` takes the defaults for the rest)."""
    settings = S.as_settings(settings)
    S.validate(settings)
    if options:
        S.check_options(**options)
    if input is not None:
        check_file(input, "input", folder_ok=input_folder_ok)
    d = settings.dream
    if d.guide is not None:
        check_file(d.guide, "guide image")
    if d.weights_file is not None:
        check_file(d.weights_file, "weights file")
    if mask is not None:
        check_file(mask, "mask")
    if audio is not None:
        check_file(audio, "audio file")
    return settings


def check_dream_size(settings, size: tuple[int, int], what: str) -> None:
    """Frames of ``size`` (w, h) px are at least the network's minimum input on each side (when it dreams).

    The minimum is in the backbone registry, so this needs no network: a render too small for it
    is refused before anything is created, not at its first frame.
    """
    d = settings.dream
    if d.iterations == 0:
        return  # motion alone: no network
    from zoomdream.backbones import get_spec  # noqa: PLC0415  (the registry; TensorFlow only when a network is built)

    spec = get_spec(d.model)
    w, h = size
    if min(w, h) < spec.min_size:
        raise ZoomdreamError(f"{what} {w}x{h} px; the model {spec.name} needs at least {spec.min_size} px on each "
                             f"side (a larger size, or --iterations 0 for the motion alone)")


def check_mask(mask) -> None:
    """``--mask``: an image whose header reads, or a video file with a video stream (probed, not decoded)."""
    from zoomdream.media.images import IMAGE_EXTENSIONS, image_header  # noqa: PLC0415
    from zoomdream.media.probe import probe  # noqa: PLC0415  (ffmpeg: only for a render that has a mask)

    try:
        if Path(mask).suffix.lower() in IMAGE_EXTENSIONS:
            image_header(mask)
        else:
            probe(mask)
    except ZoomdreamError as e:
        raise ZoomdreamError(f"mask: {e} (a mask is an image or a video)") from None


def check_image_folder(info) -> None:
    """Every image of a folder input, by its header: readable, whole (a PNG) and the first one's size.

    Cheap (no pixel is decoded), so a folder with a corrupt or odd-sized member is refused before
    the render starts rather than at that frame.
    """
    from zoomdream.media.images import image_header  # noqa: PLC0415

    for file in info.images:
        w, h = image_header(file)
        if (w, h) != (info.width, info.height):
            raise ZoomdreamError(f"{file}: image is {w}x{h}, expected {info.width}x{info.height} like the first "
                                 f"image of the folder")


# ---------------------------------------------------------------- budgets
def free_disk(folder) -> int:
    """Free bytes on the filesystem holding ``folder`` (or its nearest existing parent)."""
    p = Path(os.path.abspath(folder))
    while not p.exists() and p.parent != p:
        p = p.parent
    return shutil.disk_usage(p).free


def available_memory() -> int | None:
    """Bytes this process can still use: MemAvailable, capped by a cgroup limit; None where unknown."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            room = int(limit) - int(used)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass
    return avail


def frame_size(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """(w, h) after the ``max_size`` downscale (longer side at most max_size; never enlarged)."""
    w, h = int(size[0]), int(size[1])
    if max_size and max(w, h) > max_size:
        scale = max_size / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    return w, h


def _frames_done(work_frames: Path | None) -> int:
    if work_frames is None:
        return 0
    try:
        return sum(1 for e in os.scandir(work_frames) if e.name.endswith(".png") and not e.name.startswith("."))
    except OSError:
        return 0


def check_budget(output, *, frames: int, size: tuple[int, int], flow_cache=None, work_frames=None) -> None:
    """Refuse a render whose frames cannot fit on disk or whose frame cannot fit in memory.

    ``size``: (w, h) of the dreamed frames; ``frames``: how many go through the frame cache
    (beside ``output``; frames already in ``work_frames`` from an interrupted run are not
    counted again); ``flow_cache``: the flow cache folder for a video (8 B/px per frame).
    """
    w, h = size
    pixels = w * h
    mem_need = MEMORY_BASE_BYTES + pixels * MEMORY_BYTES_PER_PIXEL
    mem_have = available_memory()
    if mem_have is not None and mem_need > mem_have:
        raise ZoomdreamError(f"{w}x{h} frames need about {_size_text(mem_need)} of memory and "
                             f"{_size_text(mem_have)} is available; choose a smaller --size or --max-size")
    out = Path(os.path.abspath(output))
    todo = max(0, frames - _frames_done(work_frames))
    need = todo * pixels * 3 * PNG_RATIO + DISK_RESERVE_BYTES
    flow_need = todo * pixels * FLOW_BYTES_PER_PIXEL if flow_cache is not None else 0
    have = free_disk(out.parent)
    if flow_cache is not None and _same_device(out.parent, flow_cache):
        need, flow_need = need + flow_need, 0
    if need > have:
        raise ZoomdreamError(f"{out.parent}: {todo} frames of {w}x{h} need about {_size_text(need)} of disk "
                             f"(PNG at ~{PNG_RATIO:.2f} of raw RGB) and {_size_text(have)} is free; "
                             f"render fewer frames or a smaller size, or free some space")
    if flow_need:
        have = free_disk(flow_cache)
        if flow_need > have:
            raise ZoomdreamError(f"{flow_cache}: the flow cache for {todo} frames of {w}x{h} needs about "
                                 f"{_size_text(flow_need)} and {_size_text(have)} is free; set ZOOMDREAM_CACHE "
                                 f"to a roomier folder")


def _same_device(a, b) -> bool:
    def dev(p):
        p = Path(os.path.abspath(p))
        while not p.exists() and p.parent != p:
            p = p.parent
        return os.stat(p).st_dev

    try:
        return dev(a) == dev(b)
    except OSError:
        return False
