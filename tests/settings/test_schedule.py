"""Schedule strings: the grammar, exact keyframe values, easing, and hostile input refused in one line."""

import numpy as np
import pytest

from zoomdream.errors import ZoomdreamError
from zoomdream.settings import schedule


def values(text, n=30, fps=24.0, **features):
    env = schedule.frame_variables(n, fps, features or None)
    return schedule.evaluate(schedule.parse(text, where="--zoom"), env, where="--zoom")


def test_public_names():
    for name in ("FEATURES", "NAMES", "FUNCTIONS", "EASINGS", "Curve", "parse", "parse_pair", "frame_variables"):
        assert name in schedule.__all__ and hasattr(schedule, name), name
    assert schedule.FEATURES == ("rms", "onset", "beat", "bass", "mid", "treble")


def test_keyframes_give_exactly_their_values_on_keyframes():
    v = values("0:(1.0), 10:(1.0025+0.002*sin(1.25*3.14*t/30)), 20:(t*0.1)")
    assert v[0] == 1.0
    assert v[10] == 1.0025 + 0.002 * np.sin(1.25 * 3.14 * 10 / 30)
    assert v[20] == 20 * 0.1
    # linear between keyframes, each keyframe's expression evaluated at the current frame
    assert v[15] == pytest.approx(0.5 * (1.0025 + 0.002 * np.sin(1.25 * 3.14 * 15 / 30)) + 0.5 * 1.5, abs=1e-12)
    assert v[25] == 25 * 0.1  # after the last keyframe its expression holds (and keeps moving)


