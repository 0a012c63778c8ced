"""Settings: one declaration per setting, and every bad value refused wherever it comes from.

For every declared setting the bad values (NaN, +-inf, below and above the range, 10**20,
wrong types) are generated from its declaration and tried as a preset value (exit 2, one line
naming file:line:key), as a flag where it has one (argparse's usage plus one error line naming
the flag), and through the Python API (merge, dataclasses.replace): never a traceback, never a
file written. No model is loaded: these are refused before anything is read but the preset.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest
import yaml

import zoomdream
from zoomdream import settings as S
from zoomdream.cli import build_parser, main
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import presets
from zoomdream.settings.values import QUOTE_CHARS

from conftest import names_in

HUGE = 10**20
SCHEDULABLE = {"layers", "step", "video.blend", "video.colour_lock", "video.zoom", "video.rotate", "video.pan",
               "video.center", "zoom.zoom", "zoom.rotate", "zoom.pan", "zoom.center", "zoom.layers", "zoom.colour_lock"}
COMMAND = {"": "image", "video.": "video", "zoom.": "zoom"}


@pytest.fixture(autouse=True)
def _never_dream(monkeypatch):
    """A value that slipped through would start a dream: fail fast instead of dreaming for minutes."""
    # Imported first, so their own `load_backbone` names are bound to the real one (and patched below);
    # importing them under the patch would keep `refuse` in them for the rest of the session.
    import zoomdream.backbones
    import zoomdream.dream
    import zoomdream.render.frameloop
    import zoomdream.render.stills

    def refuse(*a, **k):
        raise AssertionError("a backbone was loaded: the bad value was not refused up front")

    for module in (zoomdream.backbones, zoomdream.dream, zoomdream.render.frameloop, zoomdream.render.stills):
        monkeypatch.setattr(module, "load_backbone", refuse)


def _number_cases(c: S.Number) -> list:
    out = [math.nan, math.inf, -math.inf, "abc", [1], True]
    if c.lo is not None:
        out.append(c.lo if c.lo_open else c.lo - 1)
    if c.hi is not None:
        out.append(c.hi + 1)
    if c.integer:
        out += [HUGE, -HUGE, 2.5]
    else:
        out += [1e300 if c.hi is not None else 1e400]  # 1e400 is inf
    return out


def bad_values(check) -> list:
    """Values the declaration must refuse."""
    if isinstance(check, S.Keyframed):
        keyed = [{-1: _good(check.base)}, {HUGE: _good(check.base)}, {}, {0: math.nan}]
        return keyed if check.keys_only else bad_values(check.base) + keyed
    if isinstance(check, S.Number):
        return _number_cases(check)
    if isinstance(check, S.Pair):
        return [[math.nan, 0], [math.inf, math.inf], [0, 0, 0], "abc", 5] + \
               [[v, _good(check.item)] for v in _number_cases(check.item) if not isinstance(v, (str, list, bool))]
    if isinstance(check, S.Choice):
        return ["nope", 3, None]
    if isinstance(check, S.Text):  # also Path_
        return [5, ["a"], "x" * 10000] + ([None] if not check.nullable else [])
    if isinstance(check, S.Boolean):
        return ["yes", 1, None]
    if isinstance(check, S.Layers):
        return [{}, {"block4_conv3": math.nan}, {"block4_conv3": math.inf}, {"block4_conv3": HUGE}, "abc", [1],
                {f"l{i}": 1.0 for i in range(100)}]
    if isinstance(check, S.Channels):
        return [{"block4_conv3": [-1]}, {"block4_conv3": [HUGE]}, {"block4_conv3": "x"}, [1], {"block4_conv3": [1.5]}]
    raise AssertionError(f"no bad values for {check}")


def _good(check):
    if isinstance(check, S.Number):
        return check.lo if check.lo is not None and not check.lo_open else (check.hi or 1.0)
    if isinstance(check, S.Pair):
        return [_good(check.item)] * 2
    if isinstance(check, S.Layers):
        return {"block4_conv3": 1.0}
    return None


CASES = [(key, v) for key, spec in S.declarations().items() for v in bad_values(spec.check)]


def _ids(cases):
    return [f"{k}={S.quote(v)[:20]}" for k, v in cases]


def _flow(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9)
    return text.removesuffix("\n...\n").strip()  # a bare scalar ends with the document marker


def _preset_yaml(key: str, value) -> str:
    section, _, name = key.rpartition(".")
    return f"{section}:\n  {name}: {_flow(value)}\n" if section else f"{key}: {_flow(value)}\n"


@pytest.mark.parametrize("key,value", CASES, ids=_ids(CASES))
def test_bad_value_in_a_preset_is_one_line_naming_file_line_key(key, value, tmp_path, capsys, sample_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("meta: {note: skipped}\n" + _preset_yaml(key, value))
    out = tmp_path / "out"
    out.mkdir()
    command = COMMAND[key.rpartition(".")[0] + "." if "." in key else ""]
    ext = ".png" if command == "image" else ".mp4"
    assert main([command, str(sample_path), "-o", str(out / f"o{ext}"), "--preset", str(preset), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoomdream: error: "), err
    line = 3 if "." in key else 2  # the section header is line 2, its key line 3
    assert f"mine.yaml:{line}: {key}: " in err[0]
    assert len(err[0]) < 400 and "Traceback" not in err[0]
    assert names_in(out) == []


def _flag_text(value) -> str:
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):  # layers: the name=weight shorthand
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(_flag_text(v) for v in value)
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


FLAG_CASES = [(key, v) for key, v in CASES
              if S.declarations()[key].flags and v is not None and not isinstance(v, bool)
              and not (isinstance(S.declarations()[key].check, (S.Boolean, S.Channels)))
              and not (isinstance(S.declarations()[key].check, S.Text) and isinstance(v, (int, list)))
              and not (isinstance(v, list) and "Pair" not in repr(S.declarations()[key].check))]  # [1] reads as "1"


@pytest.mark.parametrize("key,value", FLAG_CASES, ids=_ids(FLAG_CASES))
def test_bad_value_as_a_flag_is_usage_plus_one_error_line(key, value, tmp_path, capsys, sample_path):
    spec = S.declarations()[key]
    out = tmp_path / "out"
    out.mkdir()
    command = COMMAND[key.rpartition(".")[0] + "." if "." in key else ""]
    ext = ".png" if command == "image" else ".mp4"
    text = _flag_text(value)
    argv = [command, str(sample_path), "-o", str(out / f"o{ext}"), f"{spec.flags[0]}={text}", "-q"]
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in "".join(err), err
    assert spec.flags[0] in errors[0] or key in errors[0], errors[0]
    assert all(line.startswith(("usage:", " ", "zoomdream")) for line in err), err
    assert len(errors[0]) < 400
    assert names_in(out) == []


@pytest.mark.parametrize("key,value", CASES, ids=_ids(CASES))
def test_bad_value_through_the_python_api_names_the_key(key, value):
    base = presets.load_preset("default")
    if value is None:  # merge reads None as "not given"; the check itself refuses it
        with pytest.raises(S.Invalid):
            S.check_value(key, value)
    else:
        with pytest.raises(ZoomdreamError, match=rf"^{key.replace('.', '[.]')}: ") as info:
            zoomdream.merge(base, {key: value})
        assert len(str(info.value)) < 400
    section, _, name = key.rpartition(".")
    if key == "description":
        return
    target = getattr(base, section) if section else base.dream
    with pytest.raises(ZoomdreamError, match=rf"settings: {key.replace('.', '[.]')}: "):
        dataclasses.replace(target, **{name or key: value})


def test_every_field_is_declared_and_its_default_passes_its_own_check():
    for cls in (S.Settings, S.DreamSettings, S.VideoSettings, S.ZoomSettings):
        for f in dataclasses.fields(cls):
            if f.name in ("dream", "video", "zoom"):
                continue
            spec = S.spec_of(f)
            assert spec is not None, f"{cls.__name__}.{f.name} has no declaration (use settings.setting)"
            assert spec.help and "\n" not in spec.help
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert spec.validate(default) == (dict(default) if isinstance(default, dict) else default)
    assert {k for k, s in S.declarations().items() if s.schedulable} == SCHEDULABLE


def test_schedulable_settings_go_through_the_one_hook(monkeypatch):
    seen = []

    def hook(value, base_check):
        seen.append(value)
        return base_check(value)

    monkeypatch.setattr(S, "check_schedulable", hook)
    S.check_value("zoom.zoom", {0: 1.0, 24: 1.05})
    S.check_value("iterations", 3)  # not schedulable: not through the hook
    S.ZoomSettings(rotate=0.5)
    assert seen[0] == {0: 1.0, 24: 1.05} and 0.5 in seen and 3 not in seen


def test_checks_normalise_what_they_accept():
    assert S.check_value("zoom.zoom", {48: 1.05, 0: 1.0}) == {0: 1.0, 48: 1.05}
    assert S.check_value("zoom.pan", [1, 2]) == (1.0, 2.0)
    assert S.check_value("zoom.size", "64x48") == (64, 48)
    assert S.check_value("octave_scale", 2) == 2.0 and isinstance(S.check_value("octave_scale", 2), float)
    assert S.check_value("channels", {"block4_conv3": 7}) == {"block4_conv3": (7,)}
    assert S.OPTIONS["fps"].validate("30000/1001") == Fraction(30000, 1001)
    import numpy as np

    assert S.check_value("iterations", np.int64(4)) == 4 and S.check_value("step", np.float32(0.5)) == 0.5
    with pytest.raises(S.Invalid, match="expected a number in 0..1, got .*nan"):
        S.check_value("step", np.float32("nan"))


def test_flags_are_derived_from_the_declarations():
    parser = build_parser()
    subs = parser._subparsers._group_actions[0]
    for prefix, command in COMMAND.items():
        sub = subs.choices[command]
        dests = {a.dest: a for a in sub._actions}
        for key, spec in S.declarations().items():
            mine = key.startswith(prefix) and "." not in key[len(prefix):] if prefix else "." not in key
            if not mine or not spec.flags:
                continue
            assert key in dests, f"{command}: no flag for {key}"
            assert set(spec.flags) <= set(dests[key].option_strings)
            assert spec.help in dests[key].help
    zoom_help = subs.choices["zoom"].format_help()
    assert "--frames N" in zoom_help and "1..1000000" in zoom_help


def test_presets_show_and_the_sidecar_list_every_declared_setting(capsys):
    assert main(["presets", "--show", "zoom-spiral"]) == 0
    text = capsys.readouterr().out
    data = yaml.safe_load(text)
    assert f"  # {S.declarations()['zoom.colour_lock'].help}" in text  # each line ends in its declared help
    assert presets.from_dict(data) == presets.load_preset("zoom-spiral")  # and the listing is itself a preset
    keys = {k for k in data if k not in ("video", "zoom")} | {f"{s}.{k}" for s in ("video", "zoom") for k in data[s]}
    assert keys == set(S.declarations())


def test_seconds_that_make_too_many_frames_name_the_flag(tmp_path, capsys, sample_path):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["zoom", str(sample_path), "-o", str(out / "z.mp4"), "--seconds", "1000000", "--fps", "240", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("zoomdream: error: --seconds 1e+06: ")
    assert "expected an integer in 1..1000000" in err[0] and names_in(out) == []


OPTION_CASES = [(name, v) for name, spec in S.OPTIONS.items()
                for v in (bad_values(spec.check) if isinstance(spec.check, S.Number) else
                          ["nan", "inf", "-1", "0", "1e400", "241", "1/0", "abc"])
                if v is not None and not isinstance(v, (bool, list))]
OPTION_COMMAND = {"cell": "sheet", "seconds": "zoom"}


@pytest.mark.parametrize("name,value", OPTION_CASES, ids=_ids(OPTION_CASES))
def test_bad_render_option_flag_is_exit_2(name, value, tmp_path, capsys, sample_path):
    out = tmp_path / "out"
    out.mkdir()
    command = OPTION_COMMAND.get(name, "video")
    flag = S.OPTIONS[name].flags[0]
    try:
        code = main([command, str(sample_path), "-o", str(out / ("o.png" if command == "sheet" else "o.mp4")),
                     f"{flag}={_flag_text(value)}", "-q"])
    except SystemExit as e:
        code = e.code
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error:" in line]
    assert code == 2 and len(err) == 1 and flag in err[0], err
    assert names_in(out) == []


@pytest.mark.parametrize("options", [{"crf": -5}, {"crf": 52}, {"start": math.nan}, {"end": math.inf},
                                     {"preview": 0}, {"preview": HUGE}, {"fps": math.nan}, {"fps": "abc"}])
def test_render_video_refuses_bad_options_before_reading_anything(options, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ZoomdreamError, match=rf"^{next(iter(options))}: expected"):
        zoomdream.render_video(tmp_path / "missing.mp4", out / "o.mp4", settings=S.Settings(), **options)
    assert names_in(out) == []


def test_dream_image_refuses_settings_changed_behind_the_dataclass(photo):
    d = S.DreamSettings()
    object.__setattr__(d, "step", math.nan)  # what a caller can still do to a frozen dataclass
    with pytest.raises(ZoomdreamError, match="settings: step: expected a number in 0..1, got nan"):
        zoomdream.dream_image(photo, settings=d)


def test_quote_bounds_every_echoed_value():
    assert len(S.quote("x" * 10**6)) <= QUOTE_CHARS
    assert len(S.quote({i: list(range(1000)) for i in range(1000)})) <= QUOTE_CHARS
    assert len(str(ZoomdreamError("y" * 10**6))) <= ZoomdreamError.max_chars


@pytest.mark.parametrize("name", sorted(presets.bundled_presets()))
def test_to_dict_round_trips_through_yaml_and_from_dict(name):
    settings = presets.load_preset(name)
    data = S.to_dict(settings)
    assert yaml.safe_load(yaml.safe_dump(data)) == data  # plain YAML data, nothing Python-only
    assert presets.from_dict(data) == settings
    assert S.to_dict(presets.from_dict(data)) == data


def test_merge_applies_each_key_to_its_section_and_leaves_the_base_alone():
    base = S.Settings()
    merged = S.merge(base, {"step": 0.05, "video.blend": 0.3, "zoom.frames": 12, "description": "mine",
                            "octaves": None})  # None: "not given", as argparse defaults are
    assert (merged.dream.step, merged.video.blend, merged.zoom.frames, merged.description) == (0.05, 0.3, 12, "mine")
    assert merged.dream.octaves == base.dream.octaves
    assert base == S.Settings() and S.merge(base, {}) == base
    first, then = {"step": 0.05, "zoom.frames": 12}, {"step": 0.07, "video.blend": 0.1}
    assert S.merge(S.merge(base, first), then) == S.merge(base, {**first, **then})  # later layers win
    assert S.to_dict(merged) == {**S.to_dict(base), "description": "mine", "step": 0.05,
                                 "video": {**S.to_dict(base)["video"], "blend": 0.3},
                                 "zoom": {**S.to_dict(base)["zoom"], "frames": 12}}


def test_merge_refuses_an_unknown_key_with_a_suggestion():
    with pytest.raises(ZoomdreamError, match=r"^video\.blnd: unknown setting \(did you mean 'video\.blend'\?\)$"):
        S.merge(S.Settings(), {"video.blnd": 0.3})
