"""Atomic file writes: an output appears complete, or not at all.

Every file zoomdream produces (stills, frame-cache PNGs, manifests, settings sidecars,
videos) is written to a hidden temporary file in the target's own folder, flushed and
fsync'ed, then moved into place with ``os.replace`` (atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ZoomdreamError

PARTIAL_TAG = ".partial"  # every temp name contains it, so leftovers can be swept


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; a finished output gets the usual 0o666 & ~umask.
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temp keeps the target's extension (``.x.partial.png``) so tools that pick a
    format by extension still work. On any exception the temp is removed and the
    target is left untouched.
    """
    path = Path(os.path.abspath(path))
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{PARTIAL_TAG}{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise ZoomdreamError(f"{path}: cannot write ({e.strerror or e})") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def check_output_path(out: str | os.PathLike, *, inputs: tuple = (), overwrite: bool = False,
                      is_dir: bool = False) -> Path:
    """Check an output location before any work starts; return it as an absolute path.

    Refuses: the output being one of the inputs, an existing output without ``overwrite``,
    a missing or unwritable folder. Raises ZoomdreamError naming the path.
    """
    out = Path(os.path.abspath(out))
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(os.path.abspath(inp))
        if out == inp or (out.exists() and inp.exists() and os.path.samefile(out, inp)):
            raise ZoomdreamError(f"{out}: output is the same file as the input; choose another output name")
    parent = out.parent
    if not parent.is_dir():
        raise ZoomdreamError(f"{out}: output folder {parent} does not exist")
    if out.exists() and not overwrite:
        raise ZoomdreamError(f"{out}: output already exists; pass --overwrite to replace it")
    if out.exists() and out.is_dir() != is_dir:
        kind = "a folder" if out.is_dir() else "a file"
        raise ZoomdreamError(f"{out}: output exists and is {kind}")
    # os.access is not enough (root ignores mode bits, read-only mounts): try a real temp file.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f"{PARTIAL_TAG}.probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ZoomdreamError(f"{out}: cannot write to folder {parent} ({e.strerror or e})") from None
    return out
