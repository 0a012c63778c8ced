"""Files zoomdream writes: atomic writes, output checks, the output lock, stale-temp sweeping.

The rule everything here serves: zoomdream deletes or replaces only what it created.

* Every file it produces (stills, frame-cache PNGs, manifests, settings sidecars, videos) is
  written to a hidden temporary file in the target's own folder, named
  ``.<stem>.XXXXXXXX.partial<ext>``, flushed and fsync'ed, then moved into place with
  ``os.replace`` (atomic within one filesystem). A run killed mid-write leaves such a temp;
  the next run of the same output sweeps it (:func:`sweep_temps`), and nothing else.
* :func:`check_output_path` refuses, before any work, every output that could destroy a
  user's file: an empty path, an input (or a folder holding one, at any depth), a path inside
  an input folder, the current folder or one of its parents, and, even with ``overwrite``,
  an existing file of a kind zoomdream does not write or a folder it did not write (a frame
  folder carries a marker file, :data:`FOLDER_MARKER`). The settings sidecar beside the
  output (``out.mp4.yaml``) obeys the same rules, and so does every other output of the
  command (``others``: the features CSV beside the picture): no two outputs share a name.
* :func:`published_together` makes several outputs (an output and its sidecar) appear
  together or not at all: inside it, every atomic write keeps its finished temp, and all of
  them are renamed into place at the end; if one rename fails, those already done are undone
  (the files they replaced come back) and every temp is removed.
* :func:`output_lock` makes a second run of the same output refuse at once; the lock is an
  ``flock`` on a small file beside the output, released by the kernel when a run dies, so
  the next run takes it over.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from zoomdream.errors import ZoomdreamError

__all__ = ["PARTIAL_TAG", "FOLDER_MARKER", "FOLDER_MARKER_TEXT", "FRAME_FILE", "LOCK_SUFFIX", "SIDECAR_SUFFIX",
           "SIDECAR_MARK", "MAX_STEM", "FILE_MODE", "DIR_MODE", "temp_stem", "atomic_path", "make_temp_dir",
           "write_bytes_atomic", "write_text_atomic", "sidecar_path", "is_own_folder", "is_own_sidecar",
           "refuse_overlap", "OutputKind", "check_output_path", "output_lock", "sweep_temps", "check_readable", "cache_dir", "mark_frame_folder"]

PARTIAL_TAG = ".partial"  # every temp name contains it, so leftovers can be swept
FOLDER_MARKER = ".zoomdream-frames"  # inside every frame folder zoomdream writes: "replaceable with --overwrite"
FOLDER_MARKER_TEXT = "frames written by zoomdream; `--overwrite` may replace this folder\n"
FRAME_FILE = re.compile(r"\d{6}\.png")  # the names inside a frame folder zoomdream writes
LOCK_SUFFIX = ".zoomdream-lock"
SIDECAR_SUFFIX = ".yaml"
# Every sidecar's metadata section (presets.META_KEY) starts with zoomdream's version: how one is recognised.
SIDECAR_MARK = re.compile(r"^meta:\s*\{?\s*zoomdream:", re.M)
MAX_STEM = 96  # temp and work-folder names use at most this much of the output's name (+ a hash beyond)
_TEMP_RANDOM = r"[a-z0-9_]{8}"  # tempfile.mkstemp's random part
_NAME_MAX = 255  # fallback for filesystems that don't answer pathconf


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; a finished output gets the usual 0o666 & ~umask.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def temp_stem(name: str) -> str:
    """The part of a file name that its temporaries and work folder are named after.

    Short names are kept whole; a long one is cut and given a hash of the whole name, so
    ``.<stem>.XXXXXXXX.partial.ext`` always fits in a file name and two long names that share
    their first characters never share temporaries.
    """
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_STEM:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{name[:MAX_STEM // 2]}~{digest}"


def _temp_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(temp_stem(name))}\.{_TEMP_RANDOM}{re.escape(PARTIAL_TAG)}(\..*)?")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None,
                folder: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (or in ``folder``, on the same file system); on success it
    replaces ``path``.

    The temp keeps the target's extension (``.x.partial.png``) so tools that pick a
    format by extension still work. On any exception the temp is removed and the
    target is left untouched.
    """
    path = Path(os.path.abspath(path))
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{temp_stem(path.name)}.", suffix=f"{PARTIAL_TAG}{suffix}",
                               dir=path.parent if folder is None else folder)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# ---------------------------------------------------------------- outputs that appear together
