"""Renders: a still, a layer sheet, and the one frame loop behind video and zoom.

The frame loop (``run_frames``) is shared: for each frame index it builds an init
image (video: the source frame plus the flow-warped dream of the previous frame; zoom:
the previous output moved by the motion schedule), dreams it, and saves it losslessly
into a work folder beside the output. That folder is the resume point: its manifest
records the input's identity and every frame-determining setting, so running the same
command again continues after the last complete frame and produces byte-identical
frames, while a changed input or preset is refused. The encoder reads the finished
frames from the folder, so the output file appears only when complete.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0; frame i of a
video is source time ``start + i / fps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import __version__
from .checks import check_budget, check_render, frame_size
from .errors import Interrupted, Terminated, ZoomdreamError
from .fileio import PARTIAL_TAG, check_output_path, output_lock, sidecar_path, temp_stem, write_text_atomic
from .settings import Settings

log = logging.getLogger("zoomdream")

WORK_SUFFIX = ".zoomdream-work"  # the work folder is ".<output name>.zoomdream-work" beside the output
FRAME_PATTERN = "%06d.png"  # zero-padded: numeric order is lexicographic order past 999
SHEET_BACKGROUND = 24  # dark grey behind empty cells of a layer sheet
ABORT_AFTER_ENV = "ZOOMDREAM_TEST_ABORT_AFTER"  # tests: raise KeyboardInterrupt after this many new frames


# ---------------------------------------------------------------- helpers
def _progress(total: int, *, quiet: bool, unit: str, desc: str, initial: int = 0):
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=quiet, dynamic_ncols=True,
                leave=False, smoothing=0.1)


def _sidecar(output: Path, settings: Settings, extra: dict) -> None:
    """The fully resolved settings beside the output (``out.png.yaml``): itself a valid preset."""
    from . import presets  # noqa: PLC0415

    meta = {"zoomdream": __version__, **extra}
    meta.update(_versions())
    write_text_atomic(sidecar_path(output), presets.dump(settings, meta=meta))


def _versions() -> dict:
    from ._tf import tf as _tf  # noqa: PLC0415  (quietly: a bare import would print TensorFlow's C++ log lines)

    _tf()
    out = {}
    for mod in ("tensorflow", "keras", "numpy", "cv2"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out


def _load_backbone_and_objective(settings: Settings, extra_layers: dict | None = None):
    from .backbones import load_backbone  # noqa: PLC0415
    from .images import load_image  # noqa: PLC0415
    from .objectives import from_settings  # noqa: PLC0415

    d = settings.dream
    guide = load_image(d.guide) if d.guide else None
    backbone = load_backbone(d.model, weights=d.weights, precision=d.precision)
    if extra_layers:  # keyframed layers: every layer any keyframe names is in the graph (weight 0 when absent)
        d = dataclasses.replace(d, layers={**{k: 0.0 for k in extra_layers}, **d.layers})
    return backbone, from_settings(d, backbone, guide)


def _still(settings: Settings) -> Settings:
    """A still takes every schedule's value at frame 0 (with no audio)."""
    from .animation import still_dream  # noqa: PLC0415

    return dataclasses.replace(settings, dream=still_dream(settings.dream))


def _animation(settings: Settings, *, kind: str, n: int, fps: float, audio: tuple[str, float] | None):
    """The render's animated values for frames 0..n-1 (``audio``: (file, seconds at frame 0) or None).

    Everything is evaluated and checked here, before any frame is rendered; the soundtrack is
    analysed only when a schedule uses an audio feature.
    """
    from .animation import Animation, features_used  # noqa: PLC0415

    features = None
    if audio is not None and features_used(settings, kind):
        from .audio import frame_features  # noqa: PLC0415

        features = frame_features(audio[0], fps=float(fps), n=n, offset=audio[1])
    return Animation(settings, kind=kind, n=n, fps=float(fps), features=features)


def _audio_manifest(settings: Settings, kind: str, audio: tuple[str, float] | None, n: int) -> dict:
    """What the frames depend on beyond the settings: the analysed soundtrack, and ``n`` when a schedule uses it."""
    from .animation import features_used, uses_frame_count  # noqa: PLC0415

    out = {}
    if audio is not None and features_used(settings, kind):
        from .audio import ANALYSIS_VERSION, analysis_library_version  # noqa: PLC0415

        out["audio"] = {"file": file_identity(audio[0]), "offset": audio[1], "analysis": ANALYSIS_VERSION,
                        "librosa": analysis_library_version()}
    if uses_frame_count(settings, kind):
        out["n"] = n
    return out


