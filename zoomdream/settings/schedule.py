"""Schedule strings: Deforum-style keyframed expressions for the values that change over time.

A schedule gives one number per output frame::

    1.02                                  a constant
    1.02 + 0.03*beat                      an expression, evaluated at every frame
    0:(1.0), 48:(1.05), 96:(1.0 + 0.1*sin(s))
                                          keyframes: linear between the keyframes' expressions,
                                          each evaluated at the current frame; held outside
    0:(1.0), 48:(1.05); smooth            the same with smoothstep easing (``; linear`` is the default)

A pair (pan, centre) is two schedules, ``"X | Y"`` on the command line or a YAML list of two.
The YAML keyframe map ``{0: 1.01, 48: 1.03}`` keeps its meaning: smoothstep between keyframes,
and its values may be expressions too.

Expressions are parsed with :mod:`ast` and evaluated by walking a whitelist of node types over
numpy arrays (one element per frame), never with ``eval``: numbers, the names in ``NAMES``
(frame ``t``, seconds ``s``, ``fps``, frame count ``n``, the audio features and ``pi``),
``+ - * / ** %``, unary minus, comparisons (1.0 when true, else 0.0) and the calls in
``FUNCTIONS``. Every constant is a float64, so ``9**9**9`` is inf (refused as not finite),
never a Python big-integer computation. Whole schedules are evaluated for all frames at once
before a render starts: a NaN or inf, or a value out of the setting's range, at any frame is
an error naming the setting and the frame, and nothing is rendered.

A schedule is a pure function of the frame index (and the audio): a chunk of a render that
starts at frame 500 sees exactly the values a sequential run sees there.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from zoomdream.errors import ZoomdreamError
from zoomdream.settings.values import FRAME_INDEX, MAX_FRAMES, Invalid, split_top

__all__ = [
    "FEATURES",
    "NAMES",
    "FUNCTIONS",
    "EASINGS",
    "MAX_CHARS",
    "Curve",
    "parse",
    "parse_pair",
    "frame_variables",
    "evaluate",
]

FEATURES = ("rms", "onset", "beat", "bass", "mid", "treble")  # audio features, each 0..1 per output frame
TIME_NAMES = ("t", "s", "fps", "n")  # frame index, seconds (t / fps), frame rate, frame count
NAMES = TIME_NAMES + FEATURES + ("pi",)
EASINGS = ("linear", "smooth")
MAX_CHARS = 1000  # longest schedule string accepted (whole string, all keyframes)
MAX_NODES = 400  # most syntax-tree nodes in one expression
MAX_DEPTH = 40  # deepest nesting of one expression (Python's own parser recurses on parentheses)


def _clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _nary(f):
    def reduce(*args):
        out = args[0]
        for a in args[1:]:
            out = f(out, a)
        return out

    return reduce


# name -> (numpy function, fewest args, most args)
FUNCTIONS: dict[str, tuple[Callable, int, int]] = {
    "sin": (np.sin, 1, 1), "cos": (np.cos, 1, 1), "tan": (np.tan, 1, 1), "abs": (np.abs, 1, 1),
    "sqrt": (np.sqrt, 1, 1), "exp": (np.exp, 1, 1), "log": (np.log, 1, 1), "floor": (np.floor, 1, 1),
    "ceil": (np.ceil, 1, 1), "min": (_nary(np.minimum), 2, 8), "max": (_nary(np.maximum), 2, 8),
    "clip": (_clip, 3, 3),
}
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
           ast.Pow: np.power, ast.Mod: np.mod}
_COMPARE = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
            ast.Eq: np.equal, ast.NotEq: np.not_equal}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive}
_KEYFRAME = re.compile(r"\s*(\d+)\s*:(.*)", re.S)
_EASING = re.compile(r"^(.*);\s*([A-Za-z]+)\s*$", re.S)


class _Refused(Exception):
    """A schedule problem; the caller adds the setting's name."""


def _describe(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access", ast.Lambda: "lambda", ast.Subscript: "indexing",
             ast.IfExp: "if/else", ast.BoolOp: "and/or", ast.Starred: "*args", ast.Dict: "a dict",
             ast.List: "a list", ast.Tuple: "a tuple", ast.Set: "a set", ast.NamedExpr: ":=",
             ast.JoinedStr: "an f-string", ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator",
             ast.Await: "await", ast.Yield: "yield"}
    return names.get(type(node), type(node).__name__)