_PENDING: contextvars.ContextVar[list | None] = contextvars.ContextVar("zoomdream_pending", default=None)


def publish(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished temp ``tmp`` (a file, or a folder of frames) to ``target``.

    At once, or, inside :func:`published_together`, when that ends, with the other outputs.
    A folder replaces an existing folder (moved aside first, then deleted if it holds nothing
    but frames).
    """
    pending = _PENDING.get()
    if pending is None:
        _commit([(Path(tmp), Path(target))])
    else:
        pending.append((Path(tmp), Path(target)))


@contextlib.contextmanager
def published_together() -> Iterator[None]:
    """Every output finished inside this block is put in place at its end, all or none.

    A failure inside the block (or a Ctrl-C) removes every finished temp, so nothing is
    published. The renames at the end are undone if one of them fails: each target gets back
    the file it had before (or none).
    """
    pending: list[tuple[Path, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
    except BaseException:
        _discard(pending)
        raise
    finally:
        _PENDING.reset(token)
    _commit(pending)


def _discard(pairs) -> None:
    for tmp, _ in pairs:
        _remove(tmp)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each temp onto its target; on a failure undo the renames done and remove every temp."""
    done: list[tuple[Path, Path | None]] = []  # (target, what it held before, moved aside)
    current = None
    try:
        for tmp, current in pairs:
            done.append((current, _put_in_place(tmp, current, keep_old=len(pairs) > 1)))
    except BaseException as e:
        for target, backup in reversed(done):
            with contextlib.suppress(OSError):
                if backup is None:
                    _remove(target)
                elif os.path.isdir(backup) and not os.path.islink(backup):
                    _remove(target)
                    os.rename(backup, target)
                else:
                    os.replace(backup, target)
        _discard(pairs[len(done):])
        if isinstance(e, OSError):
            raise ZoomdreamError(f"{current}: cannot write ({e.strerror or e}); nothing was published") from None
        raise
    for _, backup in done:
        if backup is None:
            continue
        if os.path.isdir(backup) and not os.path.islink(backup):
            if is_own_folder(backup):  # checked again: only zoomdream's frames are deleted
                shutil.rmtree(backup, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(backup)


def _put_in_place(tmp: Path, target: Path, *, keep_old: bool) -> Path | None:
    """Rename ``tmp`` onto ``target``; returns where the target's old content was kept (None: nowhere)."""
    backup = None
    folder = os.path.isdir(tmp)
    if os.path.lexists(target) and (folder or keep_old):
        backup = tmp.with_name(tmp.name + ".old")  # swept like the temp itself
        if folder:
            os.rename(target, backup)  # a folder cannot be replaced in one step
        else:
            try:
                os.link(target, backup, follow_symlinks=False)  # the target stays in place meanwhile
            except OSError:
                os.rename(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        if backup is not None:
            with contextlib.suppress(OSError):
                os.replace(backup, target)
        raise
    return backup


def make_temp_dir(path: str | os.PathLike) -> Path:
    """A new hidden temporary folder beside ``path``, named like its temp files (swept alike)."""
    path = Path(os.path.abspath(path))
    return Path(tempfile.mkdtemp(prefix=f".{temp_stem(path.name)}.", suffix=PARTIAL_TAG, dir=path.parent))


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


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the settings sidecar of ``output`` goes: ``out.mp4`` -> ``out.mp4.yaml``."""
    return Path(os.path.abspath(os.fspath(output).rstrip("/" + os.sep) or os.fspath(output)) + SIDECAR_SUFFIX)


# ---------------------------------------------------------------- what is zoomdream's own
def is_own_folder(path: str | os.PathLike) -> bool:
    """True for a frame folder zoomdream wrote: its marker file, and nothing but frames beside it."""
    path = Path(path)
    try:
        if path.is_symlink() or not (path / FOLDER_MARKER).is_file():
            return False
        with os.scandir(path) as entries:
            return all(e.name == FOLDER_MARKER or (FRAME_FILE.fullmatch(e.name) and e.is_file(follow_symlinks=False))
                       for e in entries)
    except OSError:
        return False


def is_own_sidecar(path: str | os.PathLike) -> bool:
    """True for a settings sidecar zoomdream wrote (a regular YAML file carrying its metadata key)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
            return False
        with open(path, "rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return False
    return SIDECAR_MARK.search(text) is not None


# ---------------------------------------------------------------- the checks before any work
def _real(path) -> str:
    return os.path.realpath(os.path.abspath(path))


def _inside(child: str, parent: str) -> bool:
    """``child`` is ``parent`` or below it (both real, absolute paths)."""
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def _same_file(a: str, b: str) -> bool:
    """Two names of one file (a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _NAME_MAX


def refuse_overlap(out: Path, what: str, inputs: Iterable) -> None:
    """An output (or its sidecar) must not be, hold, or lie inside any input, nor hold the current folder."""
    real = _real(out)
    for inp in inputs:
        if inp is None or os.fspath(inp) == "":
            continue
        inp_real = _real(inp)
        if real == inp_real or _same_file(real, inp_real):
            raise ZoomdreamError(f"{out}: {what} is the input {inp}; choose another output name")
        if _inside(inp_real, real):
            raise ZoomdreamError(f"{out}: {what} is a folder holding the input {inp}; choose another output name")
        if os.path.isdir(inp_real) and _inside(real, inp_real):
            raise ZoomdreamError(f"{out}: {what} lies inside the input folder {inp}; choose another output name")
    if _inside(_real(os.getcwd()), real):
        raise ZoomdreamError(f"{out}: {what} is the current folder or one of its parents; name a new file or folder")


@dataclass(frozen=True)
class OutputKind:
    """What an output is, for :func:`check_output_path`.

    ``what``: its name in messages ("output", "CSV", ...). ``kinds``: extensions (lower case, with
    the dot) of files zoomdream writes there; an existing file is replaced (with ``overwrite``)
    only when it has one of them. ``folder``: the output is a frame folder (else a file).
    ``sidecar``: the output gets a settings sidecar (``out.yaml`` beside it), checked alike.
    """

    what: str = "output"
    kinds: tuple[str, ...] | None = None
    folder: bool = False
    sidecar: bool = True


def check_output_path(out: str | os.PathLike, kind: OutputKind | None = None, *, inputs: Iterable = (),
                      overwrite: bool = False, others: Iterable = ()) -> Path:
    """Check an output location of ``kind`` (default: a file with a sidecar) before any work starts; return it
    as an absolute path.

    Args:
        inputs: every file or folder the render reads (input, guide, mask, weights, audio,
            preset); None entries are skipped.
        others: the command's other outputs, already checked (with their sidecars, where they
            have one): neither this output nor its sidecar may be one of them.

    Raises ZoomdreamError naming the path for anything refused: see the module docstring.
    """
    kind = kind or OutputKind()
    what, kinds, is_dir, sidecar = kind.what, kind.kinds, kind.folder, kind.sidecar
    if not os.fspath(out).strip():
        raise ZoomdreamError("output path is empty; name a file or a new folder (-o dream.mp4)")
    out = Path(os.path.abspath(out))
    inputs = tuple(inputs)
    refuse_overlap(out, what, inputs)
    mine = [(out, what)] + ([(sidecar_path(out), "settings sidecar")] if sidecar else [])
    for other in others:
        for path, name in mine:
            if _real(path) == _real(other) or _same_file(path, other) or _inside(_real(other), _real(path)):
                raise ZoomdreamError(f"{path}: the {name} would overwrite {other}, another output of this "
                                     f"command; choose distinct names")
    if kinds is not None and not is_dir and out.suffix.lower() not in kinds:
        raise ZoomdreamError(f"{out}: a {what} named '{out.suffix or '(no extension)'}' is not of a kind zoomdream "
                             f"writes here ({', '.join(kinds)})")
    parent = out.parent
    if not parent.is_dir():
        raise ZoomdreamError(f"{out}: output folder {parent} does not exist")
    limit = _name_max(parent)
    names = [out.name, f".{temp_stem(out.name)}{LOCK_SUFFIX}"] + ([sidecar_path(out).name] if sidecar else [])
    for name in names:
        if len(os.fsencode(name)) > limit:
            raise ZoomdreamError(f"{out}: name too long (zoomdream writes {name[:40]}..., over {limit} bytes)")
    if os.path.lexists(out):
        if not overwrite:
            raise ZoomdreamError(f"{out}: {what} already exists; pass --overwrite to replace it")
        _check_replaceable(out, is_dir, kinds)
    if sidecar:
        side = sidecar_path(out)
        refuse_overlap(side, "settings sidecar", inputs)
        if os.path.lexists(side):
            if not overwrite:
                raise ZoomdreamError(f"{side}: settings sidecar already exists; pass --overwrite to replace it")
            if not is_own_sidecar(side):
                raise ZoomdreamError(f"{side}: exists and is not a settings sidecar written by zoomdream; "
                                     f"move it away or choose another output name")
    # os.access is not enough (root ignores mode bits, read-only mounts): try a real temp file,
    # named like the longest temporary the render will create.
    try:
        with atomic_path(sidecar_path(out) if sidecar else out, suffix=".probe") as probe:
            raise _ProbeDone(probe)
    except _ProbeDone:
        pass
    except OSError as e:
        raise ZoomdreamError(f"{out}: cannot write to folder {parent} ({e.strerror or e})") from None
    return out


class _ProbeDone(Exception):
    """Leaves ``atomic_path`` through its cleanup: the probe temp is removed, nothing replaced."""


def _check_replaceable(out: Path, is_dir: bool, kinds: tuple[str, ...] | None) -> None:
    if os.path.isdir(out):
        if not is_dir:
            raise ZoomdreamError(f"{out}: output exists and is a folder")
        if not is_own_folder(out):
            raise ZoomdreamError(f"{out}: existing folder was not written by zoomdream (no {FOLDER_MARKER} marker, "
                                 f"or files of its own); --overwrite replaces only zoomdream's frame folders")
        return
    if is_dir:
        raise ZoomdreamError(f"{out}: output exists and is a file")
    try:
        regular = stat.S_ISREG(os.stat(out).st_mode)
    except OSError:  # a dangling symlink: replacing it touches nothing else
        regular = True
    if not regular:
        raise ZoomdreamError(f"{out}: output exists and is not a regular file; left untouched")
    if kinds is not None and out.suffix.lower() not in kinds:
        raise ZoomdreamError(f"{out}: existing file is not of a kind zoomdream writes ({', '.join(kinds)})")


# ---------------------------------------------------------------- one run per output; leftovers
@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``out`` for the duration of a render; refuse if another run holds it.

    The lock is ``flock`` on ``.<stem>.zoomdream-lock`` beside the output: the kernel drops it
    when its process dies, so a run that was killed leaves a lock the next run simply takes.
    The file is removed on the way out. Stale temporaries of the output are swept once the
    lock is held (they cannot belong to a live run then).
    """
    out = Path(os.path.abspath(out))
    path = out.parent / f".{temp_stem(out.name)}{LOCK_SUFFIX}"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                         FILE_MODE)
        except OSError as e:
            raise ZoomdreamError(f"{out}: cannot create the lock file {path.name} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise ZoomdreamError(f"{out}: another zoomdream run is writing this output; wait for it to "
                                     f"finish or choose another output name") from None
            raise ZoomdreamError(f"{out}: cannot lock {path.name} ({e.strerror or e})") from None
        # The previous holder may have removed the file between our open and our lock: then
        # we hold a lock on a deleted file, and must start again on the path itself.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"zoomdream pid {os.getpid()}\n".encode())
        sweep_temps(out)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def sweep_temps(out: str | os.PathLike) -> list[str]:
    """Remove zoomdream's own stale temporaries of ``out`` (and of its sidecar); return their names.

    Only names of the exact temp pattern are touched: files, and temp folders holding nothing
    but frames (the folder writer's). Call it while holding :func:`output_lock`.
    """
    out = Path(os.path.abspath(out))
    patterns = [_temp_pattern(out.name), _temp_pattern(sidecar_path(out).name)]
    removed = []
    try:
        with os.scandir(out.parent) as it:
            entries = list(it)
    except OSError:
        return removed
    for e in entries:
        base = e.name[:-len(".old")] if e.name.endswith(".old") else e.name
        if not any(p.fullmatch(base) for p in patterns):
            continue
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):
                if all(FRAME_FILE.fullmatch(n) or n == FOLDER_MARKER for n in os.listdir(e.path)):
                    shutil.rmtree(e.path)
                    removed.append(e.name)
            elif e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(e.name)
    return removed


# ---------------------------------------------------------------- files read
def check_readable(path, what: str, *, folder_ok: bool = False, empty_ok: bool = True) -> os.stat_result:
    """``path`` is a regular file (or a folder, where ``folder_ok``) that can be read; its stat.

    The one check of a file zoomdream is about to read (an input, a mask, a preset, weights).
    It stats before opening, so a FIFO or a device is refused without blocking on it, then opens
    without blocking, so a file that cannot be read is refused before any work. Raises
    ZoomdreamError "<path>: <problem>" naming ``what`` the file is ("input", "image", "preset file").
    """
    text = os.fspath(path)
    shown = text if len(text) <= 200 else f"{text[:120]}...{text[-60:]}"
    if not text or "\0" in text:
        raise ZoomdreamError(f"{what}: {shown!r} is not a file name")
    try:
        st = os.stat(text)
    except (FileNotFoundError, NotADirectoryError):
        raise ZoomdreamError(f"{shown}: {what} not found") from None
    except OSError as e:
        raise ZoomdreamError(f"{shown}: cannot read the {what} ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        if not folder_ok:
            raise ZoomdreamError(f"{shown}: {what} is a directory, not a file")
        if not os.access(text, os.R_OK | os.X_OK):
            raise ZoomdreamError(f"{shown}: cannot read the {what} folder (permission denied)")
        return st
    if not stat.S_ISREG(st.st_mode):
        raise ZoomdreamError(f"{shown}: {what} is not a regular file (a FIFO, device or socket)")
    if st.st_size == 0 and not empty_ok:
        raise ZoomdreamError(f"{shown}: {what} is an empty file")
    try:
        os.close(os.open(text, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)))
    except OSError as e:
        raise ZoomdreamError(f"{shown}: cannot read the {what} ({e.strerror or e})") from None
    return st


def cache_dir() -> Path:
    """Per-user cache (flow fields): $ZOOMDREAM_CACHE, else $XDG_CACHE_HOME/zoomdream, else ~/.cache/zoomdream."""
    env = os.environ.get("ZOOMDREAM_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zoomdream"


def mark_frame_folder(folder) -> None:
    """Put zoomdream's marker in a frame folder it writes (so ``--overwrite`` may replace that folder later)."""
    write_text_atomic(Path(folder) / FOLDER_MARKER, FOLDER_MARKER_TEXT)