def _numeric(settings: Settings, anim) -> Settings:
    """Settings whose dream values are plain numbers (frame 0's): what the backbone and objective are built from."""
    d = dataclasses.replace(settings.dream, step=anim.step(0), layers=anim.constant_layers())
    return dataclasses.replace(settings, dream=d)


def _check_still_output(output, inputs, overwrite) -> Path:
    from .images import SAVE_FORMATS  # noqa: PLC0415  (the formats save_image writes)

    ext = Path(output).suffix.lower()
    if os.fspath(output).strip() and ext not in SAVE_FORMATS:
        raise ZoomdreamError(f"{output}: unsupported image format '{ext or '(none)'}' (use .png or .jpg)")
    return check_output_path(output, inputs=inputs, overwrite=overwrite, kinds=tuple(SAVE_FORMATS))


def render_inputs(settings: Settings, *paths) -> tuple:
    """Every file a render reads: ``paths`` plus the settings' guide and weights files."""
    d = settings.dream
    weights = d.weights if d.weights not in (None, "random") else None
    return tuple(p for p in (*paths, d.guide, weights) if p is not None)


# ---------------------------------------------------------------- stills
def render_image(input, output, *, settings: Settings, overwrite: bool = False, quiet: bool = False) -> np.ndarray:
    """Dream one photo into ``output`` (PNG/JPEG) with a settings sidecar; returns the dreamed RGB array."""
    from .dream import dream_image, total_steps  # noqa: PLC0415
    from .images import load_image, save_image  # noqa: PLC0415

    check_render(settings, input=input)
    out = _check_still_output(output, render_inputs(settings, input), overwrite)
    settings = _still(settings)
    with output_lock(out):
        image = load_image(input, max_size=settings.dream.max_size)
        check_budget(out, frames=1, size=image.shape[1::-1])
        backbone, objective = _load_backbone_and_objective(settings)
        steps = total_steps(image.shape[:2], settings.dream, backbone.min_size)
        with _progress(steps, quiet=quiet, unit="step", desc="dreaming") as bar:
            result = dream_image(image, settings=settings.dream, backbone=backbone, objective=objective,
                                 progress=bar.update)
        save_image(out, result)
        _sidecar(out, settings, {"input": str(Path(input).resolve()), "weights": backbone.weights,
                                 "precision": backbone.precision})
    return result


def render_sheet(input, output, *, settings: Settings, layers: list[str] | None = None, cell: int = 256,
                 overwrite: bool = False, quiet: bool = False) -> np.ndarray:
    """One dream per layer (the backbone's interesting ones by default), as a labelled grid."""
    check_render(settings, input=input, cell=cell)
    out = _check_still_output(output, render_inputs(settings, input), overwrite)
    with output_lock(out):
        return _sheet(input, out, settings=settings, layers=layers, cell=cell, quiet=quiet)


