"""Value checks: the types a setting's declaration is made of (``settings.setting(check=...)``).

A check is a callable ``value -> normalised value`` that raises :class:`Invalid` with a short
reason; the caller adds where the value came from (the flag, the preset's file:line:key or the
keyword). Each check also knows how to read command-line text (``parse``), what it expects in
words (``what``) and its metavar. Numbers must be finite (``math.isfinite`` is asked first, so
NaN is out of every range) and integers are bounded. Values are quoted through :func:`quote`,
so an error never echoes an unbounded value. A schedulable setting goes through
:func:`check_schedulable`: a plain value, ``{frame: value}`` keyframes or a schedule (text with
expressions of the frame and the soundtrack), whose syntax is checked here, and its range too
when it is made of constants; a schedule of the frame or the soundtrack is held to the same
range at every frame when a render starts (``animation``).
"""

from __future__ import annotations

import math
import numbers
import re
import reprlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from zoomdream.errors import ZoomdreamError

__all__ = ["MAX_FRAMES", "MAX_SIDE", "MAX_STEPS", "MAX_OCTAVES", "MAX_SEED", "MAX_LAYERS", "MAX_CHANNELS",
           "MAX_NAME_CHARS", "QUOTE_CHARS", "Invalid", "quote", "Number", "Choice", "Text", "Path_", "Boolean",
           "LAYER_WEIGHT", "Layers", "Channels", "Pair", "FRAME_INDEX", "Keyframed", "FrameRate", "suggest",
           "is_schedule", "check_schedule_text"]

# Bounds that keep every integer (and every size) something the machine can act on.
MAX_FRAMES = 1_000_000  # frames in one render (11.5 h at 24 fps); the disk budget usually refuses far fewer
MAX_SIDE = 16384  # px, longest side of an output or a downscale target (the memory budget refuses most of these)
MAX_STEPS = 10_000  # gradient steps per octave
MAX_OCTAVES = 12
MAX_SEED = 2**32 - 1  # numpy's SeedSequence takes any int >= 0; 32 bits is plenty and prints short
MAX_LAYERS = 64  # layers in one objective
MAX_CHANNELS = 65536  # a channel index is below this (the backbone table then checks the real count)
MIN_FPS, MAX_FPS = 0.1, 240.0  # below 0.1 fps the encoder's rate rounds to 0
MAX_NAME_CHARS = 200  # a layer or model name
QUOTE_CHARS = 60  # how much of a bad value an error message repeats


class Invalid(ValueError):
    """A value outside its declaration; the caller adds where it came from (flag, file:line:key, keyword)."""


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = QUOTE_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4
_repr.maxlevel = 3


def quote(value: Any) -> str:
    """A bounded repr of ``value`` for an error message (long text, deep or big containers are cut)."""
    text = _repr.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS - 3] + "..."


# ---------------------------------------------------------------- checks
def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _finite(v) -> bool:
    try:
        return math.isfinite(v)
    except (OverflowError, ValueError):  # Fraction(10**400): too big for a float
        return False