class _Expr:
    """One parsed expression: a tree of whitelisted nodes, evaluated over numpy arrays."""

    def __init__(self, text: str):
        self.text = text.strip()
        if not self.text:
            raise _Refused("empty expression")
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as e:
            raise _Refused(f"cannot parse '{self.text}' ({e.msg})") from None
        except (RecursionError, MemoryError, ValueError):
            raise _Refused(f"cannot parse '{self.text}' (too deeply nested)") from None
        self.names: set[str] = set()
        self._count = 0
        self._check(tree.body, 0)
        self.tree = tree.body

    def _part(self, node) -> str:
        return ast.get_source_segment(self.text, node) or self.text

    def _check(self, node: ast.AST, depth: int) -> None:
        self._count += 1
        if self._count > MAX_NODES or depth > MAX_DEPTH:
            raise _Refused(f"expression too complex ('{self.text[:40]}...'): at most {MAX_NODES} terms, "
                           f"nested at most {MAX_DEPTH} deep")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise _Refused(f"'{self._part(node)}' is not a number")
        elif isinstance(node, ast.Name):
            if node.id not in NAMES:
                hint = " (a function needs parentheses)" if node.id in FUNCTIONS else ""
                raise _Refused(f"unknown name '{node.id}'{hint}; allowed: {', '.join(NAMES)}")
            self.names.add(node.id)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left, depth + 1)
            self._check(node.right, depth + 1)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand, depth + 1)
        elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            for sub in (node.left, *node.comparators):
                self._check(sub, depth + 1)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise _Refused(f"'{self._part(node.func)}' is not an allowed function; "
                               f"allowed: {', '.join(FUNCTIONS)}")
            _, lo, hi = FUNCTIONS[node.func.id]
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise _Refused(f"'{self._part(node)}': functions take plain arguments only")
            if not lo <= len(node.args) <= hi:
                want = f"{lo}" if lo == hi else f"{lo} to {hi}"
                raise _Refused(f"'{self._part(node)}': {node.func.id} takes {want} argument(s)")
            for a in node.args:
                self._check(a, depth + 1)
        else:
            raise _Refused(f"'{self._part(node)}': {_describe(node)} is not allowed in a schedule "
                           f"(numbers, names, + - * / ** %, comparisons and {', '.join(FUNCTIONS)})")

    def evaluate(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        """The expression at every frame: float64 (n,) (inf/nan are left for the caller to report)."""
        with np.errstate(all="ignore"):
            out = self._eval(self.tree, env)
        return np.broadcast_to(np.asarray(out, np.float64), env["t"].shape)

    def _eval(self, node, env):
        if isinstance(node, ast.Constant):
            return np.float64(node.value)  # never a Python int: 9**9**9 is inf, not a hang
        if isinstance(node, ast.Name):
            return np.float64(math.pi) if node.id == "pi" else env[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, env))
        if isinstance(node, ast.Compare):
            left, out = self._eval(node.left, env), np.float64(1.0)
            for op, right in zip(node.ops, node.comparators):
                right = self._eval(right, env)
                out = out * _COMPARE[type(op)](left, right)
                left = right
            return np.asarray(out, np.float64)
        f = FUNCTIONS[node.func.id][0]
        return f(*(self._eval(a, env) for a in node.args))


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses; unbalanced parentheses are refused."""
    try:
        return split_top(text, sep)
    except Invalid as e:
        raise _Refused(str(e)) from None


@dataclass(frozen=True)
class Curve:
    """One schedule: keyframes (frame -> expression), an easing, and the names it uses.

    ``values(env)`` gives the value at every frame of ``env`` (see :func:`frame_variables`);
    ``keys`` are the keyframe indices, ascending (a constant has the single key 0).
    """

    keys: tuple[int, ...]
    exprs: tuple[_Expr, ...]
    ease: str = "linear"
    text: str = ""

    @property
    def names(self) -> set[str]:
        return set().union(*(e.names for e in self.exprs))

    @property
    def features(self) -> set[str]:
        """The audio features this schedule refers to."""
        return self.names & set(FEATURES)

    @property
    def constant(self) -> float | None:
        """The value when it is the same at every frame (one keyframe, no names), else None."""
        if len(self.exprs) == 1 and not (self.names - {"pi"}):
            with np.errstate(all="ignore"):
                return float(self.exprs[0].evaluate({"t": np.zeros(1)})[0])
        return None

    def values(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        """The schedule at every frame ``env["t"]``: float64 (n,), not yet checked for finiteness."""
        t = env["t"]  # (n,) frame indices as float64
        if len(self.keys) == 1:
            return self.exprs[0].evaluate(env).copy()
        out = np.empty_like(t)
        keys = np.asarray(self.keys, np.float64)
        seg = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, len(keys) - 2)  # (n,) segment per frame
        for i in range(len(keys) - 1):
            sel = seg == i
            if not sel.any():
                continue
            sub = {k: (v[sel] if np.ndim(v) else v) for k, v in env.items()}
            a, b = self.exprs[i].evaluate(sub), self.exprs[i + 1].evaluate(sub)
            u = np.clip((t[sel] - keys[i]) / (keys[i + 1] - keys[i]), 0.0, 1.0)  # hold outside the keys
            if self.ease == "smooth":
                u = u * u * (3.0 - 2.0 * u)
            with np.errstate(all="ignore"):
                # exact at the keys: u == 0 gives a, u == 1 gives b (not a + (b - a) * u, which can round,
                # and which would carry the other keyframe's NaN into this one)
                out[sel] = np.where(u <= 0.0, a, np.where(u >= 1.0, b, a + (b - a) * u))
        return out


def _number_curve(value: float, text: str = "") -> Curve:
    return Curve(keys=(0,), exprs=(_Expr(repr(float(value))),), text=text or repr(value))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _parse(value) -> Curve:
    if _is_number(value):
        if not math.isfinite(value):
            raise _Refused(f"{value!r} is not a finite number")
        return _number_curve(value)
    if isinstance(value, Mapping):  # the YAML keyframe map: smoothstep, as it always was
        if not value:
            raise _Refused("keyframes must not be empty")
        keys = []
        for k in value:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_FRAMES:
                raise _Refused(f"keyframe {_shown(k)}: frames must be integers in 0..{MAX_FRAMES}")
            keys.append(int(k))
        keys.sort()
        exprs = []
        for k in keys:
            v = value[k]
            if _is_number(v):
                if not math.isfinite(v):
                    raise _Refused(f"keyframe {k}: {v!r} is not a finite number")
                exprs.append(_Expr(repr(float(v))))
            elif isinstance(v, str):
                exprs.append(_Expr(_unparen(v)))
            else:
                raise _Refused(f"keyframe {k}: expected a number or an expression, got {v!r}")
        return Curve(keys=tuple(keys), exprs=tuple(exprs), ease="smooth", text=str(dict(value)))
    if not isinstance(value, str):
        raise _Refused(f"expected a number or a schedule string, got {value!r}")
    text = value
    if len(text) > MAX_CHARS:
        raise _Refused(f"schedule is {len(text)} characters long; at most {MAX_CHARS}")
    ease = "linear"
    m = _EASING.match(text)
    if m:
        text, ease = m.group(1), m.group(2).lower()
        if ease not in EASINGS:
            raise _Refused(f"unknown easing '{m.group(2)}' after ';'; expected one of: {', '.join(EASINGS)}")
    if not text.strip():
        raise _Refused("empty schedule")
    parts = _split_top(text, ",")
    if not _KEYFRAME.match(parts[0]):
        if len(parts) > 1:
            raise _Refused(f"'{text.strip()}': a ',' outside parentheses separates keyframes, "
                           f"written F:(EXPR), F:(EXPR)")
        return Curve(keys=(0,), exprs=(_Expr(text),), ease=ease, text=value.strip())
    frames: dict[int, _Expr] = {}
    for part in parts:
        km = _KEYFRAME.match(part)
        if not km:
            raise _Refused(f"'{part.strip()}' is not a keyframe F:(EXPR)" if part.strip()
                           else f"empty keyframe in '{text.strip()}' (a ',' too many?)")
        frame = _frame_index(km.group(1))
        if frame in frames:
            raise _Refused(f"keyframe {frame} appears twice")
        frames[frame] = _Expr(_unparen(km.group(2)))
    keys = tuple(sorted(frames))
    return Curve(keys=keys, exprs=tuple(frames[k] for k in keys), ease=ease, text=value.strip())


def _shown(k) -> str:
    text = repr(k) if not isinstance(k, int) or k < 10**12 else f"{str(k)[:12]}... ({len(str(k))} digits)"
    return text[:40]


def _frame_index(digits: str) -> int:
    """A keyframe's frame number, in 0..MAX_FRAMES (a number of 400 digits is refused, not converted)."""
    if len(digits.lstrip("0")) > len(str(MAX_FRAMES)) or int(digits) > MAX_FRAMES:
        raise _Refused(f"keyframe {_shown(int(digits)) if len(digits) < 4000 else digits[:12] + '...'}: "
                       f"frames must be integers in 0..{MAX_FRAMES}")
    return FRAME_INDEX(int(digits))


