"""What every route of the studio shares, and the extension point for the Live panel.

:class:`StudioContext` holds the root folder, the security configuration, the settings checks
(the same declarations and messages as presets and the command line), the job queue and the
preview worker. Routes get it as ``request.app.state.ctx``.

Extension point (the Live panel): when a module ``zoomdream.studio.live`` exists, the app factory
calls ``live.routes(ctx)`` and mounts the Starlette routes it returns (beside ``/api``; e.g.
``Route("/api/live", ...)``). The module may register a callable with ``ctx.on_shutdown`` (run
when the studio stops) and start processes with :meth:`StudioContext.start_process` (spawned, so
TensorFlow stays out of the server). The page loads ``static/live.js`` when it exists and gives
it the ``<section id="live">`` of the Live tab to fill; ``window.studio`` offers the page's
helpers (``api``, ``settingsJSON``, ``media``). Everything a live route reads or writes goes
through :meth:`StudioContext.path` / :meth:`StudioContext.output_path` (confined to the root) and
its settings through :meth:`StudioContext.settings_from_json`.
"""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path
from typing import Any, Callable

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import write_text_atomic
from zoomdream.settings import presets
from zoomdream.studio.security import NotFound, Security, confine

__all__ = ["PRESET_MARK", "StudioContext", "error_key", "settings_catalogue"]

STATE_DIR = ".zoomdream-studio"
PRESET_MARK = "# zoomdream studio preset"  # first line of every preset the studio writes
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # fullmatch: "$" would let a trailing newline in
_KEY = re.compile(r"^settings(?::\d+)?: ([A-Za-z_][\w.]*): ")


def error_key(message: str) -> str | None:
    """The dotted settings key a settings error names (``settings: zoom.zoom: ...`` -> ``zoom.zoom``)."""
    m = _KEY.match(message)
    if m and m.group(1) in S.declarations():
        return m.group(1)
    m = re.match(r"^(?:settings: )?([a-z_][\w.]*)(?: \(--[\w-]+\))?:", message)
    return m.group(1) if m and m.group(1) in S.declarations() else None


