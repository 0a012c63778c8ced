"""Audio features on synthetic tracks made with the bundled ffmpeg: clicks, a sine sweep, silence."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from zoomdream import audio
from zoomdream.cli import main
from zoomdream.media.images import load_image

from conftest import FFMPEG as FF
from conftest import clicks_expr, lavfi_audio

CLICK_SECONDS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)  # 120 bpm, on frame times at 24 and 30 fps
IRREGULAR = tuple((f + 0.3) / 24 for f in (5, 17, 22, 40, 47, 70))  # 0.3 frame after frame starts, at 24 fps


@pytest.fixture(scope="session")
def tracks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracks")
    clicks = lavfi_audio(folder / "clicks.wav", clicks_expr(CLICK_SECONDS), 4.0)  # 5 ms noise bursts
    irregular = lavfi_audio(folder / "irregular.wav", clicks_expr(IRREGULAR), 4.0)
    # a logarithmic sweep from 40 Hz to 8 kHz over 4 s: bass first, treble last
    f0, f1, d = 40.0, 8000.0, 4.0
    k = np.log(f1 / f0) / d
    sweep = lavfi_audio(folder / "sweep.wav", f"0.5*sin(2*PI*{f0}*(exp({k}*t)-1)/{k})", d)
    silence = lavfi_audio(folder / "silence.wav", "0", 1.0)
    return {"clicks": clicks, "irregular": irregular, "sweep": sweep, "silence": silence}


def _peaks(x, floor=0.3):
    return [i for i in range(1, len(x) - 1) if x[i] >= x[i - 1] and x[i] > x[i + 1] and x[i] > floor]


@pytest.mark.parametrize("fps", [24, 30])
def test_clicks_give_onsets_and_beats_on_their_frames(tracks, fps):
    f = audio.frame_features(tracks["clicks"], fps=fps, n=4 * fps)
    expected = [round(c * fps) for c in CLICK_SECONDS]
    assert _peaks(f["onset"]) == expected
    assert np.flatnonzero(f["beat"] == 1.0).tolist() == expected
    # the beat falls from 1 on the beat towards 0 at the next one
    a, b = expected[1], expected[2]
    assert np.all(np.diff(f["beat"][a:b]) < 0) and f["beat"][b - 1] < 0.1
    assert f["rms"][expected].min() > 0.5 and f["rms"][expected[0] + 3] == 0.0  # loud on the click, silent between
    assert f["onset"].max() == 1.0 and f["rms"].max() == 1.0


def test_clicks_between_frame_times_land_on_the_frame_that_holds_them(tracks):
    f = audio.frame_features(tracks["irregular"], fps=24, n=96)
    assert _peaks(f["onset"]) == [5, 17, 22, 40, 47, 70]


def test_features_are_normalised_and_named(tracks):
    f = audio.frame_features(tracks["clicks"], fps=24, n=96)
    assert tuple(f) == audio.FEATURES
    for name, v in f.items():
        assert v.shape == (96,) and v.dtype == np.float64, name
        assert v.min() >= 0.0 and v.max() <= 1.0, name


def test_sweep_moves_the_band_energies(tracks):
    f = audio.frame_features(tracks["sweep"], fps=24, n=96)
    # the tone is below 250 Hz until 1.38 s (frame 33) and above 4 kHz after 3.48 s (frame 83)
    first, last = slice(4, 28), slice(86, 94)
    assert f["bass"][first].mean() > 0.5 > f["bass"][last].mean() + 0.4
    assert f["treble"][last].mean() > 0.5 > f["treble"][first].mean() + 0.4
    assert f["mid"][40:80].mean() > 0.5 > max(f["mid"][first].mean(), f["mid"][last].mean())
    peak = [int(np.argmax(f[b])) for b in ("bass", "mid", "treble")]
    assert peak[0] < peak[1] < peak[2]  # bass peaks first, then mid, then treble
    assert f["rms"][8:88].min() > 0.5  # a steady tone: loudness stays up


def test_start_offset_and_frames_after_the_track(tracks):
    """--start shifts frame 0 and keeps the normalisation of the whole track; after the end it is silence."""
    whole = audio.frame_features(tracks["clicks"], fps=24, n=96)
    later = audio.frame_features(tracks["clicks"], fps=24, n=96, offset=1.0)
    for name in audio.FEATURES:
        np.testing.assert_allclose(later[name][:72], whole[name][24:], rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(later[name][80:], 0.0)


def test_silence_gives_zeros(tracks):
    f = audio.frame_features(tracks["silence"], fps=24, n=24)
    for name in audio.FEATURES:
        np.testing.assert_array_equal(f[name], 0.0)


def test_audio_command_writes_curves_and_csv(tmp_path, tracks, capsys):
    png, csv = tmp_path / "curves.png", tmp_path / "curves.csv"
    assert main(["audio", str(tracks["clicks"]), "-o", str(png), "--fps", "24", "--csv", str(csv)]) == 0
    picture = load_image(png)
    assert picture.shape[1] == 1200 and picture.shape[0] > 300 and picture.std() > 10
    rows = csv.read_text().splitlines()
    assert rows[0] == "frame,seconds,rms,onset,beat,bass,mid,treble"
    assert len(rows) == 1 + 96
    beats = [int(r.split(",")[0]) for r in rows[1:] if float(r.split(",")[4]) == 1.0]
    assert beats == [round(c * 24) for c in CLICK_SECONDS]
    assert "96 frames at 24 fps, 7 beats" in capsys.readouterr().err


def test_audio_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    silent_video = tmp_path / "v.mp4"
    subprocess.run([FF, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:d=1",
                    "-pix_fmt", "yuv420p", str(silent_video)], check=True)
    out = tmp_path / "c.png"
    assert main(["audio", str(silent_video), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no audio stream" in err and err.count("\n") == 1 and not out.exists()
    assert main(["audio", str(tmp_path / "missing.wav"), "-o", str(out)]) == 2
    assert "missing.wav: audio file not found" in capsys.readouterr().err