def test_before_the_first_keyframe_the_value_holds():
    v = values("5:(2), 10:(3)")
    np.testing.assert_array_equal(v[:6], 2.0)
    np.testing.assert_allclose(v[5:11], [2.0, 2.2, 2.4, 2.6, 2.8, 3.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(v[10:], 3.0)


def smoothstep_keyframes(t: float, a: float, b: float, t0: int, t1: int) -> float:
    """The YAML keyframe map's easing, written out: held outside the keys, 3u^2 - 2u^3 between them."""
    u = min(max((t - t0) / (t1 - t0), 0.0), 1.0)
    return a if u <= 0 else b if u >= 1 else a + (b - a) * (u * u * (3.0 - 2.0 * u))


def test_smooth_easing_suffix_and_yaml_map_match_the_keyframe_easing():
    mine = values("0:(1.01), 48:(1.03); smooth", n=60)
    as_map = schedule.evaluate(schedule.parse({0: 1.01, 48: 1.03}), schedule.frame_variables(60, 24), where="x")
    for t in range(60):
        assert mine[t] == as_map[t] == smoothstep_keyframes(t, 1.01, 1.03, 0, 48)
    assert values("0:(1.01), 48:(1.03); linear", n=60)[24] == pytest.approx(1.02, abs=1e-15)


def test_constants_expressions_functions_and_comparisons():
    np.testing.assert_array_equal(values("1.5", n=4), 1.5)
    np.testing.assert_allclose(values("s*fps + n + 0*s", n=4, fps=12.0), [4.0, 5.0, 6.0, 7.0])
    np.testing.assert_array_equal(values("(t >= 2) * 3", n=4), [0, 0, 3, 3])
    np.testing.assert_array_equal(values("clip(t, 1, 2) + min(t, 0.5) + max(t, 1, 2)", n=4), [3.0, 3.5, 4.5, 5.5])
    np.testing.assert_allclose(values("floor(t/2) + ceil(0.2) + abs(-t) % 2 + sqrt(4) + exp(0) + log(1)", n=3),
                               [4.0, 5.0, 5.0])
    np.testing.assert_allclose(values("1 + beat", n=3, beat=np.array([0.0, 1.0, 0.5])), [1.0, 2.0, 1.5])
    assert schedule.parse("2*pi").constant == pytest.approx(2 * np.pi)
    assert schedule.parse("t").constant is None


def test_pairs():
    x, y = schedule.parse_pair("0:(0), 4:(4) | 2*sin(0)", where="--pan")
    env = schedule.frame_variables(5, 24)
    np.testing.assert_array_equal(x.values(env), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y.values(env), 0.0)
    assert [c.constant for c in schedule.parse_pair([0.5, "0.5"], where="--center")] == [0.5, 0.5]
    with pytest.raises(ZoomdreamError, match=r"--pan: expected two schedules 'X \| Y'"):
        schedule.parse_pair("1 | 2 | 3", where="--pan")


HOSTILE = [
    ("__import__('os')", r"'__import__' is not an allowed function"),
    ("__import__('os').system('true')", r"'__import__\('os'\)\.system' is not an allowed function"),
    ("t.__class__", r"attribute access is not allowed"),
    ("t.real", r"'t\.real': attribute access is not allowed"),
    ("(lambda: 1)()", r"is not an allowed function"),
    ("lambda: 1", r"lambda is not allowed"),
    ("foo + 1", r"unknown name 'foo'"),
    ("sin", r"unknown name 'sin' \(a function needs parentheses\)"),
    ("(1 + 2", r"unbalanced '\('"),
    ("1 + 2)", r"unbalanced '\)'"),
    ("", r"empty schedule"),
    ("   ", r"empty schedule"),
    ("0:(1), 5:()", r"a tuple is not allowed"),
    ("0:(1),", r"empty keyframe"),
    ("0:(1), 0:(2)", r"keyframe 0 appears twice"),
    ("1, 2", r"a ',' outside parentheses separates keyframes"),
    ("'text'", r"is not a number"),
    ("True", r"is not a number"),
    ("[1, 2][0]", r"indexing is not allowed"),
    ("{1: 2}", r"a dict is not allowed"),
    ("t if t else 1", r"if/else is not allowed"),
    ("t and 1", r"and/or is not allowed"),
    ("sin(x=1)", r"plain arguments only"),
    ("clip(t, 1)", r"clip takes 3 argument"),
    ("0:(1); bouncy", r"unknown easing 'bouncy'"),
    ("1 +" * 500 + "1", r"at most 1000"),
    ("+".join(["t"] * 300), r"too complex"),
    ("sin(" * 60 + "1" + ")" * 60, r"too complex"),
    ("(" * 300 + "1" + ")" * 300, r"cannot parse"),
    ("1 = 2", r"cannot parse"),
    ("import os", r"cannot parse"),
]


@pytest.mark.parametrize("text,pattern", HOSTILE, ids=[h[0][:30] for h in HOSTILE])
def test_hostile_and_malformed_strings_are_refused_in_one_line(text, pattern):
    with pytest.raises(ZoomdreamError, match=pattern) as info:
        schedule.parse(text, where="--zoom")
    message = str(info.value)
    assert message.startswith("--zoom: ") and "\n" not in message


@pytest.mark.parametrize("text,frame", [("9**9**9", 0), ("sqrt(t - 3)", 0), ("1/(t - 3)", 3), ("log(t - 2)", 0),
                                        ("10**(t*100)", 4), ("0:(1), 5:(1), 6:(0/0)", 6)])
def test_non_finite_values_name_the_setting_and_the_frame(text, frame):
    with pytest.raises(ZoomdreamError, match=rf"^--zoom: .* at frame {frame} \(not a finite number\)$"):
        values(text, n=10)


def test_range_check_names_the_frame():
    env = schedule.frame_variables(10, 24)
    with pytest.raises(ZoomdreamError, match=r"^--blend: '0.2\*t' is 1.2 at frame 6; expected 0..1$"):
        schedule.evaluate(schedule.parse("0.2*t"), env, where="--blend", check=lambda v: (0 <= v) & (v <= 1),
                          expected="0..1")


def test_audio_feature_without_audio_says_so():
    with pytest.raises(ZoomdreamError, match=r"--zoom: uses the audio feature 'beat' but there is no audio"):
        values("1 + 0.1*beat")


def test_values_are_a_pure_function_of_the_frame():
    """A chunk of a render sees the values a sequential run sees (frames 500.. of the same n)."""
    text = "0:(1), 400:(2+sin(t/7)), 900:(t/300)"
    whole = values(text, n=1000)
    again = values(text, n=1000)
    np.testing.assert_array_equal(whole, again)
    assert values(text, n=1000)[500:510].tolist() == whole[500:510].tolist()


@pytest.mark.parametrize("text", ["0:(1), 1" + "0" * 399 + ":(2)", "0:(1), 1000001:(2)",
                                  "0:(1), " + "9" * 5000 + ":(2)"])
def test_a_keyframe_past_the_last_frame_is_refused_in_one_line(text):
    with pytest.raises(ZoomdreamError, match=r"^--zoom: (keyframe .*: frames must be integers in 0..1000000|"
                                             r"schedule is \d+ characters long)"):
        schedule.parse(text, where="--zoom")
    with pytest.raises(ZoomdreamError, match=r"^--zoom: keyframe .*: frames must be integers in 0..1000000"):
        schedule.parse({0: 1.0, 10**400: 2.0}, where="--zoom")