class StudioContext:
    """The shared state of one studio (see the module docstring)."""

    def __init__(self, root: str | Path, security: Security | None = None, *, jobs: int = 1):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ZoomdreamError(f"{root}: not a folder")
        self.security = security or Security()
        self.state_dir = self.root / STATE_DIR
        self.max_jobs = jobs
        self.on_shutdown: list[Callable[[], Any]] = []
        self.queue = None  # the JobQueue (jobs.py), set by the app factory
        self.worker = None  # the PreviewWorker (workers.py), started on first use

    # ------------------------------------------------------------ paths
    def path(self, relative: str, *, must_exist: bool = True) -> Path:
        """A request's path under the root (raises NotFound: 404)."""
        return confine(self.root, relative, must_exist=must_exist)

    def relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def output_path(self, relative: str) -> Path:
        """Where a render may write: under the root, not in the studio's own state folder."""
        path = confine(self.root, relative, must_exist=False)
        if path == self.root or self.state_dir in path.parents or path == self.state_dir:
            raise NotFound(relative)
        return path

    def folder(self, name: str) -> Path:
        """``uploads``, ``renders``, ``presets`` or the state folder, created on first use (inside the root)."""
        path = confine(self.root, name, must_exist=False)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. a file of the user's holds the name: left as it is
            raise ZoomdreamError(f"{name}: cannot make the studio's folder here "
                                 f"({'a file has that name' if isinstance(e, FileExistsError) else e.strerror or e})"
                                 ) from None
        return path

    def start_process(self, target: Callable, *args, **kwargs) -> multiprocessing.Process:
        """Start ``target(*args, **kwargs)`` in a spawned process (a fresh interpreter: TensorFlow loads there)."""
        proc = multiprocessing.get_context("spawn").Process(target=target, args=args, kwargs=kwargs, daemon=True)
        proc.start()
        return proc

    # ------------------------------------------------------------ presets and settings
    def saved_presets(self) -> dict[str, Path]:
        folder = self.root / "presets"
        if not folder.is_dir():
            return {}
        out = {}
        for p in sorted(folder.glob("*.yaml")):
            try:
                confine(self.root, f"presets/{p.name}")
            except NotFound:
                continue  # a symlink pointing out of the root
            if NAME.fullmatch(p.stem):
                out[p.stem] = p
        return out

    def load_preset(self, name: str) -> S.Settings:
        """A bundled preset by name, or one saved under ``FOLDER/presets/``; nothing else."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ZoomdreamError(f"extends: {S.quote(name)} is not a preset name")
        if name in presets.bundled_presets():
            return presets.load_preset(name)
        saved = self.saved_presets()
        if name in saved:
            return presets.load_preset(saved[name])
        raise ZoomdreamError(f"unknown preset {S.quote(name)}; presets: "
                             f"{', '.join([*presets.bundled_presets(), *saved])}")

    def settings_from_json(self, data: Any) -> S.Settings:
        """A preset written as JSON (same keys and nesting as YAML, ``extends: NAME``, schedule strings),
        checked by the same declarations with the same messages ("settings: step: expected ...")."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ZoomdreamError(f"settings: expected a mapping of settings, got {S.quote(data)}")
        data = _int_frame_keys(data)
        parent = data.pop("extends", None)
        merged = {}
        if parent is not None:
            merged = S.to_dict(self.load_preset(parent))
        for key, value in data.items():
            if key in S.SECTIONS and isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        merged.pop(presets.META_KEY, None)
        settings = presets.from_dict(merged, source="settings")
        for key in ("guide", "weights"):  # files a render reads: under the root only
            value = getattr(settings.dream, key)
            if value is not None and not (key == "weights" and value == S.RANDOM_WEIGHTS):
                try:
                    if not self.path(value).is_file():  # a folder or a FIFO (reading one would hang a render)
                        raise NotFound(value)
                except NotFound:
                    raise ZoomdreamError(f"settings: {key}: {S.quote(value)} is not a file in the studio's folder "
                                         f"(paths are relative to it)") from None
        from zoomdream.settings.animation import check_settings  # noqa: PLC0415  (numpy and OpenCV only)

        try:
            check_settings(settings)
        except ZoomdreamError as e:
            raise ZoomdreamError(f"settings: {e}") from None
        return settings

    def save_preset(self, name: Any, data: Any) -> Path:
        """Write ``FOLDER/presets/NAME.yaml`` (validated first); never over a file the studio did not write."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ZoomdreamError(f"preset name {S.quote(name)}: use letters, digits, - and _ (at most 64)")
        if name in presets.bundled_presets():
            raise ZoomdreamError(f"preset name {S.quote(name)}: a bundled preset has that name")
        settings = self.settings_from_json(data)
        path = self.path(f"presets/{name}.yaml", must_exist=False)
        if path.parent != (self.root / "presets").resolve():
            raise NotFound(name)
        if path.exists() or path.is_symlink():
            if path.is_symlink() or not path.is_file() or not _studio_written(path):
                raise ZoomdreamError(f"presets/{name}.yaml: exists and was not written by the studio; "
                                     f"choose another name")
        text = f"{PRESET_MARK}\n" + presets.dump(settings, comments=False)
        if len(text.encode("utf-8")) > presets.MAX_PRESET_BYTES:  # a preset the studio could not load again
            raise ZoomdreamError(f"presets/{name}.yaml: would be {len(text.encode('utf-8'))} bytes, over the "
                                 f"{presets.MAX_PRESET_BYTES // 1024} KiB limit of a preset")
        self.folder("presets")
        write_text_atomic(path, text)
        return path


_FRAME_KEY = re.compile(r"0|[1-9][0-9]{0,15}")


def _keyframes(value: Any) -> Any:
    """A keyframe map whose frames JSON made strings (``{"0": 1.01, "48": 1.03}``) with its integer frames back;
    anything else as it is (the usual checks then give their message)."""
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) and _FRAME_KEY.fullmatch(k) for k in value):
        return value
    out = {int(k): v for k, v in value.items()}
    return out if len(out) == len(value) else value


def _int_frame_keys(data: dict) -> dict:
    """``data`` (a preset as JSON) with the frames of every keyframed setting's map as integers, as YAML gives them."""
    from zoomdream.settings import values as V  # noqa: PLC0415

    keyframed = {k for k, spec in S.declarations().items() if isinstance(spec.check, V.Keyframed)}
    out = {}
    for key, value in data.items():
        if key in S.SECTIONS and isinstance(value, dict):
            value = {k: _keyframes(v) if f"{key}.{k}" in keyframed else v for k, v in value.items()}
        elif key in keyframed:
            value = _keyframes(value)
        out[key] = value
    return out


def _studio_written(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n") == PRESET_MARK
    except (OSError, UnicodeDecodeError):
        return False


def _check_info(check) -> dict:
    """Type, range and choices of one declaration's check, for the page's controls."""
    from zoomdream.settings import values as V  # noqa: PLC0415

    info: dict[str, Any] = {"what": check.what}
    if isinstance(check, V.Keyframed):
        info["keyframes"] = True
        info["keys_only"] = check.keys_only
        inner = _check_info(check.base)
        inner.pop("what", None)
        info.update(inner)
        info["nullable"] = check.nullable or inner.get("nullable", False)
        return info
    if isinstance(check, V.Number):
        info.update(type="integer" if check.integer else "number", min=check.lo, max=check.hi,
                    min_open=check.lo_open, nullable=check.nullable)
    elif isinstance(check, V.Choice):
        info.update(type="choice", choices=list(check.choices))
    elif isinstance(check, V.Boolean):
        info.update(type="boolean")
    elif isinstance(check, V.Pair):
        info.update(type="pair", item=_check_info(check.item), nullable=check.nullable)
        info["item"].pop("what", None)
    elif isinstance(check, V.Layers):
        info.update(type="layers")
    elif isinstance(check, V.Channels):
        info.update(type="channels")
    elif isinstance(check, V.Path_):
        info.update(type="path", nullable=check.nullable)
    elif isinstance(check, V.Text):
        info.update(type="text")
    else:
        info.update(type="text")
    return info


def settings_catalogue() -> list[dict]:
    """Every declared setting: key, section, type, range, choices, default, help, flag, schedulable."""
    defaults = S.to_dict(S.Settings())
    out = []
    for key, spec in S.declarations().items():
        section, _, name = key.rpartition(".")
        default = defaults[section][name] if section else defaults[key]
        out.append({"key": key, "section": section or "dream", **_check_info(spec.check), "default": default,
                    "help": spec.help, "flag": spec.flags[0] if spec.flags else None,
                    "schedulable": spec.schedulable})
    return out
