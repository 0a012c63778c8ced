"""Shared helpers for the benchmarks: quiet TensorFlow, images, backbones, timing.

Not part of the zoomdream package: benchmarks import zoomdream, never the reverse.
Timings on a shared machine are noisy, so every comparison is made *inside one run*,
A and B interleaved round-robin, and reported as a ratio of medians.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

DEFAULT_IMAGE = ROOT / "assets" / "coffee.jpg"

# The seed post's layers and weights (its InceptionV3 dict, in its order).
SEED_INCEPTION_LAYERS = {"mixed2": 0.2, "mixed3": 0.5, "mixed4": 1.5, "mixed5": 2.0}
SEED_INCEPTION_MAX_LOSS = 10.0


def tf():
    """TensorFlow, imported quietly (zoomdream's way: before keras, C++ log spam to /dev/null)."""
    from zoomdream.backbones.tf import tf as _tf

    return _tf()


def load_image(path: str | Path = DEFAULT_IMAGE, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, resized to ``size`` = (W, H) if given."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != tuple(size):
            im = im.resize(tuple(size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).copy()


def save_image(path: str | Path, image: np.ndarray) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, np.uint8)).save(path)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360), i.e. (W, H)."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def parse_layers(text: str) -> dict[str, float]:
    """``"mixed3=0.5,mixed4=1.5"`` -> dict (a bare name means weight 1)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        out[name.strip()] = float(weight) if weight else 1.0
    return out


def default_layers(model: str) -> dict[str, float]:
    """The layers a benchmark dreams with: the seed's for InceptionV3, the default preset's otherwise."""
    if model == "inception_v3":
        return dict(SEED_INCEPTION_LAYERS)
    from zoomdream.settings.presets import load_preset

    preset = load_preset("default").dream
    if preset.model == model:
        return dict(preset.layers)
    from zoomdream.backbones import get_spec

    return {get_spec(model).interesting[-3]: 1.0}


def load_backbone(model: str, precision: str = "fp32", fold: bool = True):
    """A zoomdream Backbone; bundled ones (vgg16-hed, efficientnet-lite*) with their weights,
    InceptionV3 and the other Keras ImageNet nets with *random* weights.

    Keras's ImageNet weights cannot be downloaded on this machine. FLOP counts and timings do not
    depend on the weight values, so a randomly initialised network (seeded, so fp32 and bf16
    builds, folded or not, hold the same weights) measures speed just as well. ``fold=False``
    keeps Keras's BatchNormalization layers: the network as the seed runs it.
    """
    from zoomdream.backbones import load_backbone as _load

    tf()
    if model == "vgg16-hed" or model.startswith("efficientnet-lite"):
        return _load(model, precision=precision, fold=fold)
    import keras

    keras.utils.set_random_seed(0)
    return _load(model, weights="random", precision=precision, fold=fold)


def weights_note(backbone) -> str:
    return "random weights (speed/FLOPs do not depend on weight values)" if backbone.weights == "random" \
        else f"weights: {backbone.weights}"


def now() -> float:
    return time.perf_counter()


def median(xs) -> float:
    return float(statistics.median(xs))


def interleaved(cases: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1,
                log: Callable[[str], None] | None = None) -> tuple[dict, dict, dict]:
    """Time several callables round-robin: ``warmup`` rounds (first call timed apart), then ``repeats`` rounds.

    Returns (first_call_seconds, steady_wall_seconds_lists, steady_cpu_seconds_lists), keyed like ``cases``.
    Round-robin (A B C, C B A, A B C, ...: the order flips every round so no case always follows the
    same one) means slow phases of a noisy machine hit every case alike. CPU seconds are this
    process's (all threads): less sensitive than wall time to other processes taking the cores.
    """
    first, steady, cpu = {}, {k: [] for k in cases}, {k: [] for k in cases}
    names = list(cases)
    for r in range(warmup + repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            c, t = time.process_time(), now()
            cases[name]()
            dt, dc = now() - t, time.process_time() - c
            if r == 0:
                first[name] = dt
            if r >= warmup:
                steady[name].append(dt)
                cpu[name].append(dc)
            if log:
                log(f"    {'warm-up' if r < warmup else f'repeat {r - warmup + 1}'}: {name:<28} {dt:7.2f} s "
                    f"(cpu {dc:6.2f} s)")
    return first, steady, cpu


def fmt_times(ts) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in ts) + "]"


def grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return sheet


def vm_kib(field: str, pid: int | str = "self") -> int | None:
    """A /proc/<pid>/status field in KiB (VmHWM = peak RSS, VmRSS = current), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_name() -> str:
    """The CPU's model name and core count (as ``lscpu`` shows them), for the figures' heading."""
    import os

    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores"
