"""The live zoom: the loop headless, changes landing on the next frame, the take and its re-render."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from zoomdream import settings as S
from zoomdream.cli import main
from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import load_png_fast
from zoomdream.render.live import LiveLoop, Take, check_set, live_size
from zoomdream.settings import presets
from zoomdream.settings.animation import Animation

# Tiny dreams (as the render tests): the loop, not the look, is under test.
LIVE_FAST = {"model": "vgg16-hed", "octaves": 1, "iterations": 1, "precision": "fp32", "jitter": 2,
             "layers": {"block3_conv1": 1.0, "block2_conv2": 0.5}, "zoom.iterations_per_frame": 1}
SIZE = [48, 32]


def _settings(**extra) -> S.Settings:
    return S.merge(S.Settings(), {**LIVE_FAST, **extra})


def _run(loop: LiveLoop, n: int, changes: dict[int, dict] | None = None) -> list[np.ndarray]:
    frames = []
    for _ in range(n):
        if changes and loop.frame in changes:
            assert loop.set(check_set(loop.settings, changes[loop.frame])) == loop.frame
        frames.append(loop.next())
    return frames


CHANGES = {2: {"zoom.zoom": 1.1, "step": 0.05},
           3: {"layers.block3_conv1": 0.25, "zoom.pan": [3, -1]},
           5: {"zoom.rotate": 4, "zoom.colour_lock": 0.2, "zoom.center": [0.3, 0.6], "layers": {"block2_conv2": 2}}}


def _renders_the_same(tmp_path, photo, take, live: list[np.ndarray]) -> None:
    """The command line renders ``take`` at the live size: frames byte-identical to the live ones."""
    out = tmp_path / "render"
    assert main(["zoom", str(photo), "--preset", str(take), "--size", "48x32", "-o", str(out), "-q"]) == 0
    rendered = [load_png_fast(p) for p in sorted(out.glob("*.png"))]
    assert len(rendered) == len(live)
    for i, (a, b) in enumerate(zip(live, rendered)):
        assert np.array_equal(a, b), f"frame {i} differs"


def test_take_renders_the_live_frames_byte_for_byte(tmp_path, small_photo):
    loop = LiveLoop(small_photo, _settings(), size=SIZE)
    live = _run(loop, 7, CHANGES)
    assert all(f.shape == (32, 48, 3) for f in live)
    take = tmp_path / "take.yaml"
    take.write_text(loop.take_yaml())
    loaded = presets.load_preset(take)  # the take is a preset
    assert loaded.zoom.frames == 7 and loaded.zoom.size == (48, 32)
    assert loaded.zoom.zoom == "0:(1.02), 1:(1.02), 2:(1.1)"
    assert loaded.dream.layers["block3_conv1"] == "0:(1.0), 2:(1.0), 3:(0.25)"
    _renders_the_same(tmp_path, small_photo, take, live)


def test_a_long_take_of_layer_changes_renders_the_live_frames_byte_for_byte(tmp_path, small_photo):
    rng = np.random.default_rng(1)
    changes = {f: {"layers.block3_conv1": float(rng.uniform(0.1, 2))} for f in range(1, 44, 2)}  # 22 changes
    for f in range(3, 44, 5):
        changes[f] = {**changes.get(f, {}), "layers.block2_conv2": float(rng.uniform(0, 1)), "zoom.zoom": 1 + f / 400}
    loop = LiveLoop(small_photo, _settings(), size=SIZE)
    live = _run(loop, 46, changes)  # too many for a schedule string: refused with 400 before
    take = tmp_path / "take.yaml"
    take.write_text(loop.take_yaml())
    loaded = presets.load_preset(take)
    assert len(loaded.zoom.layers) > 40  # written as zoom.layers keyframes
    anim = Animation(loaded, kind="zoom", n=46, fps=24.0)
    weights = anim.layer_keyframes["block3_conv1"]
    assert weights[0] == 1.0 and weights[1] == changes[1]["layers.block3_conv1"] == weights[2]
    assert weights[45] == changes[43]["layers.block3_conv1"]
    _renders_the_same(tmp_path, small_photo, take, live)


def test_a_set_lands_on_the_next_frame_and_nowhere_earlier(small_photo):
    plain = _run(LiveLoop(small_photo, _settings(), size=SIZE), 5)
    loop = LiveLoop(small_photo, _settings(), size=SIZE)
    changed = _run(loop, 5, {3: {"zoom.zoom": 1.2}})
    for i in range(3):
        assert np.array_equal(plain[i], changed[i]), f"frame {i} changed before the set"
    assert not np.array_equal(plain[3], changed[3])
    zoom = Animation(loop.take.settings(5), kind="zoom", n=5, fps=24.0).tables["zoom.zoom"]
    assert list(zoom) == [1.02, 1.02, 1.02, 1.2, 1.2]  # the take says the same


def test_restart_goes_back_to_the_photo_with_the_current_values(small_photo):
    loop = LiveLoop(small_photo, _settings(), size=SIZE)
    first = _run(loop, 2, {1: {"zoom.zoom": 1.3}})
    loop.restart()
    assert loop.frame == 0 and loop.settings.zoom.zoom == 1.3 and not loop.take.changes
    again = _run(loop, 1)
    assert np.array_equal(first[0], again[0])  # frame 0 is the dreamed photo either way


@pytest.mark.parametrize("updates, message", [
    ({"zoom.zom": 1.1}, "zoom.zom: unknown setting (did you mean 'zoom.zoom'?)"),
    ({"zoom.zoom": "fast"}, "zoom.zoom: expected a number (a live control takes plain values), got 'fast'"),
    ({"zoom.zoom": "1+0.1*t"}, "zoom.zoom: expected a number"),
    ({"zoom.zoom": 0}, "zoom.zoom: "),
    ({"step": [1, 2]}, "step: "),
    ({"octaves": 2}, "octaves: not a live control"),
    ({"layers.mixed4": 1.0}, "layers.mixed4: not a layer of this take"),
    ({"zoom.pan": [1]}, "zoom.pan: "),
    ({}, "set: expected a mapping"),
])
def test_a_bad_set_is_refused_in_one_line(updates, message):
    with pytest.raises(ZoomdreamError) as e:
        check_set(_settings(), updates)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_set_may_be_nested_as_in_a_preset():
    assert check_set(_settings(), {"zoom": {"zoom": 1.1, "pan": [1, 2]}, "layers": {"block3_conv1": 2}}) == {
        "zoom.zoom": 1.1, "zoom.pan": (1.0, 2.0), "layers.block3_conv1": 2.0}


def test_a_keyframed_setting_is_not_a_live_control():
    with pytest.raises(ZoomdreamError, match="zoom.zoom: this take's value is keyframed"):
        check_set(_settings(**{"zoom.zoom": "0:(1.0), 10:(1.1)"}), {"zoom.zoom": 1.2})
    assert check_set(_settings(**{"zoom.rotate": "sin(s)"}), {"zoom.rotate": 1}) == {"zoom.rotate": 1.0}


def test_live_settings_without_audio_or_an_end():
    from zoomdream.render.live import check_live

    with pytest.raises(ZoomdreamError, match="audio feature 'beat'"):
        check_live(_settings(step="0.01+0.02*beat"))
    with pytest.raises(ZoomdreamError, match="frame count 'n'"):
        check_live(_settings(**{"zoom.rotate": "t/n"}))


def test_a_long_take_holds_every_value_exactly():
    start = _settings(**{"zoom.rotate": "0.5*sin(s)"})
    take = Take(start)
    rng = np.random.default_rng(0)
    expected = {"zoom.zoom": np.full(1000, 1.02), "step": np.full(1000, 0.01), "zoom.rotate": None}
    for f in sorted(rng.choice(np.arange(1, 1000), 150, replace=False)):
        z, st = float(rng.uniform(0.9, 1.1)), float(rng.uniform(0, 0.1))
        take.record(int(f), {"zoom.zoom": z, "step": st})
        expected["zoom.zoom"][f:], expected["step"][f:] = z, st
    take.record(500, {"zoom.rotate": 2.0})
    settings = presets.from_dict(yaml.safe_load(take.yaml(1000)))
    anim = Animation(settings, kind="zoom", n=1000, fps=24.0)
    assert isinstance(settings.zoom.zoom, dict)  # too long for one string: the keyframe map
    assert np.array_equal(anim.tables["zoom.zoom"], expected["zoom.zoom"])
    assert np.array_equal(anim.tables["step"], expected["step"])
    rotate = 0.5 * np.sin(np.arange(1000) / 24.0)
    assert np.array_equal(anim.tables["zoom.rotate"][:500], rotate[:500])
    assert np.all(anim.tables["zoom.rotate"][500:] == 2.0)


def test_live_size():
    assert live_size((1920, 1080)) == (384, 216)
    assert live_size((600, 800), 256) == (192, 256)
    assert live_size((600, 800), [320, 180]) == (320, 180)
    with pytest.raises(ZoomdreamError, match="size: "):
        live_size((600, 800), "big")
