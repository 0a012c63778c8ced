"""Schedules in renders: the camera per frame against the schedule and the clicks, dream strength per frame,
--iterations 0, video --audio, the resume manifest, and bad schedules refused before anything is written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from zoomdream import motion
from zoomdream import settings as S
from zoomdream.audio import frame_features
from zoomdream.cli import main
from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import load_png_fast
from zoomdream.media.probe import probe, probe_output
from zoomdream.media.read import iter_frames
from zoomdream.settings import animation, presets

from conftest import FFMPEG as FF
from conftest import ROOT, clicks_expr, lavfi_audio

CLICKS = (0.5, 1.0, 1.5)  # seconds: frames 12, 24, 36 at 24 fps; frames 5, 10, 15 at 10 fps
PREVIEW = ["--iterations", "0", "-q"]


@pytest.fixture(scope="session")
def media_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("animation")
    clicks = lavfi_audio(folder / "clicks.wav", clicks_expr(CLICKS), 2.0)
    other = lavfi_audio(folder / "other.wav", clicks_expr((0.25, 1.75)), 2.0)
    # a 20-frame 10 fps clip of a real photo with the click track as its soundtrack, and one without sound
    photo = str(ROOT / "assets" / "coffee.jpg")
    video = [FF, "-nostdin", "-y", "-loglevel", "error", "-loop", "1", "-framerate", "10", "-i", photo]
    scale = ["-vf", "scale=96:64,format=yuv420p", "-frames:v", "20", "-c:v", "libx264"]
    clip = folder / "clicks.mp4"
    subprocess.run([*video, "-i", str(clicks), *scale, "-c:a", "aac", str(clip)], check=True)
    silent = folder / "silent.mp4"
    subprocess.run([*video, *scale, str(silent)], check=True)
    return {"clicks": clicks, "other": other, "clip": clip, "silent": silent}


def _frames(folder: Path) -> list[np.ndarray]:
    return [load_png_fast(p) for p in sorted(folder.glob("*.png"))]


def _zoom(photo, out, *extra):
    return main(["zoom", str(photo), "-o", str(out), "--fps", "24", "--colour-lock", "0", *extra])


def _zoomed_by(prev, z):
    h, w = prev.shape[:2]
    return motion.warp_affine(prev, motion.frame_matrix(motion.Motion(zoom=z), fps=24, size=(w, h)))


def test_zoom_preview_follows_the_keyframes_frame_by_frame(tmp_path, small_photo, photo):
    out = tmp_path / "frames"
    assert _zoom(small_photo, out, "--frames", "10", "--zoom", "0:(1.0), 4:(1.2), 8:(1.0 + 0.01*t)", *PREVIEW) == 0
    frames = _frames(out)
    assert len(frames) == 10
    np.testing.assert_array_equal(frames[0], photo)  # no dreaming at all, even on the first frame
    # zoom at frame i: linear 1.0 -> 1.2 over 0..4, then 1.2 -> 1.0 + 0.01*t over 4..8, then 1.0 + 0.01*t
    expected = [1.0, 1.05, 1.1, 1.15, 1.2] + [1.2 + (1.0 + 0.01 * t - 1.2) * (t - 4) / 4 for t in (5, 6, 7)] + \
               [1.08, 1.09]
    for i in range(1, 10):
        np.testing.assert_array_equal(frames[i], _zoomed_by(frames[i - 1], expected[i]), err_msg=f"frame {i}")


def test_zoom_pulses_on_the_clicks(tmp_path, small_photo, media_files):
    out = tmp_path / "frames"
    assert _zoom(small_photo, out, "--frames", "40", "--audio", str(media_files["clicks"]),
                 "--zoom", "1 + 0.1*(beat == 1)", *PREVIEW) == 0
    frames = _frames(out)
    moved = [i for i in range(1, 40) if not np.array_equal(frames[i], frames[i - 1])]
    assert moved == [12, 24, 36]  # the click frames, and only those
    for i in moved:
        np.testing.assert_array_equal(frames[i], _zoomed_by(frames[i - 1], 1.1))


def test_dream_strength_follows_its_schedule(tmp_path, small_photo):
    out = tmp_path / "frames"
    assert _zoom(small_photo, out, "--frames", "4", "--zoom", "1", "--octaves", "1", "--iterations", "2",
                 "--iterations-per-frame", "2", "--jitter", "0", "--model", "vgg16-hed", "--layers", "block3_conv1=1",
                 "--precision", "fp32", "--step", "0.2*(t == 2)", "-q") == 0
    f = _frames(out)
    # step 0 at frames 0, 1 and 3: nothing dreamed there; the frame at step 0.2 is dreamed
    assert np.array_equal(f[0], f[1]) and not np.array_equal(f[1], f[2]) and np.array_equal(f[2], f[3])
    assert np.abs(f[2].astype(int) - f[1]).mean() > 1.0


def test_video_camera_is_an_absolute_move_of_each_source_frame(tmp_path, media_files):
    out = tmp_path / "frames"
    assert main(["video", str(media_files["silent"]), "-o", str(out), "--zoom", "0:(1), 19:(1.5)",
                 "--rotate", "2*sin(t)", *PREVIEW]) == 0
    frames = _frames(out)
    sources = list(iter_frames(probe(media_files["silent"])))
    assert len(frames) == len(sources) == 20
    np.testing.assert_array_equal(frames[0], sources[0])  # zoom 1, rotate 0: as shot
    for i in (5, 19):
        c = motion.center_px((96, 64))
        m = motion.rotate(2 * np.sin(i), c) @ motion.zoom(1 + 0.5 * i / 19, c)
        np.testing.assert_array_equal(frames[i], motion.warp_affine(sources[i], m), err_msg=f"frame {i}")


def test_video_soundtrack_drives_the_camera_and_audio_flag_replaces_it(tmp_path, media_files):
    # the clip's own soundtrack: clicks at 0.5, 1.0, 1.5 s = frames 5, 10, 15 at 10 fps
    out = tmp_path / "own"
    assert main(["video", str(media_files["clip"]), "-o", str(out), "--zoom", "1 + 0.3*(beat == 1)", *PREVIEW]) == 0
    sources = list(iter_frames(probe(media_files["clip"])))
    zoomed = [i for i, (f, s) in enumerate(zip(_frames(out), sources)) if not np.array_equal(f, s)]
    assert zoomed == [5, 10, 15]
    # --audio FILE: features from that file (clicks at 0.25 and 1.75 s: frames 2 and 18 (17.5 rounds to even))
    mp4 = tmp_path / "other.mp4"
    assert main(["video", str(media_files["silent"]), "-o", str(mp4), "--audio", str(media_files["other"]),
                 "--zoom", "1 + 0.3*(beat == 1)", "--keep-frames", *PREVIEW]) == 0
    assert probe_output(mp4).has_audio
    kept = _frames(mp4.parent / f".{mp4.name}.zoomdream-work" / "frames")
    zoomed = [i for i, (f, s) in enumerate(zip(kept, sources)) if not np.array_equal(f, s)]
    beats = np.flatnonzero(frame_features(media_files["other"], fps=10, n=20)["beat"] == 1).tolist()
    assert zoomed == beats and len(beats) == 2


def test_blend_and_colour_lock_schedules_in_video(tmp_path, media_files):
    out = tmp_path / "frames"
    assert main(["video", str(media_files["clip"]), "-o", str(out), "--blend", "0:(0), 19:(1)",
                 "--colour-lock", "0.5*beat", *PREVIEW]) == 0
    assert len(_frames(out)) == 20


def test_audio_feature_without_audio_is_refused_before_anything_is_written(tmp_path, small_photo, media_files,
                                                                          capsys):
    out = tmp_path / "z.mp4"
    assert _zoom(small_photo, out, "--frames", "4", "--zoom", "1 + 0.1*beat", *PREVIEW) == 2
    err = capsys.readouterr().err
    assert "zoom.zoom (--zoom): uses the audio feature 'beat' but there is no audio" in err and err.count("\n") == 1
    v = tmp_path / "v.mp4"
    assert main(["video", str(media_files["silent"]), "-o", str(v), "--step", "0.01*onset", *PREVIEW]) == 2
    assert "step (--step): uses the audio feature 'onset' but there is no audio" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


HOSTILE = [
    ("--zoom", "__import__('os').system('touch pwned')", "is not an allowed function"),
    ("--zoom", "t.__class__", "attribute access is not allowed"),
    ("--zoom", "(lambda: 1)()", "is not an allowed function"),
    ("--zoom", "9**9**9", "is inf at frame 0 (not a finite number)"),
    ("--zoom", "nope*2", "unknown name 'nope'"),
    ("--zoom", "0:(1.0), 10:(1.1", "unbalanced '('"),
    ("--zoom", "1 - t", "zoom.zoom (--zoom): '1 - t' is 0 at frame 1; expected a number > 0 and <= 10"),
    ("--rotate", "0/0", "is nan at frame 0"),
    ("--step", "sqrt(2 - t)", "is nan at frame 3"),
    ("--pan", "sin(t) | __import__('os')", "--pan: y: '__import__' is not an allowed function"),
    ("--colour-lock", "t", "zoom.colour_lock (--colour-lock): 't' is 2 at frame 2; expected a number in 0..1"),
    ("--center", "0.5 | 2", "--center: '2' is 2 at frame 0; expected a number in 0..1"),
]


@pytest.mark.parametrize("flag,value,message", HOSTILE, ids=[f"{h[0]}={h[1][:20]}" for h in HOSTILE])
def test_bad_schedules_are_one_line_exit_2_nothing_written(tmp_path, small_photo, flag, value, message, capsys):
    out = tmp_path / "z.mp4"
    assert _zoom(small_photo, out, "--frames", "6", flag, value, *PREVIEW) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoomdream: error: ") and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
    assert not Path("pwned").exists()


def test_the_soundtrack_is_part_of_the_resume_manifest(tmp_path, small_photo, media_files, capsys):
    song = tmp_path / "song.wav"
    song.write_bytes(media_files["clicks"].read_bytes())
    out = tmp_path / "z.mp4"
    args = ["--frames", "30", "--audio", str(song), "--zoom", "1 + 0.05*onset", "--keep-frames", "--overwrite",
            *PREVIEW]
    assert _zoom(small_photo, out, *args) == 0
    assert _zoom(small_photo, out, *args) == 0  # the same sound: every frame is reused
    song.write_bytes(media_files["other"].read_bytes())
    capsys.readouterr()
    assert _zoom(small_photo, out, *args) == 2
    assert "render options changed" in capsys.readouterr().err


def test_bundled_music_presets_check_out(media_files):
    features = frame_features(media_files["clicks"], fps=24, n=48)
    for name, kind in (("zoom-beat-pulse", "zoom"), ("video-music-swell", "video")):
        s = presets.load_preset(name)
        assert animation.features_used(s, kind), name  # they do listen to the music
        anim = animation.Animation(s, kind=kind, n=48, fps=24, features=features)
        assert anim.step(12) > anim.step(20), name  # stronger on the beat than between beats


def test_preset_schedules_are_checked_with_file_and_line(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("extends: default\nzoom:\n  frames: 4\n  zoom: \"0:(1.0), 2:(os.system)\"\n")
    with pytest.raises(ZoomdreamError,
                       match=r"mine\.yaml:4: zoom\.zoom: 'os\.system': attribute access is not allowed"):
        presets.load_preset(p)
    p.write_text("extends: default\nstep: 0.01 + 0.02*beat\nvideo:\n  pan: [\"2*sin(s)\", 0]\n"
                 "layers: {block5c_expand_activation: \"1 - 0.5*bass\", block4a_expand_activation: 0.5}\n")
    s = presets.load_preset(p)
    assert s.dream.step == "0.01 + 0.02*beat" and s.video.pan == ("2*sin(s)", 0)
    assert presets.load_preset(p) == presets.from_dict(__import__("yaml").safe_load(presets.dump(s)))


# ---------------------------------------------------------------- one declaration per setting
def test_animated_settings_are_derived_from_the_declarations():
    schedulable = {key for key, spec in S.declarations().items() if spec.schedulable}
    assert set(animation.ANIMATED) == schedulable - {"layers", "zoom.layers"}  # the weights: a mapping of schedules
    for key, a in animation.ANIMATED.items():
        spec = S.declarations()[key]
        base = spec.check.base if isinstance(spec.check, S.Keyframed) else spec.check
        assert a.check == (base.item if a.pair else base) and a.flag == spec.flags[0]


def _outside(check: S.Number) -> float:
    return check.hi + 1 if check.hi is not None else (check.lo if check.lo_open else check.lo - 1)


def _inside(check: S.Number) -> float:
    return (check.lo + check.hi) / 2


@pytest.mark.parametrize("key", sorted(animation.ANIMATED))
def test_every_schedule_is_held_to_its_own_declaration_at_every_frame(key):
    """A value that a constant could not take is refused at the first frame a schedule takes it, naming the
    setting and the frame, before anything renders; the same number as a constant is refused too."""
    a = animation.ANIMATED[key]
    bad, good = _outside(a.check), _inside(a.check)
    with pytest.raises(S.Invalid):
        S.check_value(key, (bad, good) if a.pair else bad)
    text = f"{good}*(t < 3) + {bad}*(t >= 3)"
    settings = S.merge(S.Settings(), {key: f"{text} | {good}" if a.pair else text})
    kind = "video" if key.startswith("video.") else "zoom"
    expected = rf"^{re.escape(a.label)}( x)?: '{re.escape(text)} ?' is {bad:g} at frame 3; " \
               rf"expected {re.escape(a.check.what)}$"
    with pytest.raises(ZoomdreamError, match=expected):
        animation.Animation(settings, kind=kind, n=6, fps=24.0)
    good_settings = S.merge(S.Settings(), {key: f"{good} + 0*t | {good}" if a.pair else f"{good} + 0*t"})
    animation.Animation(good_settings, kind=kind, n=6, fps=24.0)


@pytest.mark.parametrize("key", ["layers", "zoom.layers"])
def test_layer_weight_schedules_have_the_bounds_of_a_constant_weight(key):
    text = "2*(t < 3) + 2000*(t >= 3)"
    value = {"block3_conv1": text} if key == "layers" else {0: {"block3_conv1": 1.0}, 4: {"block3_conv1": text}}
    settings = S.merge(S.Settings(), {key: value})
    where = "layers (--layers) block3_conv1" if key == "layers" else "zoom.layers block3_conv1"
    with pytest.raises(ZoomdreamError, match=rf"^{re.escape(where)}: .* is [\d.]+ at frame 3; "
                                             rf"expected a number in -1000..1000$"):
        animation.Animation(settings, kind="zoom", n=8, fps=24.0)
    with pytest.raises(S.Invalid, match="expected a number in -1000..1000"):
        S.check_value("layers", {"block3_conv1": 2000.0})


def test_keyframed_layers_fade_missing_names_and_take_expressions():
    """zoom.layers keyframes are schedules like any other: smoothstep between keys, a layer missing at a
    keyframe weighs 0 there, held outside the keys; an expression is evaluated at each frame."""
    settings = S.merge(S.Settings(), {"zoom.layers": {0: {"a": 1.0}, 10: {"b": "2 + 0*t"}}})
    anim = animation.Animation(settings, kind="zoom", n=14, fps=24.0)
    assert anim.layers(0) == {"a": 1.0, "b": 0.0}
    assert anim.layers(5) == pytest.approx({"a": 0.5, "b": 1.0})  # smoothstep(0.5) = 0.5
    assert anim.layers(10) == anim.layers(13) == {"a": 0.0, "b": 2.0}
    assert anim.layers(2) == pytest.approx({"a": 1 - 0.104, "b": 2 * 0.104})  # 3u^2 - 2u^3 at u = 0.2