def _g(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return f"{int(x)}" if x.is_integer() and abs(x) < 1e6 else f"{x:g}"


@dataclass(frozen=True)
class Number:
    """A finite number (or integer) in a range; ``nullable``: None is allowed too."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    integer: bool = False
    nullable: bool = False

    @property
    def what(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.lo is not None and self.hi is not None and not self.lo_open:
            return f"{kind} in {_g(self.lo)}..{_g(self.hi)}"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_g(self.lo)}")
        if self.hi is not None:
            parts.append(f"<= {_g(self.hi)}")
        return f"{kind} {' and '.join(parts)}" if parts else "a finite number"

    @property
    def metavar(self) -> str:
        return "N" if self.integer else "X"

    def __call__(self, v):
        if v is None and self.nullable:
            return None
        what = self.what + (" or null" if self.nullable else "")
        if not (_is_int(v) if self.integer else _is_real(v)):
            raise Invalid(f"expected {what}, got {quote(v)}")
        if not self.integer and not _finite(v):  # NaN passes every <=: ask first
            raise Invalid(f"expected {what}, got {quote(v)}")
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo) or \
                self.hi is not None and v > self.hi:
            raise Invalid(f"expected {what}, got {quote(v)}")
        return int(v) if self.integer else float(v)

    def inside(self, values):
        """Elementwise: which of ``values`` (a float array of finite numbers) are in the range."""
        ok = values == values
        if self.lo is not None:
            ok = ok & ((values > self.lo) if self.lo_open else (values >= self.lo))
        if self.hi is not None:
            ok = ok & (values <= self.hi)
        return ok

    def parse(self, text: str):
        """Command-line text -> the value to check (the text itself when it is no number: the check says why)."""
        for kind in ((int,) if self.integer else (int, float)):
            try:
                return kind(text)
            except ValueError:  # includes int('1' * 5000): over Python's digit limit
                pass
        if self.integer:
            try:
                return float(text)  # '1e30' or '2.5': refused as "expected an integer"
            except ValueError:
                pass
        return text


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...]

    @property
    def what(self) -> str:
        return f"one of {', '.join(self.choices)}"

    metavar = None

    def __call__(self, v):
        if not isinstance(v, str) or v not in self.choices:
            raise Invalid(f"expected {self.what}, got {quote(v)}")
        return v

    def parse(self, text: str):
        return text


@dataclass(frozen=True)
class Text:
    nullable: bool = False
    max_chars: int = 4096

    @property
    def what(self) -> str:
        return "text" + (" or null" if self.nullable else "")

    metavar = None

    def __call__(self, v):
        if v is None and self.nullable:
            return None
        if not isinstance(v, str):
            raise Invalid(f"expected {self.what}, got {quote(v)}")
        if len(v) > self.max_chars:
            raise Invalid(f"expected at most {self.max_chars} characters, got {len(v)}")
        return v

    def parse(self, text: str):
        return text


@dataclass(frozen=True)
class Path_(Text):
    """A file name (text); the file itself is checked when a command uses it (``checks.check_file``)."""

    @property
    def what(self) -> str:
        return "a file name" + (" or null" if self.nullable else "")

    def __call__(self, v):
        v = super().__call__(v)
        if v is not None and (not v or "\0" in v):
            raise Invalid(f"expected {self.what}, got {quote(v)}")
        return v


@dataclass(frozen=True)
class Boolean:
    what = "true or false"
    metavar = None

    def __call__(self, v):
        if not isinstance(v, bool):
            raise Invalid(f"expected true or false, got {quote(v)}")
        return v

    def parse(self, text: str):
        return {"true": True, "false": False}.get(text.lower(), text)


LAYER_WEIGHT = Number(-1000.0, 1000.0)


def split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside parentheses (and brackets); unbalanced ones are :class:`Invalid`."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise Invalid(f"unbalanced '{ch}' in {quote(text.strip())}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise Invalid(f"unbalanced '(' in {quote(text.strip())}")
    parts.append("".join(cur))
    return parts


_KEYFRAME_START = re.compile(r"\s*\d+\s*:")


def split_layers(text: str) -> list[str]:
    """``--layers`` text split into ``name=weight`` parts: at commas outside parentheses, and a part that
    starts like a keyframe (``5:(2)``) continues the weight before it, so ``a=max(0.5, t), b=0:(1), 5:(2)``
    is two layers."""
    out: list[str] = []
    for part in split_top(text):
        if out and _KEYFRAME_START.match(part):
            out[-1] += "," + part
        else:
            out.append(part)
    return out


@dataclass(frozen=True)
class Layers:
    """{layer name: weight}; on the command line ``a=0.5,b=1.5`` (a bare name means weight 1)."""

    what = "a mapping of layer names to weights (e.g. {block4_conv3: 1.0})"
    metavar = "L=W,..."

    def __call__(self, v):
        if not isinstance(v, Mapping) or not v:
            raise Invalid(f"expected {self.what}, got {quote(v)}")
        if len(v) > MAX_LAYERS:
            raise Invalid(f"expected at most {MAX_LAYERS} layers, got {len(v)}")
        out = {}
        for name, w in v.items():
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
                raise Invalid(f"layer names must be text of 1 to {MAX_NAME_CHARS} characters, got {quote(name)}")
            if isinstance(w, str):  # a schedule (expression) of the frame and the soundtrack
                out[name] = check_schedule_text(w, pair=False, what=f"layer {quote(name)[1:-1]}: weight {quote(w)}",
                                                check=LAYER_WEIGHT, where=f"layer {quote(name)[1:-1]}")
                continue
            try:
                out[name] = LAYER_WEIGHT(w)
            except Invalid as e:
                raise Invalid(f"layer {quote(name)[1:-1]}: {e}") from None
        return out

    def parse(self, text: str):
        out = {}
        for part in filter(None, (p.strip() for p in split_layers(text))):
            name, _, weight = part.partition("=")
            if not name.strip():
                raise Invalid(f"empty layer name in {quote(text)} (expected name=weight,name=weight)")
            out[name.strip()] = Number().parse(weight.strip()) if weight else 1.0
        if not out:
            raise Invalid("expected name=weight[,name=weight...], e.g. block4_conv3=1.0")
        return out


@dataclass(frozen=True)
class Channels:
    what = "a mapping of layer names to channel lists (e.g. {block4_conv3: [12, 40]})"
    metavar = None

    def __call__(self, v):
        if not isinstance(v, Mapping):
            raise Invalid(f"expected {self.what}, got {quote(v)}")
        if len(v) > MAX_LAYERS:
            raise Invalid(f"expected at most {MAX_LAYERS} layers, got {len(v)}")
        out = {}
        index = Number(0, MAX_CHANNELS - 1, integer=True)
        for name, chans in v.items():
            if not isinstance(name, str):
                raise Invalid(f"layer names must be text, got {quote(name)}")
            if _is_int(chans):
                chans = [chans]
            if not isinstance(chans, (list, tuple)) or not chans or len(chans) > MAX_CHANNELS:
                raise Invalid(f"layer {quote(name)[1:-1]}: expected a list of channel indices, got {quote(chans)}")
            try:
                out[name] = tuple(index(c) for c in chans)
            except Invalid as e:
                raise Invalid(f"layer {quote(name)[1:-1]}: channel {e}") from None
        return out

    def parse(self, text: str):
        return text


_PAIR_TEXT = re.compile(r"\s*([^,x]+?)\s*[x,]\s*([^,x]+?)\s*")


@dataclass(frozen=True)
class Pair:
    """Two values ``[x, y]``; on the command line ``X,Y`` (or ``WxH``)."""

    item: Number
    nullable: bool = False

    @property
    def what(self) -> str:
        return f"a pair [x, y] of {self.item.what.replace('an integer', 'integers').replace('a number', 'numbers')}"

    @property
    def metavar(self) -> str:
        return "WxH" if self.item.integer else "X,Y"

    def __call__(self, v):
        if v is None and self.nullable:
            return None
        if isinstance(v, str):
            v = self.parse(v)
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise Invalid(f"expected {self.what}, got {quote(v)}")
        try:
            return tuple(self.item(p) for p in v)
        except Invalid:
            raise Invalid(f"expected {self.what}, got {quote(v)}") from None

    def parse(self, text: str):
        if isinstance(text, str) and "|" in text:
            return text  # "X | Y": two schedules
        m = _PAIR_TEXT.fullmatch(text.lower()) if isinstance(text, str) else None
        return [self.item.parse(p) for p in m.groups()] if m else text


FRAME_INDEX = Number(0, MAX_FRAMES, integer=True)


@dataclass(frozen=True)
class Keyframed:
    """A value, or ``{frame: value}`` keyframes (integer frames >= 0); ``keys_only``: keyframes are required."""

    base: Any
    keys_only: bool = False
    nullable: bool = False

    @property
    def what(self) -> str:
        return ("" if self.keys_only else f"{self.base.what}, or ") + "{frame: value} keyframes"

    @property
    def metavar(self):
        return getattr(self.base, "metavar", None)

    def __call__(self, v):
        if v is None and self.nullable:
            return None
        if not isinstance(v, Mapping):
            if self.keys_only:
                raise Invalid(f"expected {{frame: {{layer: weight}}}} keyframes, got {quote(v)}")
            return self.base(v)
        if not v:
            raise Invalid("keyframes must not be empty")
        out = {}
        for k, x in v.items():
            try:
                k = FRAME_INDEX(k)
            except Invalid:
                raise Invalid(f"keyframe {quote(k)}: frames must be integers in 0..{MAX_FRAMES}") from None
            if self.keys_only and not isinstance(x, Mapping):
                raise Invalid(f"expected {{frame: {{layer: weight}}}} keyframes, got {quote(v)}")
            try:
                out[k] = self.base(x)
            except Invalid as e:
                raise Invalid(f"keyframe {k}: {e}") from None
        return dict(sorted(out.items()))

    def parse(self, text: str):
        return self.base.parse(text)


@dataclass(frozen=True)
class FrameRate:
    """A frame rate: a number or a fraction such as ``30000/1001``; returned as a Fraction."""

    what = f"a frame rate in {MIN_FPS:g}..{MAX_FPS:g}, e.g. 24, 29.97 or 30000/1001"
    metavar = "FPS"
    nullable: bool = True

    def __call__(self, v):
        if v is None and self.nullable:
            return None
        shown = v
        if isinstance(v, str):
            try:
                v = Fraction(v.strip())
            except (ValueError, ZeroDivisionError):
                pass
        if not _is_real(v) or (isinstance(v, float) and not _finite(v)) or not MIN_FPS <= v <= MAX_FPS:
            raise Invalid(f"expected {self.what}, got {quote(shown)}")
        return Fraction(v).limit_denominator(1001000)

    def parse(self, text: str):
        return text  # the check reads text itself, so its message can quote what was typed



_PAIR_OF_NUMBERS = re.compile(r"\s*-?[\d.]+\s*[x,]\s*-?[\d.]+\s*")


def suggest(word: str, choices) -> str:
    """" (did you mean 'x'?)" for the choice closest to a mistyped ``word``, or ""."""
    import difflib  # noqa: PLC0415  (only on an error)

    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_schedule(v, pair: bool) -> bool:
    """True when ``v`` is written as a schedule (text, or keyframes/pairs holding text); "1,0" is two numbers."""
    if isinstance(v, str):
        return not (pair and _PAIR_OF_NUMBERS.fullmatch(v))  # "1,0" is a pair of numbers
    if isinstance(v, Mapping):
        return any(isinstance(x, str) or (isinstance(x, (list, tuple)) and any(isinstance(y, str) for y in x))
                   for x in v.values())
    return isinstance(v, (list, tuple)) and any(isinstance(x, (str, Mapping)) for x in v)


def is_schedule_text(value) -> bool:
    """True when a value holds schedule text (a string, or a string inside keyframes or a pair)."""
    return is_schedule(value, pair=False) or (isinstance(value, Mapping) and any(
        isinstance(x, str) for x in value.values()))


def check_schedule_text(value, *, pair: bool, what: str = "", check=None, where: str = ""):
    """A schedule's syntax (one schedule, or two for a pair); returns it (a list as a tuple), or :class:`Invalid`.

    ``check`` (the setting's :class:`Number` or :class:`Pair`): a schedule made of constants only
    (``"2*3"``, ``"0:(0.01), 5:(5)"``) is also held to its range here, frame by frame, so a preset
    is refused when it is checked; a schedule of the frame or the soundtrack is checked over every
    frame when a render starts (``animation``). ``what`` introduces a syntax error, ``where`` a range error.
    """
    from zoomdream.settings import schedule  # noqa: PLC0415  (numpy: kept off the start-up of `zoomdream --help`)

    try:
        curves = schedule.parse_pair(value) if pair else (schedule.parse(value),)
    except ZoomdreamError as e:
        raise Invalid(f"{what} is not a number nor a schedule ({e})" if what else str(e)) from None
    if check is not None:
        item = check.item if isinstance(check, Pair) else check
        for curve in curves:
            try:
                schedule.check_constant(curve, item.inside, expected=item.what)
            except ZoomdreamError as e:
                raise Invalid(f"{where}: {e}" if where else str(e)) from None
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class _OneValue:
    """One keyframe's value of a schedulable setting: a number (pair) as ``base`` takes it, or an expression."""

    base: Any
    pair: bool

    @property
    def what(self) -> str:
        return f"{self.base.what} or an expression"

    def __call__(self, v):
        if is_schedule(v, self.pair):
            return check_schedule_text(v, pair=self.pair, check=self.base)
        return self.base(v)


def check_schedulable(value, check):
    """The one check of a value that can change over time (``schedulable`` in the declaration).

    A plain value as ``check`` takes it; ``{frame: value}`` keyframes, whose values are numbers
    (held to the setting's range) or expressions, eased with smoothstep; or a schedule string.
    """
    base = check.base if isinstance(check, Keyframed) else check
    if isinstance(base, Layers):
        return check(value)  # Layers takes expression weights itself
    one = _OneValue(base, isinstance(base, Pair))
    if isinstance(value, Mapping):
        return Keyframed(one)(value)
    return one(value)
