"""Presets: YAML files -> :class:`~zoomdream.settings.Settings`, validated strictly.

A preset is data only. Every problem is a ZoomdreamError naming the file, the key, the
line and what was expected: unknown keys, wrong types, out-of-range values, duplicate
keys (PyYAML would silently keep the last one), tabs, and the YAML 1.1 traps (``1e-2``
is read as a *string*, ``010`` as 8, ``no``/``on`` as booleans).

The value checks are not written here: each key's check is the declaration beside its
field in ``zoomdream.settings``. What is here is the file side, which assumes a hostile file: only
a regular file under MAX_PRESET_BYTES is read (stat before open, so a FIFO or /dev/zero is
never read), YAML aliases are refused (an alias bomb expands a few hundred bytes into
gigabytes) and nesting stops at MAX_DEPTH (no RecursionError), and every value an error
repeats is cut short.

This module does not import TensorFlow: listing and checking presets is instant.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable

import yaml

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import check_readable
from zoomdream.settings.values import QUOTE_CHARS, suggest

__all__ = ["PRESET_DIR", "META_KEY", "MAX_PRESET_BYTES", "MAX_DEPTH", "MAX_EXTENDS", "MAX_MESSAGE_CHARS", "read_text",
           "DREAM_SCHEMA", "VIDEO_SCHEMA", "ZOOM_SCHEMA", "SECTION_SCHEMAS", "bundled_presets", "preset_path",
           "load_preset", "from_dict", "check_layers", "describe", "dump"]

PRESET_DIR = Path(__file__).resolve().parent / "presets"
META_KEY = "meta"  # free-form section (versions, provenance) that validation skips
_OCTAL_LIKE = re.compile(r"^[-+]?0[0-9_]+$")
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}


# ---------------------------------------------------------------- YAML with lines and duplicate checks
MAX_PRESET_BYTES = 256 * 1024  # the bundled presets are < 1 KiB; a sidecar with long keyframe lists stays far below
MAX_DEPTH = 16  # nesting levels (a preset needs 4: top, section, keyframes, layers)
MAX_EXTENDS = 16  # presets in one `extends` chain
MAX_MESSAGE_CHARS = 200  # how much of a YAML parser message is repeated


class _Node(dict):
    """A mapping that remembers each key's line and raw scalar text."""

    lines: dict
    raw: dict


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (a 300-byte alias bomb expands to gigabytes) and deep nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _PresetSyntax(mark.line + 1, "YAML aliases (*name) are not allowed in presets; write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _PresetSyntax(mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _Node:
    out = _Node()
    out.lines, out.raw = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise _PresetSyntax(key_node.start_mark.line + 1, f"a key must be text, got {S.quote(key)}") from None
        if key in out:
            raise _PresetSyntax(key_node.start_mark.line + 1,
                                f"duplicate key {S.quote(key)} (first at line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
        out.raw[key] = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag == "tag:yaml.org,2002:int" \
                and _OCTAL_LIKE.match(value_node.value):
            raise _PresetSyntax(key_node.start_mark.line + 1,
                                f"{S.quote(key)[1:-1]}: {S.quote(value_node.value)} has a leading zero, which YAML 1.1 "
                                f"reads as octal; write it without the zero")
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _PresetSyntax(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def read_text(path: Path, what: str = "preset") -> str:
    """A preset's text, read only from a regular file under MAX_PRESET_BYTES.

    The file is checked before it is opened (:func:`fileio.check_readable`), so a FIFO (which
    would block), a device such as /dev/zero (endless) or a folder is refused without reading; the
    open itself is non-blocking and re-checked with fstat, in case the name was swapped in between.
    """
    _regular(path, check_readable(path, f"{what} file"), what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ZoomdreamError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    try:
        _regular(path, os.fstat(fd), what)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_PRESET_BYTES + 1)
    except OSError as e:
        raise ZoomdreamError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_PRESET_BYTES:
        raise ZoomdreamError(f"{path}: {what} is larger than {MAX_PRESET_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ZoomdreamError(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None


def _regular(path: Path, st: os.stat_result, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ZoomdreamError(f"{path}: is a directory, not a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise ZoomdreamError(f"{path}: not a regular file (a FIFO, device or socket); "
                             f"a {what} is read only from a regular file")
    if st.st_size > MAX_PRESET_BYTES:
        raise ZoomdreamError(f"{path}: {what} is {st.st_size} bytes, over the {MAX_PRESET_BYTES // 1024} KiB limit")


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 3] + "..."


def _read_yaml(path: Path) -> dict:
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except _PresetSyntax as e:
        raise ZoomdreamError(f"{path}:{e.line}: {_short(e)}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = e.problem or str(e)
        if "'\\t'" in problem or "\t" in problem or "tab" in problem.lower():
            problem = "tab character (indent with spaces)"
        raise ZoomdreamError(f"{path}{where}: invalid YAML: {_short(problem)}") from None
    except yaml.YAMLError as e:
        raise ZoomdreamError(f"{path}: invalid YAML: {_short(e)}") from None
    except (ValueError, OverflowError) as e:  # e.g. an integer over Python's 4300-digit limit
        problem = "an integer with thousands of digits" if "digits" in str(e) else _short(e)
        raise ZoomdreamError(f"{path}: invalid YAML: {problem}") from None
    if data is None:
        raise ZoomdreamError(f"{path}: preset is empty (expected a mapping of settings)")
    if not isinstance(data, dict):
        raise ZoomdreamError(f"{path}: expected a mapping of settings at the top, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------- value checks (derived from the declarations)


def _trap_hint(raw: Any) -> str:
    if isinstance(raw, str) and len(raw) < 40:
        try:
            float(raw)
            return f" (YAML 1.1 reads '{raw}' as text: write it with a decimal point, e.g. 1.0e-2)"
        except ValueError:
            pass
        if raw.lower() in _YAML11_BOOLS:
            return f" (YAML 1.1 reads '{raw}' as a boolean)"
    return ""


def _schema(prefix: str) -> dict[str, Callable]:
    return {k[len(prefix):]: spec.validate for k, spec in S.declarations().items()
            if k.startswith(prefix) and "." not in k[len(prefix):] and k != "description"}


DREAM_SCHEMA: dict[str, Callable] = _schema("")
VIDEO_SCHEMA: dict[str, Callable] = _schema("video.")
ZOOM_SCHEMA: dict[str, Callable] = _schema("zoom.")
SECTION_SCHEMAS = {"video": VIDEO_SCHEMA, "zoom": ZOOM_SCHEMA}


# ---------------------------------------------------------------- loading
def bundled_presets() -> dict[str, Path]:
    """Bundled preset names -> files."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def preset_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A bundled preset name, or a path to a YAML file."""
    text = str(name_or_path)
    bundled = bundled_presets()
    if text in bundled:
        return bundled[text]
    path = Path(text).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return path.resolve()
    raise ZoomdreamError(f"unknown preset {S.quote(text)}; bundled presets: {', '.join(bundled)} "
                         f"(or give a .yaml file)")


def _raw_merged(path: Path, seen: tuple = ()) -> tuple[dict, dict]:
    """The file's mapping with ``extends`` resolved (child keys win; sections merge key by key).

    Returns (data, origin) where origin maps each key to (path, line) for error messages.
    """
    if len(seen) >= MAX_EXTENDS:
        raise ZoomdreamError(f"{path}: 'extends' chain longer than {MAX_EXTENDS} presets")
    if path in seen:
        raise ZoomdreamError(f"{path}: 'extends' forms a cycle ({' -> '.join(p.name for p in seen + (path,))})")
    data = _read_yaml(path)
    origin = {k: (path, data.lines.get(k)) for k in data}
    for section in SECTION_SCHEMAS:
        if isinstance(data.get(section), _Node):
            sub = data[section]
            origin.update({f"{section}.{k}": (path, sub.lines.get(k)) for k in sub})
    parent_name = data.pop("extends", None)
    if parent_name is None:
        return dict(data), origin
    if not isinstance(parent_name, str):
        raise ZoomdreamError(f"{path}:{data.lines.get('extends')}: extends: expected a preset name or file, "
                             f"got {S.quote(parent_name)}")
    parent, parent_origin = _raw_merged(preset_path(parent_name, relative_to=path.parent), seen + (path,))
    merged = dict(parent)
    for k, v in data.items():
        if k in SECTION_SCHEMAS and isinstance(v, dict) and isinstance(parent.get(k), dict):
            merged[k] = {**parent[k], **v}
        else:
            merged[k] = v
    return merged, {**parent_origin, **origin}


def load_preset(name_or_path: str | Path = "default") -> S.Settings:
    """Load and validate a bundled preset (by name) or a YAML file (by path)."""
    path = preset_path(name_or_path)
    data, origin = _raw_merged(path)
    return from_dict(data, origin=origin, source=path)


def from_dict(data: dict, *, origin: dict | None = None, source: Path | str = "<settings>") -> S.Settings:
    """Validate plain preset data into Settings."""
    origin = origin or {}

    def fail(key, message: str):
        where, line = origin.get(key, (source, None))
        shown = key if isinstance(key, str) and len(key) <= QUOTE_CHARS else S.quote(key)
        raise ZoomdreamError(f"{where}{f':{line}' if line else ''}: {shown}: {message}")

    def check(key: str, validate: Callable, value):
        spec = S.declarations().get(key)
        if spec is not None and spec.schedulable and _trap_hint(value):
            # '1e-2' would parse as a schedule; the YAML 1.1 trap is what the user needs to hear about
            fail(key, f"expected {spec.what}, got text {S.quote(value)}{_trap_hint(value)}")
        try:
            return validate(value)
        except S.Invalid as e:
            fail(key, f"{e}{_trap_hint(value)}")

    dream, sections, description = {}, {s: {} for s in SECTION_SCHEMAS}, ""
    for key, value in data.items():
        if key == META_KEY:
            continue
        if key == "description":
            description = check(key, S.declarations()["description"].validate, value)
        elif key in SECTION_SCHEMAS:
            if not isinstance(value, dict):
                fail(key, f"expected a mapping of {key} settings, got {S.quote(value)}")
            schema = SECTION_SCHEMAS[key]
            for sub, v in value.items():
                full = f"{key}.{sub}"
                if sub not in schema:
                    fail(full, f"unknown key{suggest(sub, schema)}; allowed: {', '.join(schema)}")
                sections[key][sub] = check(full, schema[sub], v)
        elif key in DREAM_SCHEMA:
            dream[key] = check(key, DREAM_SCHEMA[key], value)
        else:
            allowed = ["description", "extends", *DREAM_SCHEMA, *SECTION_SCHEMAS, META_KEY]
            fail(key, f"unknown key{suggest(key, allowed)}; allowed: {', '.join(allowed)}")
    settings = S.Settings(
        description=description,
        dream=dataclasses.replace(S.DreamSettings(), **dream),
        video=dataclasses.replace(S.VideoSettings(), **sections["video"]),
        zoom=dataclasses.replace(S.ZoomSettings(), **sections["zoom"]),
    )
    check_layers(settings, fail)
    return settings


def check_layers(settings: S.Settings, fail: Callable[[str, str], None]) -> None:
    """Check layer names and channel indices against the backbone's static table (no TensorFlow)."""
    from zoomdream.backbones import REGISTRY  # noqa: PLC0415  (backbones imports TensorFlow lazily only)

    spec = REGISTRY.get(settings.dream.model)
    if spec is None:
        fail("model", f"unknown model {S.quote(settings.dream.model)}; choose one of: {', '.join(REGISTRY)}")
    if not spec.static_layers:
        return  # checked when the network is built
    table = {name: ch for name, _, ch in spec.static_layers}
    layer_sets = [("layers", settings.dream.layers)]
    zl = settings.zoom.layers
    if isinstance(zl, dict):
        layer_sets += [("zoom.layers", w) for w in zl.values()]
    for key, layers in layer_sets:
        for name in layers:
            if name not in table:
                fail(key, f"model {spec.name} has no layer '{name}'{suggest(name, table)}; "
                          f"see `zoomdream layers --model {spec.name}`")
    for name, chans in settings.dream.channels.items():
        if name not in table:
            fail("channels", f"model {spec.name} has no layer '{name}'{suggest(name, table)}")
        bad = [c for c in chans if c >= table[name]]
        if bad:
            fail("channels", f"channels {bad} out of range for layer {name} ({table[name]} channels: 0..{table[name] - 1})")


def describe(path: Path) -> str:
    """A preset's one-line description, read without full validation (for listings)."""
    try:
        data = _read_yaml(path)
        return str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
    except (ZoomdreamError, AttributeError):
        return "(unreadable)"


def dump(settings: S.Settings, meta: dict | None = None, *, comments: bool = False) -> str:
    """The YAML text of fully resolved settings: itself a valid preset.

    ``comments``: one line per setting, ending in its declared help (``presets --show``).
    """
    data = S.to_dict(settings)
    if meta:
        data[META_KEY] = meta
    if not comments:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
    specs = S.declarations()

    def line(indent: str, key: str, value, full: str) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9)
        text = text.removesuffix("\n...\n").strip()  # a bare scalar ends with the document marker
        spec = specs.get(full)
        return f"{indent}{key}: {text}" + (f"  # {spec.help}" if spec else "")

    out = []
    for key, value in data.items():
        if key in SECTION_SCHEMAS or key == META_KEY:
            out.append(f"{key}:")
            out += [line("  ", k, v, f"{key}.{k}") for k, v in value.items()]
        else:
            out.append(line("", key, value, key))
    return "\n".join(out) + "\n"