def _unparen(text: str) -> str:
    text = text.strip()
    if not text:
        raise _Refused("empty expression")
    return text


def parse(value, *, where: str = "") -> Curve:
    """A number, a schedule string or a keyframe map -> :class:`Curve`; errors name ``where``."""
    try:
        return _parse(value)
    except _Refused as e:
        raise ZoomdreamError(f"{where}: {e}" if where else str(e)) from None


def parse_pair(value, *, where: str = "") -> tuple[Curve, Curve]:
    """Two schedules for (x, y): ``"X | Y"``, a list of two, or a keyframe map of pairs."""
    wx, wy = (f"{where} ({c})" if where else c for c in "xy")
    if isinstance(value, str):
        if len(value) > 2 * MAX_CHARS:
            raise ZoomdreamError(f"{where}: schedule is {len(value)} characters long; at most {2 * MAX_CHARS}")
        halves = value.split("|")
        if len(halves) != 2:
            raise ZoomdreamError(f"{where + ': ' if where else ''}expected two schedules 'X | Y' "
                                 f"(or two numbers X,Y), got '{value}'")
        return parse(halves[0], where=wx), parse(halves[1], where=wy)
    if isinstance(value, Mapping):  # {frame: [x, y]} keyframes, smoothstep
        if not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value.values()):
            raise ZoomdreamError(f"{where + ': ' if where else ''}keyframe values must be pairs [x, y], "
                                 f"got {dict(value)!r}")
        return (parse({k: v[0] for k, v in value.items()}, where=wx),
                parse({k: v[1] for k, v in value.items()}, where=wy))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return parse(value[0], where=wx), parse(value[1], where=wy)
    raise ZoomdreamError(f"{where + ': ' if where else ''}expected a pair [x, y] of numbers or schedules, "
                         f"got {value!r}")


