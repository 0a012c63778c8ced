"""Settings: frozen dataclasses whose fields each carry their whole declaration.

Every setting is declared once, beside its field, with :func:`setting`: its check (type and
range or choices), default, help text (unit and effect) and whether it can change over time
(``schedulable``). Everything else is derived from that declaration: the command-line flags
and their help (``cli.py``), the preset check (``presets.py``), ``presets --show`` and the
settings sidecar (:func:`to_dict`), and the Python API's check (constructing a settings
object validates every field, so ``dataclasses.replace`` and :func:`merge` do too).

Why ``dataclasses.field(metadata=...)`` and not pydantic: the settings stay the plain frozen
dataclasses the rest of the code already uses (``dataclasses.replace``, equality for resume
checks), no dependency is added, and one small validator gives messages that name the flag,
the preset's file:line:key or the keyword, which is what a user needs to see.

The checks a declaration is made of (``Number``, ``Choice``, ``Layers``, ``Keyframed``, ...)
are in :mod:`zoomdream.settings.values`: finite numbers only, bounded integers, bounded quoting.

Layers apply in order: defaults (here) → preset YAML → command-line flags. Nothing
mutates a settings object; ``dataclasses.replace`` (via :func:`merge`) makes new ones.
A preset file is the YAML form of :class:`Settings`: top-level dream keys, plus a
``video:`` and a ``zoom:`` section.

The package: this module (the declarations), ``values`` (the value checks they are made of),
``presets`` (YAML files), ``schedule`` (schedule strings) and ``animation`` (every animated
setting at every frame). It may import, from the rest of zoomdream, only ``errors``, ``fileio``
(the readable-file check), ``motion`` (the camera maths) and, inside a function, the backbone
registry (for the model names); never
TensorFlow, so ``--help``, ``presets`` and every check of a command line are instant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from zoomdream.errors import ZoomdreamError

# The value checks live in ``values``; they are re-exported here, where the declarations use them
# and where the command line, the presets and the tests look them up (``settings.Number``, ...).
from zoomdream.settings.values import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_NAME_CHARS,
    MAX_OCTAVES,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_FPS,
    Boolean,
    Channels,
    Choice,
    FrameRate,
    Invalid,
    Keyframed,
    Layers,
    Number,
    Pair,
    Path_,
    Text,
    check_schedulable,
    quote,
    suggest,
)

__all__ = ["DEFAULT_MODEL", "RANDOM_WEIGHTS", "PRECISIONS", "GRAD_NORMS", "MAX_GRAD_LEVELS", "MAX_GRAD_BLUR",
           "FLOW_METHODS", "Spec", "setting", "spec_of", "DreamSettings", "ZOOM_FACTOR",
           "VideoSettings", "ZoomSettings", "Settings", "SECTIONS", "declarations", "check_value", "merge", "validate",
           "to_dict", "MAX_SECONDS", "DEFAULT_CRF", "DEFAULT_CELL", "OPTIONS", "check_options"]

DEFAULT_MODEL = "efficientnet-lite0"
RANDOM_WEIGHTS = "random"  # weights="random": an untrained network, only ever on explicit request
PRECISIONS = ("auto", "fp32", "bf16")
GRAD_NORMS = ("mean_abs", "std")
MAX_GRAD_LEVELS = 8  # Laplacian bands: 8 halvings take a 4K frame's gradient down to ~15 px
MAX_GRAD_BLUR = 8.0  # px; a wider blur leaves only the coarsest shapes to dream
FLOW_METHODS = ("dis", "farneback")

# ---------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Spec:
    """One setting's declaration: its check, help, command-line names and whether it can be scheduled."""

    check: Any  # a callable value -> normalised value with .what, .metavar and .parse(text)
    help: str
    flags: tuple[str, ...] = ()  # command-line names; () = preset (and Python) only
    schedulable: bool = False  # can change over time: keyframes and schedule strings (``schedule``)
    metavar: str | None = None

    def validate(self, value):
        """The one validator: the normalised value, or :class:`Invalid` with the reason."""
        if self.schedulable:
            return check_schedulable(value, self.check)
        return self.check(value)

    def parse(self, text: str):
        """Command-line text -> value (not yet checked)."""
        return self.check.parse(text)

    @property
    def what(self) -> str:
        return self.check.what


