"""Presets: YAML files -> :class:`~zoomdream.settings.Settings`, validated strictly.

A preset is data only. Every problem is a ZoomdreamError naming the file, the key, the
line and what was expected: unknown keys, wrong types, out-of-range values, duplicate
keys (PyYAML would silently keep the last one), tabs, and the YAML 1.1 traps (``1e-2``
is read as a *string*, ``010`` as 8, ``no``/``on`` as booleans).

This module does not import TensorFlow: listing and checking presets is instant.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from . import settings as S
from .errors import ZoomdreamError

PRESET_DIR = Path(__file__).resolve().parent / "presets"
META_KEY = "meta"  # free-form section (versions, provenance) that validation skips
_OCTAL_LIKE = re.compile(r"^[-+]?0[0-9_]+$")
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}


# ---------------------------------------------------------------- YAML with lines and duplicate checks
class _Node(dict):
    """A mapping that remembers each key's line and raw scalar text."""

    lines: dict
    raw: dict


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _Node:
    out = _Node()
    out.lines, out.raw = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise _PresetSyntax(key_node.start_mark.line + 1, f"duplicate key '{key}' (first at line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
        out.raw[key] = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag == "tag:yaml.org,2002:int" \
                and _OCTAL_LIKE.match(value_node.value):
            raise _PresetSyntax(key_node.start_mark.line + 1,
                                f"{key}: '{value_node.value}' has a leading zero, which YAML 1.1 reads as octal; "
                                f"write it without the zero")
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _PresetSyntax(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ZoomdreamError(f"{path}: preset file not found") from None
    except IsADirectoryError:
        raise ZoomdreamError(f"{path}: is a directory, not a preset file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ZoomdreamError(f"{path}: cannot read preset ({e})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except _PresetSyntax as e:
        raise ZoomdreamError(f"{path}:{e.line}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = e.problem or str(e)
        if "'\\t'" in problem or "\t" in problem or "tab" in problem.lower():
            problem = "tab character (indent with spaces)"
        raise ZoomdreamError(f"{path}{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise ZoomdreamError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        raise ZoomdreamError(f"{path}: preset is empty (expected a mapping of settings)")
    if not isinstance(data, dict):
        raise ZoomdreamError(f"{path}: expected a mapping of settings at the top, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------- value checks
class ValueProblem(Exception):
    """A value problem found by a schema check; the caller adds file (or flag), key and line."""


_Bad = ValueProblem


def _trap_hint(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            float(raw)
            return f" (YAML 1.1 reads '{raw}' as text: write it with a decimal point, e.g. 1.0e-2)"
        except ValueError:
            pass
        if raw.lower() in _YAML11_BOOLS:
            return f" (YAML 1.1 reads '{raw}' as a boolean)"
    return ""


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, integer: bool = False,
            nullable: bool = False) -> Callable:
    what = "an integer" if integer else "a number"
    if lo is not None:
        what += f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        what += f" and <= {hi:g}" if lo is not None else f" <= {hi:g}"

    def check(v):
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise _Bad(f"expected {what}{' or null' if nullable else ''}, got {v!r}{_trap_hint(v)}")
        if lo is not None and (v <= lo if lo_open else v < lo) or hi is not None and v > hi:
            raise _Bad(f"expected {what}, got {v!r}")
        return int(v) if integer else float(v)

    check.what = what
    return check


def _string(nullable: bool = False, choices: tuple | None = None) -> Callable:
    def check(v):
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            raise _Bad(f"expected text, got {v!r}{_trap_hint(v)}")
        if choices and v not in choices:
            raise _Bad(f"expected one of {', '.join(choices)}, got '{v}'")
        return v

    return check


def _boolean(v):
    if not isinstance(v, bool):
        raise _Bad(f"expected true or false, got {v!r}")
    return v


def _layers(v):
    if not isinstance(v, dict) or not v:
        raise _Bad(f"expected a mapping of layer names to weights (e.g. {{block4_conv3: 1.0}}), got {v!r}")
    out = {}
    for name, w in v.items():
        if not isinstance(name, str):
            raise _Bad(f"layer names must be text, got {name!r}")
        try:
            out[name] = _number()(w)
        except _Bad as e:
            raise _Bad(f"layer {name}: {e}") from None
    return out


def _channels(v):
    if not isinstance(v, dict):
        raise _Bad(f"expected a mapping of layer names to channel lists, got {v!r}")
    out = {}
    for name, chans in v.items():
        if isinstance(chans, int) and not isinstance(chans, bool):
            chans = [chans]
        if not isinstance(chans, list) or not chans or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in chans):
            raise _Bad(f"layer {name}: expected a list of channel indices >= 0, got {chans!r}")
        out[str(name)] = tuple(chans)
    return out


def _pair(kind: Callable) -> Callable:
    def check(v):
        if isinstance(v, str) and re.fullmatch(r"\s*-?[\d.]+\s*[x,]\s*-?[\d.]+\s*", v):
            v = [float(p) for p in re.split(r"[x,]", v)]
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise _Bad(f"expected a pair [x, y], got {v!r}")
        return tuple(kind(p) for p in v)

    return check


def _size(v):
    if v is None:
        return None
    w, h = _pair(_number(16, integer=True))(v)
    return (w, h)


def _keyframed(check: Callable) -> Callable:
    """A value, or {frame: value} keyframes with integer frames >= 0."""

    def keyed(v):
        if isinstance(v, dict):
            if not v:
                raise _Bad("keyframes must not be empty")
            out = {}
            for k, x in v.items():
                if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                    raise _Bad(f"keyframe {k!r}: frames must be integers >= 0")
                try:
                    out[k] = check(x)
                except _Bad as e:
                    raise _Bad(f"keyframe {k}: {e}") from None
            return dict(sorted(out.items()))
        return check(v)

    return keyed


DREAM_SCHEMA: dict[str, Callable] = {
    "model": _string(),
    "weights": _string(nullable=True),
    "layers": _layers,
    "channels": _channels,
    "guide": _string(nullable=True),
    "guide_weight": _number(),
    "octaves": _number(1, 12, integer=True),
    "octave_scale": _number(1.0, 4.0, lo_open=True),
    "iterations": _number(1, integer=True),
    "step": _number(0.0, lo_open=True),
    "max_loss": _number(0.0, lo_open=True, nullable=True),
    "border": _number(0, integer=True),
    "grad_norm": _string(choices=S.GRAD_NORMS),
    "grad_levels": _number(0, S.MAX_GRAD_LEVELS, integer=True),
    "grad_blur": _number(0.0, S.MAX_GRAD_BLUR),
    "clip": _boolean,
    "jitter": _number(0, integer=True),
    "tile": _number(64, integer=True),
    "precision": _string(choices=S.PRECISIONS),
    "seed": _number(0, integer=True),
    "max_size": _number(16, integer=True, nullable=True),
}
VIDEO_SCHEMA: dict[str, Callable] = {
    "blend": _number(0.0, 1.0),
    "flow": _string(choices=S.FLOW_METHODS),
    "iterations_per_frame": _number(1, integer=True),
    "occlusion": _number(0.0),
    "scene_cut": _number(0.0, 1.0),
}
ZOOM_SCHEMA: dict[str, Callable] = {
    "zoom": _keyframed(_number(0.0, lo_open=True)),
    "rotate": _keyframed(_number()),
    "pan": _keyframed(_pair(_number())),
    "center": _keyframed(_pair(_number(0.0, 1.0))),
    "layers": lambda v: _zoom_layers(v),
    "iterations_per_frame": _number(1, integer=True),
    "octaves_per_frame": _number(1, 12, integer=True),
    "colour_lock": _number(0.0, 1.0),
    "dream_every": _number(1, integer=True),
    "fps": _number(0.0, 240.0, lo_open=True),
    "frames": _number(1, integer=True),
    "size": _size,
    "pingpong": _boolean,
}
SECTION_SCHEMAS = {"video": VIDEO_SCHEMA, "zoom": ZOOM_SCHEMA}


def _zoom_layers(v):
    """{frame: {layer: weight}} keyframes that override the dream layers over time."""
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(x, dict) for x in v.values()):
        raise _Bad(f"expected {{frame: {{layer: weight}}}} keyframes, got {v!r}")
    return _keyframed(_layers)(v)


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
    raise ZoomdreamError(f"unknown preset '{text}'; bundled presets: {', '.join(bundled)} (or give a .yaml file)")


def _raw_merged(path: Path, seen: tuple = ()) -> tuple[dict, dict]:
    """The file's mapping with ``extends`` resolved (child keys win; sections merge key by key).

    Returns (data, origin) where origin maps each key to (path, line) for error messages.
    """
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
        raise ZoomdreamError(f"{path}:{data.lines.get('extends')}: extends: expected a preset name or file")
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

    def fail(key: str, message: str):
        where, line = origin.get(key, (source, None))
        raise ZoomdreamError(f"{where}{f':{line}' if line else ''}: {key}: {message}")

    dream, sections, description = {}, {s: {} for s in SECTION_SCHEMAS}, ""
    for key, value in data.items():
        if key == META_KEY:
            continue
        if key == "description":
            if not isinstance(value, str):
                fail(key, f"expected text, got {value!r}")
            description = value
        elif key in SECTION_SCHEMAS:
            if not isinstance(value, dict):
                fail(key, f"expected a mapping of {key} settings, got {value!r}")
            schema = SECTION_SCHEMAS[key]
            for sub, v in value.items():
                full = f"{key}.{sub}"
                if sub not in schema:
                    fail(full, f"unknown key{_suggest(sub, schema)}; allowed: {', '.join(schema)}")
                try:
                    sections[key][sub] = schema[sub](v)
                except _Bad as e:
                    fail(full, str(e))
        elif key in DREAM_SCHEMA:
            try:
                dream[key] = DREAM_SCHEMA[key](value)
            except _Bad as e:
                fail(key, str(e))
        else:
            allowed = ["description", "extends", *DREAM_SCHEMA, *SECTION_SCHEMAS, META_KEY]
            fail(key, f"unknown key{_suggest(key, allowed)}; allowed: {', '.join(allowed)}")
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
    from .backbones import REGISTRY  # noqa: PLC0415  (backbones imports TensorFlow lazily only)

    spec = REGISTRY.get(settings.dream.model)
    if spec is None:
        fail("model", f"unknown model '{settings.dream.model}'; choose one of: {', '.join(REGISTRY)}")
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
                fail(key, f"model {spec.name} has no layer '{name}'{_suggest(name, table)}; "
                          f"see `zoomdream layers --model {spec.name}`")
    for name, chans in settings.dream.channels.items():
        if name not in table:
            fail("channels", f"model {spec.name} has no layer '{name}'{_suggest(name, table)}")
        bad = [c for c in chans if c >= table[name]]
        if bad:
            fail("channels", f"channels {bad} out of range for layer {name} ({table[name]} channels: 0..{table[name] - 1})")


def _suggest(word: str, choices) -> str:
    import difflib  # noqa: PLC0415

    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_layers(spec: str) -> dict[str, float]:
    """The CLI shorthand ``mixed3=0.5,mixed4=1.5`` (a bare name means weight 1)."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if not name:
            raise ZoomdreamError(f"--layers: empty layer name in '{spec}' (expected name=weight,name=weight)")
        try:
            out[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ZoomdreamError(f"--layers: weight '{weight}' for {name} is not a number") from None
    if not out:
        raise ZoomdreamError("--layers: expected name=weight[,name=weight...], e.g. block4_conv3=1.0")
    return out


def describe(path: Path) -> str:
    """A preset's one-line description, read without full validation (for listings)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
    except (OSError, yaml.YAMLError, AttributeError):
        return "(unreadable)"


def dump(settings: S.Settings, meta: dict | None = None) -> str:
    """The YAML text of fully resolved settings: itself a valid preset."""
    data = S.to_dict(settings)
    if meta:
        data[META_KEY] = meta
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