def _sheet(input, out: Path, *, settings: Settings, layers: list[str] | None, cell: int, quiet: bool) -> np.ndarray:
    from .backbones import load_backbone  # noqa: PLC0415
    from .dream import dream_image, total_steps  # noqa: PLC0415
    from .images import load_image, save_image, resize_max  # noqa: PLC0415
    from .objectives import layer as layer_objective  # noqa: PLC0415

    settings = _still(settings)
    image = resize_max(load_image(input), cell)
    check_budget(out, frames=1, size=image.shape[1::-1])
    d = settings.dream
    backbone = load_backbone(d.model, weights=d.weights, precision=d.precision)
    layers = layers or list(backbone.spec.interesting)
    for name in layers:
        backbone._layer(name)  # unknown layer: one clear error before any dreaming
    cells = [_label(image, "original")]
    steps = total_steps(image.shape[:2], d, backbone.min_size)
    with _progress(steps * len(layers), quiet=quiet, unit="step", desc="sheet") as bar:
        for name in layers:
            dreamed = dream_image(image, settings=d, backbone=backbone,
                                  objective=layer_objective(name, border=d.border), progress=bar.update)
            cells.append(_label(dreamed, name))
    cols = min(4, len(cells))
    rows = -(-len(cells) // cols)
    h, w = cells[0].shape[:2]
    sheet = np.full((rows * h, cols * w, 3), SHEET_BACKGROUND, np.uint8)  # (rows*h, cols*w, 3)
    for i, c in enumerate(cells):
        r, k = divmod(i, cols)
        sheet[r * h:(r + 1) * h, k * w:(k + 1) * w] = c
    save_image(out, sheet)
    _sidecar(out, settings, {"input": str(Path(input).resolve()), "sheet_layers": layers})
    return sheet


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` on a dark band at the bottom of a copy of ``image``."""
    import cv2  # noqa: PLC0415

    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.35, w / 600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = th + base + 6
    out[h - band:] = (out[h - band:] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, h - base - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------- the frame cache (resume point)
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
        from .images import png_complete  # noqa: PLC0415

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
        from .images import save_png_fast  # noqa: PLC0415

        save_png_fast(self.path(i), frame)

    def load(self, i: int) -> np.ndarray:
        from .images import load_png_fast  # noqa: PLC0415

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


@contextlib.contextmanager
def _signals_to_exceptions():
    """SIGTERM raises Terminated in the main thread, so the loop's cleanup runs (CLI or library)."""
    def on_term(signum, frame):
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_frames(cache: FrameCache, n_frames: int, make_frame: Callable[[int, np.ndarray | None], np.ndarray], *,
               quiet: bool, desc: str) -> None:
    """The shared frame loop: frame i = make_frame(i, previous output) for every i not yet in the cache.

    The previous output is always the saved (lossless) frame, in fresh and resumed runs
    alike, so both produce the same bytes. Ctrl-C / SIGTERM become :class:`Interrupted`
    with a line that says how to continue.
    """
    start = cache.complete(n_frames)  # a damaged frame counts as missing: it and those after it are dreamed again
    prev = cache.load(start - 1) if start > 0 else None
    if 0 < start < n_frames:
        log.info("resuming after frame %d/%d", start, n_frames)
    abort_after = int(os.environ.get(ABORT_AFTER_ENV, "-1"))
    done = start
    try:
        with _signals_to_exceptions(), _progress(n_frames, quiet=quiet, unit="frame", desc=desc,
                                                   initial=start) as bar:
            for i in range(start, n_frames):
                if abort_after >= 0 and i - start >= abort_after:
                    raise KeyboardInterrupt
                prev = make_frame(i, prev)
                cache.save(i, prev)
                done = i + 1
                bar.update(1)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after frame {done}/{n_frames}; run the same command again to resume "
                          f"(or add --restart to start over)", 130) from None
    except Terminated:
        raise Interrupted(f"terminated after frame {done}/{n_frames}; run the same command again to resume "
                          f"(or add --restart to start over)", 143) from None


def _finish(cache: FrameCache, n_frames: int, output: Path, *, fps: Fraction, audio, crf: int, keep_frames: bool,
            quiet: bool, settings: Settings, extra: dict, order: list[int] | None = None) -> None:
    """Encode the cached frames into the output (atomic), write the sidecar, drop the work folder."""
    from .media import encode  # noqa: PLC0415

    frames_dir, count = cache.frames, n_frames
    if order is not None:  # e.g. ping-pong: a second numbering made of hard links
        frames_dir = cache.folder / "sequence"
        shutil.rmtree(frames_dir, ignore_errors=True)
        frames_dir.mkdir()
        for k, i in enumerate(order):
            os.link(cache.path(i), frames_dir / (FRAME_PATTERN % k))
        count = len(order)
    try:
        with _signals_to_exceptions():
            if not quiet:
                log.info("encoding %d frames to %s", count, output.name)
            encode(frames_dir, FRAME_PATTERN, count, output, fps=fps, audio=audio, crf=crf)
    except (KeyboardInterrupt, Terminated) as e:
        code = 143 if isinstance(e, Terminated) else 130
        raise Interrupted("interrupted while encoding; all frames are kept: run the same command again to "
                          "encode them", code) from None
    _sidecar(output, settings, extra)
    if keep_frames:
        log.info("frames kept in %s", cache.folder)
    else:
        cache.remove()


def _render_manifest(kind: str, input_path, settings: Settings, render: dict, files: dict | None = None) -> dict:
    """The work folder's identity: a resume is refused unless every entry is the same.

    ``files``: role -> path of every other file the frames depend on (mask, audio, ...); the
    settings' guide and weights files are added here. Files are identified by content.
    """
    from .media import ffmpeg_version  # noqa: PLC0415

    d = settings.dream
    files = {**(files or {}), "guide": d.guide, "weights": d.weights if d.weights != "random" else None}
    return {
        "kind": kind,
        "zoomdream": __version__,
        "input": file_identity(input_path),
        "files": {role: file_identity(p) for role, p in sorted(files.items()) if p is not None},
        "settings": json.loads(json.dumps(_frame_settings(kind, settings), default=str)),
        "render": json.loads(json.dumps(render, default=str)),
        "versions": {**_versions(), "ffmpeg": ffmpeg_version()},
    }


def _frame_settings(kind: str, settings: Settings) -> dict:
    """The settings that decide the frames' pixels (not the description, not output-only options)."""
    from .settings import to_dict  # noqa: PLC0415

    data = to_dict(settings)
    data.pop("description", None)
    if kind == "video":
        data.pop("zoom", None)
    else:
        data.pop("video", None)
        data["zoom"].pop("pingpong", None)  # ordering only: the frames are the same
        data["zoom"].pop("frames", None)  # a longer run extends a shorter one
    return data


# ---------------------------------------------------------------- video
def _prepare_output(output, inputs, overwrite) -> Path:
    from .media import output_kind  # noqa: PLC0415

    kind = output_kind(output) if os.fspath(output).strip() else "folder"  # an empty path is refused below
    return check_output_path(output, inputs=inputs, overwrite=overwrite, is_dir=kind == "folder",
                             kinds=(".mp4", ".gif"))


class _Mask:
    """``--mask``: a still image, or a video whose frame i masks frame i (its last frame holds after it ends).

    Convention: ``at(i, (w, h))`` returns float32 (H, W) in [0, 1]; 1 = dream fully there.
    """

    def __init__(self, path):
        from . import media  # noqa: PLC0415
        from .images import IMAGE_EXTENSIONS, load_image  # noqa: PLC0415

        self.still, self.frames, self.current, self.index = None, None, None, -1
        if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            self.still = self._grey(load_image(path))
        else:
            self.frames = media.iter_frames(media.probe(path))

    @staticmethod
    def _grey(rgb: np.ndarray) -> np.ndarray:
        return rgb.astype(np.float32).mean(axis=2) / 255.0  # (h, w)

    def at(self, i: int, size: tuple[int, int]) -> np.ndarray:
        import cv2  # noqa: PLC0415

        if self.still is None:
            while self.index < i:
                nxt = next(self.frames, None)
                if nxt is None:
                    break
                self.current, self.index = self._grey(nxt), self.index + 1
            m = self.current
        else:
            m = self.still
        return m if m.shape[::-1] == size else cv2.resize(m, size, interpolation=cv2.INTER_AREA)

    def close(self):
        if self.frames is not None:
            self.frames.close()


def render_video(input, output, *, settings: Settings, start: float = 0.0, end: float | None = None,
                 preview: int | None = None, fps: Fraction | None = None, crf: int = 18,
                 keep_frames: bool = False, restart: bool = False, overwrite: bool = False, mask=None,
                 audio=None, quiet: bool = False) -> dict:
    """Dream a video (or a folder of numbered images) frame by frame into ``output``.

    ``audio``: a soundtrack file that replaces the clip's (from its start, at output frame 0) and
    feeds the audio features of schedules; without it they come from the clip's own soundtrack.
    Returns a summary: frames, fps, the mean added flicker and the dreamed frames' (width, height).
    """
    check_render(settings, input=input, input_folder_ok=True, mask=mask, audio=audio, start=start, end=end,
                 preview=preview, fps=fps, crf=crf)
    out = _prepare_output(output, render_inputs(settings, input, mask, audio), overwrite)
    if start < 0 or (end is not None and end <= start):
        raise ZoomdreamError(f"--start {start} / --end {end}: expected 0 <= start < end")
    with output_lock(out):
        return _render_video(input, out, settings=settings, start=start, end=end, preview=preview, fps=fps,
                             crf=crf, keep_frames=keep_frames, restart=restart, mask=mask, audio=audio, quiet=quiet)


def _render_video(input, out: Path, *, settings: Settings, start, end, preview, fps, crf, keep_frames, restart,
                  mask, audio, quiet) -> dict:
    from . import media  # noqa: PLC0415

    info = media.probe(input, fps=fps)
    for note in info.notes:  # VFR resampled, truncated file, alpha composited, HDR
        log.warning("%s: %s", Path(input).name, note)
    n = media.frame_count(info, start=start, end=end, max_frames=preview)
    d = settings.dream
    track = video_track(info, start=start, audio=audio)
    n_all = media.frame_count(info, start=start, end=end)  # schedules see the whole range, --preview or not
    anim = _animation(settings, kind="video", n=n_all, fps=info.fps, audio=track)
    check_budget(out, frames=n, size=frame_size((info.width, info.height), d.max_size),
                 flow_cache=_cache_dir() / "flow", work_frames=work_folder(out) / "frames")
    manifest = _render_manifest("video", input, settings, {"start": start, "end": end, "fps": str(info.fps),
                                                          "max_size": d.max_size,
                                                          **_audio_manifest(settings, "video", track, n_all)},
                                files={"mask": mask})
    cache = FrameCache(out, manifest, restart=restart)
    loop = _VideoLoop(info, settings, start=start, end=end, mask=mask, quiet=quiet, audio=audio, animation=anim)
    try:
        run_frames(cache, n, loop.frame, quiet=quiet, desc="dreaming")
    finally:
        loop.close()
    sound = output_soundtrack(info, start=start, end=end, preview=preview, audio=audio)
    size = cache.load(n - 1).shape[1::-1]  # (w, h) of the dreamed frames, after max_size
    _finish(cache, n, out, fps=info.fps, audio=sound, crf=crf, keep_frames=keep_frames, quiet=quiet,
            settings=settings, extra={"input": info.path, "start": start, "end": end, "frames": n,
                                      "fps": str(info.fps)})
    flicker = loop.flicker.mean if loop.flicker.count else float("nan")
    if not quiet:
        text = f"{flicker:.2f}" if loop.flicker.count else "n/a (fewer than 2 new frames)"
        log.info("wrote %s: %d frames at %s fps; added flicker %s", out.name, n, _fps_text(info.fps), text)
    return {"frames": n, "fps": info.fps, "flicker": flicker, "size": size}


def video_track(info, *, start: float, audio=None) -> tuple[str, float] | None:
    """Where a video's audio features come from: (file, seconds into it at output frame 0), or None.

    ``audio`` (a file) starts at output frame 0; otherwise the clip's own soundtrack at ``start``.
    """
    from . import media  # noqa: PLC0415

    if audio is not None:
        if not media.has_audio(audio):
            raise ZoomdreamError(f"{audio}: no audio stream found")
        return os.path.abspath(audio), 0.0
    if info.has_audio and not info.images:
        return info.path, info.video_start + start
    return None


def output_soundtrack(info, *, start: float, end: float | None, preview: int | None, audio=None):
    """The output's soundtrack: ``audio`` from its start when given, else the clip's own (an AudioSource or None)."""
    from . import media  # noqa: PLC0415

    if audio is None:
        return media.audio_source(info, start=start, end=end, max_frames=preview)
    n = media.frame_count(info, start=start, end=end, max_frames=preview)
    return media.AudioSource(os.path.abspath(audio), 0.0, float(n / info.fps))


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f} ({fps})"


class _VideoLoop:
    """Per-frame work for ``render_video``: flow, carry-over, dreaming, flicker bookkeeping."""

    def __init__(self, info, settings: Settings, *, start, end, mask, quiet, skip: int = 0, audio=None,
                 animation=None):
        """``skip``: the first frame this loop will be asked for (earlier ones are never decoded).

        ``animation``: the render's animated values (built here from ``audio`` or the clip's soundtrack if None).
        """
        from . import colour, flow, media, motion  # noqa: PLC0415
        from .dream import octave_note, to_uint8, to_unit  # noqa: PLC0415

        self.flow, self.motion, self.to_unit, self.to_uint8 = flow, motion, to_unit, to_uint8
        self.colour = colour
        if animation is None:
            animation = _animation(settings, kind="video", n=media.frame_count(info, start=start, end=end),
                                   fps=info.fps, audio=video_track(info, start=start, audio=audio))
        self.anim = animation
        self.settings = _numeric(settings, animation)
        self.dreams = settings.dream.iterations > 0  # --iterations 0: motion alone, no backbone at all
        self.backbone, self.objective = (_load_backbone_and_objective(self.settings) if self.dreams
                                         else (None, None))
        size = frame_size((info.width, info.height), settings.dream.max_size)  # (w, h) of every frame
        if self.dreams and (note := octave_note(size[::-1], self.settings.dream, self.backbone.min_size)):
            log.info(note)  # once per render, not once per frame
        self.frames: Iterator[np.ndarray] = media.iter_frames(info, start=start, end=end,
                                                              max_size=settings.dream.max_size, skip=skip)
        self.index = skip - 1  # index of self.src (the last source frame read)
        self.src = self.src_prev = None
        self.mask = None if mask is None else _Mask(mask)
        self.flicker = flow.FlickerMeter()
        camera = [animation.camera_digest()] if animation.camera_moves else []  # flows of the moved frames
        key = json.dumps([file_identity(info.path), start, str(info.fps), settings.dream.max_size,
                          settings.video.flow, *camera], sort_keys=True)
        self.flow_cache = flow.FlowCache(_cache_dir() / "flow", hashlib.sha256(key.encode()).hexdigest()[:20])

    def close(self):
        self.frames.close()
        if self.mask is not None:
            self.mask.close()

    def _source(self, i: int) -> None:
        """Advance the decoder so self.src is source frame i and self.src_prev frame i-1."""
        while self.index < i:
            try:
                frame = next(self.frames)
            except StopIteration:
                raise ZoomdreamError(f"source ended before frame {i + 1}") from None
            self.index += 1
            if self.anim.camera_moves:  # the absolute camera of this frame: one resample of the source
                m = self.anim.camera_matrix(self.index, (frame.shape[1], frame.shape[0]))
                frame = self.motion.warp_affine(frame, m)
            self.src_prev, self.src = self.src, frame

    def _flows(self, i: int):
        cached = self.flow_cache.get(i, shape=self.src.shape[:2])
        if cached is not None:
            return cached
        method = self.settings.video.flow
        bwd = self.flow.compute_flow(self.src, self.src_prev, method)  # (H, W, 2) frame i -> i-1
        fwd = self.flow.compute_flow(self.src_prev, self.src, method)  # (H, W, 2) frame i-1 -> i
        self.flow_cache.put(i, bwd, fwd)
        # What the cache hands a later run (float16), so cold and warm runs make the same frames.
        return bwd.astype(np.float16).astype(np.float32), fwd.astype(np.float16).astype(np.float32)

    def frame(self, i: int, prev_out: np.ndarray | None) -> np.ndarray:
        from .dream import dream  # noqa: PLC0415

        v, d = self.settings.video, self.settings.dream
        self._source(i)
        src = self.src
        blend = self.anim.blend(i)
        carry = prev_out is not None and blend > 0 and self.src_prev is not None
        if carry and self.flow.scene_cut_score(self.src_prev, src) > v.scene_cut:
            log.info("scene cut at frame %d: starting the dream afresh", i)
            carry = False
        init = self.to_unit(src)  # (H, W, 3) unit range
        bwd = valid = None
        if prev_out is not None and self.src_prev is not None:
            bwd, fwd = self._flows(i)
            valid = (self.flow.occlusion_mask(bwd, fwd, threshold=v.occlusion) if v.occlusion > 0
                     else np.ones(src.shape[:2], np.float32))  # (H, W) 1 = flow explains the pixel
        if carry:
            delta = self.to_unit(prev_out) - self.to_unit(self.src_prev)  # (H, W, 3) the previous dream delta
            init = init + blend * valid[..., None] * self.flow.warp(delta, bwd)
        if self.dreams:
            iterations = v.iterations_per_frame if carry else d.iterations
            layers = self.anim.layers(i)
            objective = self.objective if layers is None else self.objective.with_weights(layers)
            d = dataclasses.replace(d, step=self.anim.step(i))
            mask = None if self.mask is None else self.mask.at(i, (src.shape[1], src.shape[0]))
            out = self.to_uint8(dream(init, objective, self.backbone, d, frame=i, iterations=iterations, mask=mask))
        else:
            out = self.to_uint8(init)
        lock = self.anim.colour_lock(i)
        if lock > 0:  # toward this source frame's own colours (as the camera shows it)
            out = self.colour.colour_lock(out, self.colour.colour_reference(src), lock)
        self.last_flicker = float("nan")
        if prev_out is not None and bwd is not None:
            self.last_flicker = self.flicker.add(prev_out, out, self.src_prev, src, bwd, valid)
        return out


def dream_frames(info, settings: Settings, *, first: int, stop: int, warmup: int = 0, start: float = 0.0,
                 end: float | None = None, mask=None, audio=None) -> Iterator[tuple[int, np.ndarray, float]]:
    """Dream video frames ``first <= i < stop`` on their own: a chunk of a longer render.

    The chunk starts afresh (no carried dream) at ``first - warmup``; the warm-up frames
    are dreamed and dropped, so the first kept frame already carries a settled dream.
    Yields ``(i, frame, added_flicker)`` for each kept frame (flicker is nan for a frame
    with no predecessor). Frame i is the same source frame and jitter as in a sequential
    run, so two runs with the same chunking give identical frames.
    """
    begin = max(0, first - warmup)
    # The chunk starts afresh at `begin`, which needs no earlier source frame: decoding seeks there.
    loop = _VideoLoop(info, settings, start=start, end=end, mask=mask, quiet=True, skip=begin, audio=audio)
    prev = None
    try:
        for i in range(begin, stop):
            prev = loop.frame(i, prev)
            if i >= first:
                yield i, prev, loop.last_flicker
    finally:
        loop.close()


def _cache_dir() -> Path:
    """Per-user cache (flow fields): $ZOOMDREAM_CACHE, else $XDG_CACHE_HOME/zoomdream, else ~/.cache/zoomdream."""
    env = os.environ.get("ZOOMDREAM_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zoomdream"


# ---------------------------------------------------------------- zoom
def render_zoom(input, output, *, settings: Settings, crf: int = 18, keep_frames: bool = False,
                restart: bool = False, overwrite: bool = False, audio=None, quiet: bool = False) -> dict:
    """The infinite zoom: dream a photo, move it a little, dream again, feeding each frame back in."""
    check_render(settings, input=input, audio=audio, crf=crf)
    out = _prepare_output(output, render_inputs(settings, input, audio), overwrite)
    with output_lock(out):
        return _render_zoom(input, out, settings=settings, crf=crf, keep_frames=keep_frames, restart=restart,
                            audio=audio, quiet=quiet)


def _render_zoom(input, out: Path, *, settings: Settings, crf, keep_frames, restart, audio, quiet) -> dict:
    from . import media  # noqa: PLC0415
    from .images import fit_size, load_image  # noqa: PLC0415

    z = settings.zoom
    if audio is not None and not media.has_audio(audio):
        raise ZoomdreamError(f"{audio}: no audio stream found")
    photo = load_image(input, max_size=settings.dream.max_size)
    check_budget(out, frames=z.frames, size=tuple(z.size or photo.shape[1::-1]),
                 work_frames=work_folder(out) / "frames")
    if z.size is not None:
        photo = fit_size(photo, tuple(z.size))
    n = z.frames
    track = None if audio is None else (os.path.abspath(audio), 0.0)
    anim = _animation(settings, kind="zoom", n=n, fps=z.fps, audio=track)
    manifest = _render_manifest("zoom", input, settings, {"size": [photo.shape[1], photo.shape[0]],
                                                         **_audio_manifest(settings, "zoom", track, n)})
    cache = FrameCache(out, manifest, restart=restart)
    loop = _ZoomLoop(photo, settings, animation=anim)
    run_frames(cache, n, loop.frame, quiet=quiet, desc="zooming")
    fps = Fraction(z.fps).limit_denominator(1001)
    order = list(range(n)) + list(range(n - 2, 0, -1)) if z.pingpong and n > 2 else None
    total = len(order) if order else n
    track = None if audio is None else media.AudioSource(str(Path(audio).resolve()), 0.0, total / float(fps))
    _finish(cache, n, out, fps=fps, audio=track, crf=crf, keep_frames=keep_frames, quiet=quiet,
            settings=settings, extra={"input": str(Path(input).resolve()), "frames": total}, order=order)
    if not quiet:
        log.info("wrote %s: %d frames at %s fps", out.name, total, _fps_text(fps))
    return {"frames": total, "fps": fps, "size": (photo.shape[1], photo.shape[0])}


class _ZoomLoop:
    """Per-frame work for ``render_zoom``: one affine warp of the previous frame, then a dream."""

    def __init__(self, photo: np.ndarray, settings: Settings, *, animation=None):
        """``animation``: the render's animated values (built here, without audio, if None)."""
        from . import colour, motion  # noqa: PLC0415
        from .dream import octave_note  # noqa: PLC0415

        self.motion, self.colour = motion, colour
        self.photo = photo
        z = settings.zoom
        if animation is None:
            animation = _animation(settings, kind="zoom", n=z.frames, fps=z.fps, audio=None)
        self.anim = animation
        settings = self.settings = _numeric(settings, animation)
        extra = {name: 0.0 for frame in (z.layers or {}).values() for name in frame}
        self.dreams = settings.dream.iterations > 0  # --iterations 0: motion alone, no backbone at all
        self.backbone, self.objective = (_load_backbone_and_objective(settings, extra) if self.dreams
                                         else (None, None))
        if self.dreams and (note := octave_note(photo.shape[:2], settings.dream, self.backbone.min_size)):
            log.info(note)  # frame 0's octaves (later frames use octaves_per_frame); once per render
        self.ref_stats = colour.colour_reference(photo)
        # Later frames dream at full size only: detail lost to magnification is re-grown every frame,
        # while the large structures come from the feedback itself (more octaves blur them into flat blobs).
        self.frame_settings = dataclasses.replace(settings.dream, octaves=z.octaves_per_frame)

    def frame(self, i: int, prev_out: np.ndarray | None) -> np.ndarray:
        from .dream import dream, to_uint8, to_unit  # noqa: PLC0415

        z, d = self.settings.zoom, self.settings.dream
        h, w = self.photo.shape[:2]
        if prev_out is None:
            init, iterations = self.photo, d.iterations
        else:
            m = self.motion.frame_matrix(self.anim.motion(i), fps=z.fps, size=(w, h))
            init, iterations, d = self.motion.warp_affine(prev_out, m), z.iterations_per_frame, self.frame_settings
        if i % z.dream_every or not self.dreams:
            out = init  # pure motion between dreamed frames (or everywhere, with --iterations 0)
        else:
            objective = self.objective
            layers = self.anim.layers(i)
            if layers is not None:
                objective = objective.with_weights(layers)
            d = dataclasses.replace(d, step=self.anim.step(i))
            out = to_uint8(dream(to_unit(init), objective, self.backbone, d, frame=i, iterations=iterations))
        lock = self.anim.colour_lock(i)
        if lock > 0:
            out = self.colour.colour_lock(out, self.ref_stats, lock)
        return out


# ---------------------------------------------------------------- audio features
def render_audio_features(input, output, *, fps: float = 24.0, start: float = 0.0, end: float | None = None,
                          csv=None, width: int = 1200, overwrite: bool = False) -> dict:
    """``zoomdream audio``: a PNG of the features schedules can use, frame by frame at ``fps``; optionally a CSV.

    Frame 0 is ``start`` seconds into the file; frames run to ``end`` (default: the track's end).
    Returns {"frames", "beats", "tempo"}.
    """
    import math  # noqa: PLC0415

    from .audio import analyse, frame_features, plot_features, write_csv  # noqa: PLC0415
    from .images import save_image  # noqa: PLC0415

    if not (start >= 0 and math.isfinite(start)) or (end is not None and not end > start):
        raise ZoomdreamError(f"--start {start} / --end {end}: expected 0 <= start < end")
    out = _check_still_output(output, (input,), overwrite)
    if Path(output).suffix.lower() != ".png":
        raise ZoomdreamError(f"{output}: the features picture is a .png")
    csv_out = None if csv is None else check_output_path(csv, inputs=(input,), overwrite=overwrite)
    a = analyse(input)
    stop = a.duration if end is None else min(end, a.duration)
    if stop <= start:
        raise ZoomdreamError(f"{input}: --start {start} is past the end of the audio ({a.duration:.3f} s)")
    n = max(1, math.ceil((stop - start) * fps - 1e-6))
    features = frame_features(input, fps=fps, n=n, offset=start)
    title = f"{Path(input).name}: {n} frames at {fps:g} fps from {start:g} s; about {a.tempo:.0f} bpm"
    save_image(out, plot_features(features, fps=fps, width=width, title=title))
    if csv_out is not None:
        write_csv(csv_out, features, fps=fps)
    beats = int(np.sum(features["beat"] == 1.0))
    return {"frames": n, "beats": beats, "tempo": a.tempo}