def setting(default=dataclasses.MISSING, *, check, help: str, flags: tuple[str, ...] | str = (),
            schedulable: bool = False, factory: Callable | None = None, metavar: str | None = None):
    """A dataclass field carrying its declaration (read back with :func:`spec_of`)."""
    flags = (flags,) if isinstance(flags, str) else tuple(flags)
    meta = {"setting": Spec(check=check, help=help, flags=flags, schedulable=schedulable, metavar=metavar)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def spec_of(f: dataclasses.Field) -> Spec | None:
    return f.metadata.get("setting")


class _Validated:
    """Constructing (or ``dataclasses.replace``-ing) a settings object checks and normalises every field."""

    def __post_init__(self):
        prefix = _PREFIX.get(type(self).__name__, "")
        for f in dataclasses.fields(self):
            spec = spec_of(f)
            if spec is None:
                continue
            try:
                value = spec.validate(getattr(self, f.name))
            except Invalid as e:
                raise ZoomdreamError(f"settings: {prefix}{f.name}: {e}") from None
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class DreamSettings(_Validated):
    """What one still dream does (the seed's octave algorithm and its knobs)."""

    model: str = setting(DEFAULT_MODEL, check=Text(max_chars=MAX_NAME_CHARS), flags="--model",
                         help="backbone name from the registry (`zoomdream layers` lists them)")
    weights: str | None = setting(None, check=Path_(nullable=True), flags="--weights", metavar="FILE",
                                  help="weights file for the backbone: Keras .h5 / .weights.h5, or a PyTorch .pth "
                                       "state dict for efficientnet-lite*; none = bundled or Keras cache/download")
    layers: Mapping[str, float] = setting(check=Layers(), flags="--layers", schedulable=True,
                                          factory=lambda: {"block5c_expand_activation": 1.0},
                                          help="layers and their weights in the loss, e.g. mixed3=0.5,mixed4=1.5")
    channels: Mapping[str, tuple[int, ...]] = setting(check=Channels(), factory=dict,
                                                      help="layer -> only these channels count")
    guide: str | None = setting(None, check=Path_(nullable=True), flags="--guide", metavar="IMAGE",
                                help="guide image: maximise the match to its features (on the deepest layer)")
    guide_weight: float = setting(1.0, check=Number(-1000.0, 1000.0), flags="--guide-weight",
                                  help="weight of the guide term when layers are also given")
    octaves: int = setting(4, check=Number(1, MAX_OCTAVES, integer=True), flags="--octaves",
                           help="number of scales, smallest first (clamped to what the backbone accepts)")
    octave_scale: float = setting(1.4, check=Number(1.0, 4.0, lo_open=True), flags="--octave-scale",
                                  help="size ratio between consecutive octaves")
    iterations: int = setting(10, check=Number(0, MAX_STEPS, integer=True), flags="--iterations",
                              help="gradient-ascent steps per octave (0 = no dreaming: renders the motion alone)")
    step: float = setting(0.01, check=Number(0.0, 1.0), flags="--step", schedulable=True,
                          help="step size, in units of the [-1, 1] image range, applied to the normalised gradient (0 = none); "
                               "or a schedule, e.g. '0.01+0.02*beat'")
    max_loss: float | None = setting(None, check=Number(0.0, 1e12, lo_open=True, nullable=True), flags="--max-loss",
                                     help="an octave stops early once the loss exceeds this (none = never)")
    border: int = setting(0, check=Number(0, 64, integer=True), flags="--border",
                          help="activation cells dropped at each edge of a layer in the loss (the seed uses 2)")
    grad_norm: str = setting("mean_abs", check=Choice(GRAD_NORMS), flags="--grad-norm",
                             help="gradient normalisation: mean_abs (the seed) or std")
    grad_levels: int = setting(4, check=Number(0, MAX_GRAD_LEVELS, integer=True), flags="--grad-levels",
                               help="Laplacian-pyramid bands of the gradient, each scaled to unit spread "
                                    "(0 = off): against hatching")
    grad_blur: float = setting(0.7, check=Number(0.0, MAX_GRAD_BLUR), flags="--grad-blur", metavar="SIGMA",
                               help="Gaussian blur of the gradient after that, sigma in px (0 = off): "
                                    "removes the finest hatch")
    clip: bool = setting(True, check=Boolean(), flags="--clip",
                         help="keep the image in range after every step (the seed clips only at the end)")
    jitter: int = setting(32, check=Number(0, 4096, integer=True), flags="--jitter",
                          help="max random roll in px per step, undone after, so no fixed grid shows (0 = off)")
    tile: int = setting(512, check=Number(64, MAX_SIDE, integer=True), flags="--tile",
                        help="tile side in px; larger frames are dreamed in overlapping feathered tiles")
    precision: str = setting("auto", check=Choice(PRECISIONS), flags="--precision",
                             help="compute precision: fp32, bf16, or auto (whichever runs this backbone faster here)")
    seed: int = setting(0, check=Number(0, MAX_SEED, integer=True), flags="--seed",
                        help="all randomness (jitter) derives from (seed, frame index, octave)")
    max_size: int | None = setting(None, check=Number(16, MAX_SIDE, integer=True, nullable=True), flags="--max-size",
                                   help="inputs larger than this (longer side, px) are downscaled first")

    @property
    def weights_file(self) -> str | None:
        """The weights file the user named; None for the bundled/cached weights or an untrained network."""
        return None if self.weights in (None, RANDOM_WEIGHTS) else self.weights


    def frame(self, **numbers) -> "DreamFrame":
        """This dream's values as one frame's :class:`DreamFrame`; ``numbers`` replace some (``step=``,
        ``octaves=``, ``iterations=``, ``seed=``) and ``frame=`` is its index (default 0). A value that is
        still a schedule must be given here: the animation evaluates it (``animation.dream_at`` for one frame)."""
        values = {name: numbers.get(name, getattr(self, name)) for name in FRAME_FIELDS}
        if not isinstance(values["step"], (int, float)) or isinstance(values["step"], bool):
            raise ZoomdreamError(f"settings: step: {quote(values['step'])} is a schedule; it has a value only at a "
                                 f"frame (dream_image evaluates it at its frame argument)")
        return DreamFrame(**values, frame=numbers.get("frame", 0))


FRAME_FIELDS = ("step", "iterations", "octaves", "octave_scale", "max_loss", "grad_norm", "grad_levels", "grad_blur",
                "clip", "jitter", "tile", "seed")


@dataclass(frozen=True)
class DreamFrame:
    """One frame's dream, resolved: plain numbers, every schedule evaluated at that frame.

    This is what the dream core (``dream.dream``) takes. The animation makes one per frame from
    settings that were checked once, up front, so it is not checked again (a ``DreamSettings``
    checks all its fields whenever one is made or copied).
    """

    step: float
    iterations: int
    octaves: int
    octave_scale: float
    max_loss: float | None
    grad_norm: str
    grad_levels: int
    grad_blur: float
    clip: bool
    jitter: int
    tile: int
    seed: int
    frame: int = 0  # the frame's index: jitter comes from (seed, frame, octave)


ZOOM_FACTOR = Number(0.0, 10.0, lo_open=True)


@dataclass(frozen=True)
class VideoSettings(_Validated):
    """How consecutive video frames are tied together."""

    blend: float = setting(0.5, check=Number(0.0, 1.0), flags="--blend", schedulable=True,
                           help="share of the previous frame's flow-warped dream carried into this one (0 = none)")
    flow: str = setting("dis", check=Choice(FLOW_METHODS), flags="--flow",
                        help="optical flow: dis (fast, default) or farneback")
    iterations_per_frame: int = setting(2, check=Number(1, MAX_STEPS, integer=True), flags="--iterations-per-frame",
                                        help="steps per octave on frames that carry a dream "
                                             "(the first uses iterations)")
    occlusion: float = setting(1.0, check=Number(0.0, 1000.0), flags="--occlusion",
                               help="forward-backward flow check strictness (higher tolerates more); 0 disables it")
    scene_cut: float = setting(0.5, check=Number(0.0, 1.0), flags="--scene-cut",
                               help="scene-cut score above which the carried dream is reset (1 disables)")
    colour_lock: float = setting(0.0, check=Number(0.0, 1.0), flags=("--colour-lock", "--color-lock"),
                                 schedulable=True,
                                 help="pull each dreamed frame's colours toward its source frame's (0 = off)")
    dream_size: int | None = setting(640, check=Number(32, MAX_SIDE, integer=True, nullable=True),
                                     flags="--dream-size", metavar="PX",
                                     help="dream each frame scaled to at most this many px on its longer side and "
                                          "add the dream, scaled up, to the full-size frame (faster on HD, keeps "
                                          "the footage's detail; null, or a size no smaller than the frame = "
                                          "dream at full size)")
    # The camera of a video is absolute per frame (1 = as shot), applied to each source frame before
    # flow, carry-over and dreaming, so the dream stays on the moved picture.
    zoom: Any = setting(1.0, check=Keyframed(ZOOM_FACTOR), flags="--zoom", schedulable=True,
                        help="camera zoom of each frame (1 = as shot, >1 closer), e.g. '1+0.05*beat'")
    rotate: Any = setting(0.0, check=Keyframed(Number(-360.0, 360.0)), flags="--rotate", schedulable=True,
                          help="camera rotation of each frame in degrees, positive = counter-clockwise")
    pan: Any = setting((0.0, 0.0), check=Keyframed(Pair(Number(-MAX_SIDE, MAX_SIDE))), flags="--pan",
                       schedulable=True, help="camera offset (x, y) in px; or 'X | Y' schedules")
    center: Any = setting((0.5, 0.5), check=Keyframed(Pair(Number(0.0, 1.0))), flags="--center", schedulable=True,
                          help="zoom/rotation centre as fractions of (width, height); or 'X | Y' schedules")


@dataclass(frozen=True)
class ZoomSettings(_Validated):
    """The infinite-zoom motion. Motion values are per frame at 24 fps (REFERENCE_FPS), or keyframe maps."""

    zoom: Any = setting(1.02, check=Keyframed(ZOOM_FACTOR), flags="--zoom", schedulable=True,
                        help="zoom factor per frame at 24 fps (>1 moves in); or keyframes, or a schedule")
    rotate: Any = setting(0.0, check=Keyframed(Number(-360.0, 360.0)), flags="--rotate", schedulable=True,
                          help="degrees per frame at 24 fps, positive = counter-clockwise; or a schedule")
    pan: Any = setting((0.0, 0.0), check=Keyframed(Pair(Number(-4096.0, 4096.0))), flags="--pan", schedulable=True,
                       help="camera movement (x, y) in px per frame at 24 fps; or 'X | Y' schedules")
    center: Any = setting((0.5, 0.5), check=Keyframed(Pair(Number(0.0, 1.0))), flags="--center", schedulable=True,
                          help="zoom/rotation centre as fractions of (width, height); or 'X | Y' schedules")
    layers: Any = setting(None, check=Keyframed(Layers(), keys_only=True, nullable=True), schedulable=True,
                          help="optional {frame: {layer: weight}} keyframes that override the dream layers over time")
    iterations_per_frame: int = setting(3, check=Number(1, MAX_STEPS, integer=True), flags="--iterations-per-frame",
                                        help="steps per octave for frames after the first (which uses iterations)")
    octaves_per_frame: int = setting(1, check=Number(1, MAX_OCTAVES, integer=True), flags="--octaves-per-frame",
                                     help="octaves for frames after the first: the feedback loop is the pyramid")
    colour_lock: float = setting(0.7, check=Number(0.0, 1.0), flags=("--colour-lock", "--color-lock"),
                                 schedulable=True,
                                 help="pull each frame's colour statistics toward the source photo's (0 = off)")
    dream_every: int = setting(1, check=Number(1, MAX_FRAMES, integer=True), flags="--dream-every",
                               help="dream every Nth frame; frames in between are pure motion")
    fps: float = setting(24.0, check=Number(MIN_FPS, MAX_FPS), flags="--fps",
                         help="output frame rate (motion per second stays the same)")
    frames: int = setting(72, check=Number(1, MAX_FRAMES, integer=True), flags="--frames",
                          help="number of frames to render")
    size: tuple[int, int] | None = setting(None, check=Pair(Number(16, MAX_SIDE, integer=True), nullable=True),
                                           flags="--size",
                                           help="output (width, height); none = the photo's size (after max_size); "
                                                "the photo is cropped to fill it")
    pingpong: bool = setting(False, check=Boolean(), flags="--pingpong",
                             help="append the frames in reverse for a seamless back-and-forth loop")


@dataclass(frozen=True)
class Settings(_Validated):
    """A whole preset: a description, the dream, and the video and zoom sections."""

    description: str = setting("", check=Text(), help="one line, shown by `zoomdream presets`")
    dream: DreamSettings = field(default_factory=DreamSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    zoom: ZoomSettings = field(default_factory=ZoomSettings)

    def __post_init__(self):
        super().__post_init__()
        for name, cls in (("dream", DreamSettings), ("video", VideoSettings), ("zoom", ZoomSettings)):
            if not isinstance(getattr(self, name), cls):
                raise ZoomdreamError(f"settings: {name}: expected a {cls.__name__}, got {quote(getattr(self, name))}")


SECTIONS = {"video": VideoSettings, "zoom": ZoomSettings}
_PREFIX = {"DreamSettings": "", "VideoSettings": "video.", "ZoomSettings": "zoom.", "Settings": ""}


def declarations() -> dict[str, Spec]:
    """Every setting's declaration by key: dream fields bare, then ``video.x`` and ``zoom.x``; plus ``description``."""
    out = {"description": spec_of(dataclasses.fields(Settings)[0])}
    for prefix, cls in (("", DreamSettings), *((f"{k}.", c) for k, c in SECTIONS.items())):
        for f in dataclasses.fields(cls):
            if spec_of(f) is not None:  # an undeclared field is a bug that test_settings names
                out[prefix + f.name] = spec_of(f)
    return out


def check_value(key: str, value):
    """Validate one setting by key (``step``, ``video.blend``): the normalised value, or :class:`Invalid`."""
    spec = declarations().get(key)
    if spec is None:
        raise Invalid(f"unknown setting{suggest(key, declarations())}")
    return spec.validate(value)


def merge(base: Settings, overrides: Mapping[str, Any]) -> Settings:
    """Return ``base`` with ``overrides`` applied; keys are dream fields or ``video.x`` / ``zoom.x``.

    None values mean "not given" and are skipped, so argparse defaults of None pass through.
    Every value is checked against its declaration; a bad one raises ZoomdreamError naming the key.
    """
    dream, sections = {}, {name: {} for name in SECTIONS}
    top = {}
    for key, value in overrides.items():
        if value is None:
            continue
        try:
            value = check_value(key, value)
        except Invalid as e:
            raise ZoomdreamError(f"{key}: {e}") from None
        section, _, name = key.rpartition(".")
        if section in SECTIONS:
            sections[section][name] = value
        elif key == "description":
            top[key] = value
        else:
            dream[key] = value
    return dataclasses.replace(
        base,
        dream=dataclasses.replace(base.dream, **dream),
        video=dataclasses.replace(base.video, **sections["video"]),
        zoom=dataclasses.replace(base.zoom, **sections["zoom"]),
        **top,
    )


def validate(settings) -> None:
    """Check a settings object built elsewhere (e.g. with fields changed through ``object.__setattr__``).

    Construction already validates; this re-runs the same checks for the Python API's entry points.
    """
    if isinstance(settings, Settings):
        for part in (settings, settings.dream, settings.video, settings.zoom):
            _Validated.__post_init__(part)
    elif isinstance(settings, _Validated):
        _Validated.__post_init__(settings)
    else:
        raise ZoomdreamError(f"settings: expected a Settings object, got {quote(settings)}")


def as_settings(settings) -> Settings:
    """What a render takes, checked: a Settings as it is, or one part of it (a DreamSettings, say) with the
    other parts at their defaults; anything else is refused in one line."""
    if isinstance(settings, Settings):
        return settings
    for name, cls in (("dream", DreamSettings), *SECTIONS.items()):
        if isinstance(settings, cls):
            return Settings(**{name: settings})
    raise ZoomdreamError(f"settings: expected a Settings object (or a DreamSettings), got {quote(settings)}")


def to_dict(settings: Settings) -> dict:
    """The settings as plain YAML-ready data (the preset format, and the sidecar's)."""

    def plain(v):
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    out = {"description": settings.description}
    for f in dataclasses.fields(DreamSettings):
        out[f.name] = plain(getattr(settings.dream, f.name))
    for name in SECTIONS:
        section = getattr(settings, name)
        out[name] = {f.name: plain(getattr(section, f.name)) for f in dataclasses.fields(section)}
    return out


# ---------------------------------------------------------------- render options (per command, not presets)
MAX_SECONDS = 1e7  # ~115 days: a bound, so inf and 1e300 are refused as numbers, not as frame counts
DEFAULT_CRF = 18  # H.264 quality of an MP4 output
DEFAULT_CELL = 256  # px: the longer side of each cell of a layer sheet

OPTIONS: dict[str, Spec] = {
    "crf": Spec(Number(0, 51, integer=True), f"H.264 quality for MP4 (lower is better; default {DEFAULT_CRF})", ("--crf",)),
    "start": Spec(Number(0.0, MAX_SECONDS), "start time in seconds", ("--start",)),
    "end": Spec(Number(0.0, MAX_SECONDS, lo_open=True, nullable=True), "end time in seconds", ("--end",)),
    "preview": Spec(Number(1, MAX_FRAMES, integer=True, nullable=True), "render only the first N frames",
                    ("--preview",)),
    "fps": Spec(FrameRate(), "frame rate for a folder of images (default 24)", ("--fps",)),
    "seconds": Spec(Number(0.0, MAX_SECONDS, lo_open=True, nullable=True),
                    "length in seconds (instead of --frames)", ("--seconds",)),
    "cell": Spec(Number(16, 4096, integer=True), f"longer side of each cell in px (default {DEFAULT_CELL})", ("--cell",)),
    "workers": Spec(Number(1, 1024, integer=True, nullable=True), "render chunks in N Ray worker processes",
                    ("--workers",)),
    "chunk": Spec(Number(1, MAX_FRAMES, integer=True, nullable=True),
                  "most frames a worker dreams in one go (default 48; fewer = more parallel, more overhead)",
                  ("--chunk",)),
    "warmup": Spec(Number(0, 1000, integer=True, nullable=True),
                   "frames dreamed and dropped before a chunk that starts mid-shot (default 2)", ("--warmup",)),
    "fade": Spec(Number(0, 1000, integer=True, nullable=True),
                 "frames over which one chunk's dream cross-fades into the next one's (default 6)", ("--fade",)),
}


def check_options(**values) -> dict:
    """Validate render options passed to the Python API by keyword; returns them normalised."""
    out = {}
    for name, value in values.items():
        try:
            out[name] = OPTIONS[name].validate(value)
        except Invalid as e:
            raise ZoomdreamError(f"{name}: {e}") from None
    return out
