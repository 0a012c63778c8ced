"""Presets: every bundled look loads; every mistake names file, key and line."""

from __future__ import annotations

import sys
import textwrap

import pytest

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import presets

from conftest import ROOT


def _write(tmp_path, text, name="mine.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_bundled_presets_load_and_describe_themselves():
    bundled = presets.bundled_presets()
    assert {"default", "inception-classic"} <= set(bundled)
    assert len(bundled) >= 5
    for name, path in bundled.items():
        s = presets.load_preset(name)
        assert s.description and "\n" not in s.description, name
        assert presets.describe(path) == s.description


def test_inception_classic_is_exactly_the_seed():
    d = presets.load_preset("inception-classic").dream
    assert d.model == "inception_v3"
    assert dict(d.layers) == {"mixed2": 0.2, "mixed3": 0.5, "mixed4": 1.5, "mixed5": 2.0}
    assert (d.border, d.grad_norm, d.step, d.octaves, d.octave_scale, d.iterations, d.max_loss, d.jitter, d.clip) == \
        (2, "mean_abs", 0.01, 4, 1.4, 5, 10.0, 0, False)
    assert (d.grad_levels, d.grad_blur) == (0, 0.0)  # the seed's raw gradient


def test_extends_overrides_a_few_keys(tmp_path):
    p = _write(tmp_path, """
        extends: default
        description: mine
        iterations: 3
        video: {blend: 0.9}
    """)
    base, mine = presets.load_preset("default"), presets.load_preset(p)
    assert mine.dream.iterations == 3 and mine.video.blend == 0.9
    assert mine.dream.layers == base.dream.layers
    assert mine.video.iterations_per_frame == base.video.iterations_per_frame  # sections merge key by key


def test_dump_is_itself_a_valid_preset(tmp_path):
    s = presets.load_preset("default")
    s = S.merge(s, {"seed": 7, "zoom.zoom": {0: 1.02, 48: 1.05}, "zoom.size": (64, 48)})
    p = tmp_path / "dream.png.yaml"
    p.write_text(presets.dump(s, meta={"zoomdream": "x", "tensorflow": "y"}))
    assert presets.load_preset(p) == s


ERRORS = [
    ("octave_scal: 1.4\n", r"mine\.yaml:1: octave_scal: unknown key \(did you mean 'octave_scale'\?\)"),
    ("iterations: ten\n", r"mine\.yaml:1: iterations: expected an integer in 0\.\.10000"),
    ("iterations: -1\n", r"mine\.yaml:1: iterations: expected an integer in 0\.\.10000, got -1"),
    ("step: -0.01\n", r"mine\.yaml:1: step: expected a number in 0\.\.1"),
    ("step: 1e-2\n", r"mine\.yaml:1: step: .*YAML 1\.1 reads '1e-2' as text"),
    ("octaves: 010\n", r"mine\.yaml:1: .*leading zero.*octal"),
    ("video:\n  blend: no\n", r"mine\.yaml:2: video\.blend: expected a number"),
    ("iterations: 3\niterations: 4\n", r"mine\.yaml:2: duplicate key 'iterations' \(first at line 1\)"),
    ("layers:\n\tblock4_conv3: 1\n", r"mine\.yaml:2:1: invalid YAML: tab character"),
    ("layers: {block9_conv1: 1.0}\n", r"mine\.yaml:1: layers: model efficientnet-lite0 has no layer 'block9_conv1'"),
    ("channels: {block5c_expand_activation: [3, 999]}\n",
     r"mine\.yaml:1: channels: channels \[999\] out of range .*672 channels"),
    ("model: alexnet\n", r"mine\.yaml:1: model: unknown model 'alexnet'"),
    ("video: {flow: lucas}\n", r"mine\.yaml:1: video\.flow: expected one of dis, farneback"),
    ("zoom: {zoom: {-1: 1.02}}\n", r"mine\.yaml:1: zoom\.zoom: keyframe -1: frames must be integers in 0\.\.1000000"),
    ("zoom: {pan: [1]}\n", r"mine\.yaml:1: zoom\.pan: expected a pair"),
    ("zoom: {warp: 2}\n", r"mine\.yaml:1: zoom\.warp: unknown key"),
    ("- a\n- b\n", r"mine\.yaml: expected a mapping of settings"),
    ("", r"mine\.yaml: preset is empty"),
    ("extends: mine.yaml\n", r"'extends' forms a cycle"),
    ("extends: nothere.yaml\n", r"nothere\.yaml: preset file not found"),
    ("layers: {}\n", r"layers: expected a mapping of layer names to weights"),
    ("grad_levels: -1\n", r"mine\.yaml:1: grad_levels: expected an integer in 0\.\.8, got -1"),
    ("grad_blur: 20.0\n", r"mine\.yaml:1: grad_blur: expected a number in 0\.\.8, got 20"),
]


@pytest.mark.parametrize("text,pattern", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_validation_errors_name_file_key_and_line(tmp_path, text, pattern):
    p = _write(tmp_path, text)
    with pytest.raises(ZoomdreamError, match=pattern) as info:
        presets.load_preset(p)
    assert "\n" not in str(info.value)


def test_cli_reports_preset_errors_with_exit_2(tmp_path, capsys, sample_path):
    from zoomdream.cli import main

    p = _write(tmp_path, "iterations: 3\niterations: 4\n")
    out = tmp_path / "out.png"
    code = main(["image", str(sample_path), "-o", str(out), "--preset", str(p)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "mine.yaml:2: duplicate key" in err[0]
    assert not out.exists()


def test_flags_override_preset_values(tmp_path):
    from zoomdream.cli import build_parser, resolve_settings

    args = build_parser().parse_args(["image", "x.jpg", "-o", "y.png", "--iterations", "2", "--octave-scale", "1.3",
                                      "--layers", "block3b_add=0.5,block4c_add=1.5", "--seed", "9", "--tile", "256"])
    s = resolve_settings(args)
    assert (s.dream.iterations, s.dream.octave_scale, s.dream.seed, s.dream.tile) == (2, 1.3, 9, 256)
    assert dict(s.dream.layers) == {"block3b_add": 0.5, "block4c_add": 1.5}
    assert s.dream.step == presets.load_preset("default").dream.step  # untouched keys keep the preset's values


def test_gradient_conditioning_flags(capsys, tmp_path, sample_path):
    from zoomdream.cli import build_parser, main, resolve_settings

    s = resolve_settings(build_parser().parse_args(["image", "x.jpg", "-o", "y.png", "--grad-levels", "2",
                                                    "--grad-blur", "0.5"]))
    assert (s.dream.grad_levels, s.dream.grad_blur) == (2, 0.5)
    out = tmp_path / "o.png"
    with pytest.raises(SystemExit) as e:  # argparse: its usage lines, then one error line naming the flag
        main(["image", str(sample_path), "-o", str(out), "--grad-levels", "99"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--grad-levels" in err[-1] and "0..8" in err[-1]
    assert not out.exists()


def test_unknown_layer_flag_is_exit_2(capsys, tmp_path, sample_path):
    from zoomdream.cli import main

    code = main(["image", str(sample_path), "-o", str(tmp_path / "o.png"), "--layers", "block4_conv9=1"])
    err = capsys.readouterr().err
    assert code == 2 and "block4_conv9" in err and "did you mean" in err


def test_layers_shorthand():
    check = S.Layers()
    assert check(check.parse("mixed3=0.5, mixed4=1.5,mixed5")) == {"mixed3": 0.5, "mixed4": 1.5, "mixed5": 1.0}
    with pytest.raises(S.Invalid, match="not a number"):
        check(check.parse("mixed3=lots"))


def test_presets_module_does_not_import_tensorflow():
    import subprocess

    code = ("import sys, zoomdream.settings.presets as p, zoomdream.cli as c; p.load_preset('default'); "
            "c.build_parser(); assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readme_preset_example_is_a_valid_preset(tmp_path):
    import re

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    s = presets.load_preset(_write(tmp_path, block, "readme.yaml"))
    assert s.dream.channels == {"block6a_expand_activation": (12, 40)} and s.zoom.octaves_per_frame == 1
    assert (s.dream.model, s.dream.grad_levels, s.dream.grad_blur) == ("efficientnet-lite0", 4, 0.7)


# ---------------------------------------------------------------- the schedule forms the README documents
def _keyframe_map_yaml(key: str, first: float, then: float, pair: bool) -> str:
    a, b = (f"[{first}, {first}]", f"[{then}, {then}]") if pair else (first, then)
    section, _, name = key.rpartition(".")
    line = f"{name}: {{0: {a}, 10: {b}}}\n"
    return f"{section}:\n  {line}" if section else line


@pytest.mark.parametrize("key", sorted(k for k, s in S.declarations().items() if s.schedulable
                                       and k not in ("layers", "zoom.layers")))
def test_a_keyframe_map_of_plain_numbers_works_for_every_schedulable_key(tmp_path, key):
    """``step: {0: 0.01, 10: 0.02}`` (unquoted numbers): eased between the keys like every keyframe map."""
    from zoomdream.settings.animation import ANIMATED, Animation

    a = ANIMATED[key]
    lo = a.check.lo if a.check.lo is not None else -1.0
    first, then = (lo + 0.25, lo + 0.75) if a.check.hi is None or a.check.hi - lo >= 1 else (lo, a.check.hi)
    settings = presets.load_preset(_write(tmp_path, _keyframe_map_yaml(key, first, then, a.pair)))
    anim = Animation(settings, kind="video" if key.startswith("video.") else "zoom", n=12, fps=24.0)
    column = anim.tables[key] if not a.pair else anim.tables[key][:, 0]
    assert column[0] == first and column[10] == column[11] == then
    assert column[5] == pytest.approx((first + then) / 2)
    out_of_range = _keyframe_map_yaml(key, first, _outside(a.check), a.pair)
    with pytest.raises(ZoomdreamError, match=rf"mine.yaml:\d: {key}: keyframe 10: expected"):
        presets.load_preset(_write(tmp_path, out_of_range))


def _outside(check) -> float:
    return check.hi + 1 if check.hi is not None else check.lo - 1


def test_zoom_layer_keyframes_with_expressions_are_checked_with_file_and_key(tmp_path):
    bad = _write(tmp_path, """\
        zoom:
          layers: {0: {block3_conv1: 1.0}, 10: {block3_conv1: "nope(t)"}}
        """)
    with pytest.raises(ZoomdreamError, match=r"mine.yaml:2: zoom.layers: keyframe 10: layer block3_conv1: weight "
                                             r"'nope\(t\)' is not a number nor a schedule"):
        presets.load_preset(bad)
    far = _write(tmp_path, """\
        zoom:
          layers: {0: {block3_conv1: "2000"}}
        """)
    with pytest.raises(ZoomdreamError, match=r"mine.yaml:2: zoom.layers: keyframe 0: layer block3_conv1: '2000' is "
                                             r"2000 at frame 0; expected a number in -1000..1000"):
        presets.load_preset(far)
