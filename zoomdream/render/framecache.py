"""The frame cache: the work folder beside an output, its manifest, and what identifies a file.

The work folder is a render's resume point: its manifest records the input's identity and
every frame-determining setting, so running the same command again continues after the last
complete frame and produces byte-identical frames, while a changed input or preset is refused.

Convention: frames are (H, W, 3) uint8 RGB, saved losslessly as ``frames/000000.png ...``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from zoomdream import __version__
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import PARTIAL_TAG, temp_stem, write_text_atomic
from zoomdream.media.images import load_png_fast, png_complete, save_png_fast
from zoomdream.media.process import ffmpeg_version
from zoomdream.settings import Settings, to_dict

__all__ = ["FRAME_PATTERN", "MANIFEST", "WORK_SUFFIX", "FrameCache", "file_identity",
           "render_manifest", "versions", "work_folder"]

WORK_SUFFIX = ".zoomdream-work"  # the work folder is ".<output name>.zoomdream-work" beside the output
FRAME_PATTERN = "%06d.png"  # zero-padded: numeric order is lexicographic order past 999


HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a file


def file_identity(path) -> dict:
    """What a file (or a folder of frames) holds: its size and the SHA-256 of its content.

    By content, not by path or time stamps: a file replaced by another under the same name
    is a different input (so a resume is refused), while a copy or a touched file is the same.
    A folder is the sorted list of its files' names and contents. Hashed once per process and
    file version (the stat key), since a video and its flow cache both ask.
    """
    path = Path(path).resolve()
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file())
            h = hashlib.sha256()
            for p in files:
                h.update(f"{p.name}\0{_content_digest(p)}\0".encode())
            return {"kind": "folder", "files": len(files), "sha256": h.hexdigest()}
        return {"kind": "file", "size": path.stat().st_size, "sha256": _content_digest(path)}
    except OSError as e:
        raise ZoomdreamError(f"{path}: cannot read ({e.strerror or e})") from None


def _content_digest(path: Path) -> str:
    st = path.stat()
    return _digest(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=4096)
def _digest(path: str, *stat_key) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


MANIFEST = "manifest.json"


def work_folder(output: Path) -> Path:
    """The work folder of ``output``: ``.<output name>.zoomdream-work`` beside it (a long name is shortened)."""
    return output.parent / f".{temp_stem(output.name)}{WORK_SUFFIX}"


class FrameCache:
    """The work folder: ``frames/000000.png ...`` plus ``manifest.json``.

    Frames are written atomically, so a file that exists is normally complete; a damaged one
    (cut short by a crash of the machine, say) counts as missing, so it and every frame after
    it are dreamed again. The first missing index is where a resumed run starts. The folder
    is zoomdream's only when it holds a manifest: anything else at its path is left alone.
    """

    def __init__(self, output: Path, manifest: dict, *, restart: bool = False):
        self.folder = work_folder(output)
        self.frames = self.folder / "frames"
        self.manifest = manifest
        manifest_path = self.folder / MANIFEST
        if self.folder.is_symlink() or (os.path.lexists(self.folder) and not self.folder.is_dir()):
            raise ZoomdreamError(f"{self.folder}: zoomdream's work folder goes there, but a file of that name "
                                 f"exists; move it away or choose another output name")
        old = None
        if manifest_path.exists():
            try:
                old = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                old = None
        elif self.folder.exists() and any(self.folder.iterdir()):
            raise ZoomdreamError(f"{self.folder}: folder without a zoomdream manifest; it is not zoomdream's, "
                                 f"so it is left alone: move it away or choose another output name")
        if self.folder.exists() and restart:
            shutil.rmtree(self.folder)  # it holds a manifest (or nothing): zoomdream's work folder
        elif manifest_path.exists() and old != manifest:
            raise ZoomdreamError(f"{self.folder}: frames from an earlier run do not match this one "
                                 f"({_what_changed(old, manifest)}); use --restart to start over")
        try:
            self.frames.mkdir(parents=True, exist_ok=True)
            write_text_atomic(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
        except OSError as e:
            raise ZoomdreamError(f"{self.folder}: cannot create the work folder ({e.strerror or e})") from None
        for leftover in self.frames.glob(f".*{PARTIAL_TAG}*"):  # temps of a killed run
            leftover.unlink(missing_ok=True)

    def path(self, i: int) -> Path:
        return self.frames / (FRAME_PATTERN % i)

    def intact(self, i: int) -> bool:
        """Frame i is there, whole (it ends with its IEND chunk) and decodes."""
        if not png_complete(self.path(i)):  # cheap, and exact for a file cut short
            return False
        try:
            self.load(i)
        except ZoomdreamError:
            return False
        return True

    def complete(self, n: int) -> int:
        """How many frames from index 0 on are already done and intact (capped at n)."""
        i = 0
        while i < n and self.intact(i):
            i += 1
        return i

    def save(self, i: int, frame: np.ndarray) -> None:
        save_png_fast(self.path(i), frame)

    def load(self, i: int) -> np.ndarray:
        return load_png_fast(self.path(i))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _what_changed(old: dict | None, new: dict) -> str:
    if not isinstance(old, dict):
        return "unreadable manifest"
    for key, label in (("input", "input changed"), ("files", _files_changed(old, new)),
                       ("settings", "preset or settings changed"),
                       ("render", "render options changed"), ("kind", "different command"),
                       ("zoomdream", "zoomdream version changed"), ("versions", "library versions changed")):
        if old.get(key) != new.get(key):
            return label
    return "manifest differs"


def _files_changed(old: dict, new: dict) -> str:
    a, b = old.get("files") or {}, new.get("files") or {}
    roles = sorted(r for r in set(a) | set(b) if a.get(r) != b.get(r))
    return f"{roles[0] if roles else 'a'} file changed"


def render_manifest(kind: str, input_path, settings: Settings, render: dict, files: dict | None = None) -> dict:
    """The work folder's identity: a resume is refused unless every entry is the same.

    ``files``: role -> path of every other file the frames depend on (mask, audio, ...); the
    settings' guide and weights files are added here. Files are identified by content.
    """
    d = settings.dream
    files = {**(files or {}), "guide": d.guide, "weights": d.weights_file}
    return {
        "kind": kind,
        "zoomdream": __version__,
        "input": file_identity(input_path),
        "files": {role: file_identity(p) for role, p in sorted(files.items()) if p is not None},
        "settings": json.loads(json.dumps(_frame_settings(kind, settings), default=str)),
        "render": json.loads(json.dumps(render, default=str)),
        "versions": {**versions(), "ffmpeg": ffmpeg_version()},
    }


def _frame_settings(kind: str, settings: Settings) -> dict:
    """The settings that decide the frames' pixels (not the description, not output-only options)."""
    data = to_dict(settings)
    data.pop("description", None)
    if kind == "video":
        data.pop("zoom", None)
    else:
        data.pop("video", None)
        data["zoom"].pop("pingpong", None)  # ordering only: the frames are the same
        data["zoom"].pop("frames", None)  # a longer run extends a shorter one
    return data


# Distributions that install the ``tensorflow`` module, most common first.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly")


def versions() -> dict:
    """The versions of the libraries that decide the pixels.

    Read from a loaded module, else from the installed distribution, so a render that never
    dreams (``--iterations 0``) never imports TensorFlow.
    """
    out = {}
    for mod, dists in (("tensorflow", TF_DISTRIBUTIONS), ("keras", ("keras",)), ("numpy", ("numpy",)),
                       ("cv2", ("opencv-python-headless", "opencv-python", "opencv-contrib-python"))):
        version = getattr(sys.modules.get(mod), "__version__", None) or _installed(dists)
        if version is not None:
            out[mod] = version
    return out


def _installed(dists: tuple[str, ...]) -> str | None:
    for name in dists:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None