def frame_variables(n: int, fps: float, features: Mapping[str, np.ndarray] | None = None) -> dict:
    """The names an expression may use, for frames 0..n-1: ``t``, ``s``, ``fps``, ``n`` and the features.

    Convention: every array is float64 (n,); ``s = t / fps`` (seconds since the output's first frame).
    """
    t = np.arange(n, dtype=np.float64)  # (n,)
    env = {"t": t, "s": t / float(fps), "fps": np.float64(fps), "n": np.float64(n)}
    for name, values in (features or {}).items():
        values = np.asarray(values, np.float64)
        assert values.shape == (n,), (name, values.shape, n)
        env[name] = values
    return env


def check_constant(curve: Curve, check: Callable[[np.ndarray], np.ndarray], *, expected: str) -> None:
    """A schedule made of constants only (no frame, time or audio names) checked at every frame up to
    its last keyframe (it holds after that), so its range is known before any render; others pass."""
    if curve.names - {"pi"}:
        return
    evaluate(curve, frame_variables(curve.keys[-1] + 1, 24.0), where="", check=check, expected=expected)


def evaluate(curve: Curve, env: Mapping[str, np.ndarray], *, where: str,
             check: Callable[[float], bool] | None = None, expected: str = "") -> np.ndarray:
    """``curve`` at every frame of ``env``, refused (naming ``where`` and the first bad frame) when not
    finite or outside ``check`` (elementwise: values (n,) -> bool (n,)); ``expected`` says what the range is."""
    missing = curve.features - set(env)
    if missing:
        raise ZoomdreamError(f"{where}: uses the audio feature '{sorted(missing)[0]}' but there is no audio "
                             f"(zoom: pass --audio FILE; video: a clip with a soundtrack or --audio FILE)")
    values = curve.values(env)  # (n,)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise ZoomdreamError(f"{_at(where)}'{_text(curve)}' is {values[i]} at frame {i} (not a finite number)")
    if check is not None:
        ok = np.asarray(check(values), bool)  # (n,)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ZoomdreamError(f"{_at(where)}'{_text(curve)}' is {values[i]:g} at frame {i}; expected {expected}")
    return values


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _text(curve: Curve) -> str:
    return curve.text if len(curve.text) <= 80 else curve.text[:77] + "..."
