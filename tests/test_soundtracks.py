"""Soundtracks: every track muxes (re-encoded when the container cannot hold it as it is), a track
without samples is no audio, and the analysis and the muxer agree on time zero whatever the
streams' start times. Clips and sounds are made on the fly with the bundled ffmpeg."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from zoomdream import audio
from zoomdream.cli import main
from zoomdream.media.images import save_image
from zoomdream.media.probe import probe, probe_audio, probe_output
from zoomdream.media.read import decode_audio
from zoomdream.media.write import AudioSource, audio_source, encode
from zoomdream.render import frameloop

from conftest import FFMPEG as FF
from conftest import clicks_expr, lavfi_audio

ZOOM_MOTION_ONLY = ["--iterations", "0", "--frames", "6", "--fps", "12", "--size", "48x32", "-q"]
FPS = 24


def ff(*args):
    subprocess.run([FF, "-nostdin", "-y", "-loglevel", "error", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """72 tiny frames (3 s at 24 fps) to encode."""
    folder = tmp_path_factory.mktemp("frames")
    for i in range(72):
        save_image(folder / f"{i:06d}.png", np.full((16, 16, 3), 3 * i, np.uint8))
    return folder


@pytest.mark.parametrize("rate", [8000, 11025, 12000])
def test_low_rate_mp3_is_reencoded_into_mp4(tmp_path, frames, rate):
    """The MP4 muxer refuses MPEG-2.5 MP3: as a separate track and as a clip's own track, it is re-encoded."""
    song = tmp_path / "song.mp3"
    ff("-f", "lavfi", "-i", f"sine=d=1:r={rate}", "-c:a", "libmp3lame", song)
    out = tmp_path / "a.mp4"
    encode(frames, "%06d.png", 12, out, fps=FPS, audio=AudioSource(str(song), 0.0, 0.5))
    got = probe_output(out)
    assert got.has_audio and got.audio_codec == "aac" and got.frames == 12
    clip = tmp_path / "clip.mkv"  # a clip whose own track is such an MP3
    ff("-f", "lavfi", "-i", f"testsrc=size=32x24:rate={FPS}:d=1", "-i", song, "-c:v", "libx264",
       "-pix_fmt", "yuv420p", "-c:a", "copy", clip)
    info = probe(clip)
    assert (info.audio_codec, info.audio_rate) == ("mp3", rate)
    encode(frames, "%06d.png", 12, tmp_path / "b.mp4", fps=FPS, audio=audio_source(info, max_frames=12))
    assert probe_output(tmp_path / "b.mp4").has_audio


def test_mp3_at_a_standard_rate_is_still_copied(tmp_path, frames):
    song = tmp_path / "song.mp3"
    ff("-f", "lavfi", "-i", "sine=d=1:r=22050", "-c:a", "libmp3lame", song)
    encode(frames, "%06d.png", 12, tmp_path / "a.mp4", fps=FPS, audio=AudioSource(str(song), 0.0, 0.5))
    assert probe_output(tmp_path / "a.mp4").audio_codec == "mp3"


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    save_image(path, np.full((32, 48, 3), 100, np.uint8))
    return path


def test_a_soundtrack_is_probed_once_until_it_changes(tmp_path):
    song = tmp_path / "song.wav"
    ff("-f", "lavfi", "-i", "sine=d=0.5:r=22050", song)
    first = probe_audio(song)
    assert first.rate == 22050
    assert probe_audio(str(song)) is first  # the same answer, no second ffmpeg run
    ff("-f", "lavfi", "-i", "sine=d=0.7:r=16000", song)  # the file is replaced: asked again
    assert probe_audio(song).rate == 16000


def test_zoom_with_a_low_rate_mp3_renders_with_sound(tmp_path, photo):
    mp3 = tmp_path / "low.mp3"
    ff("-f", "lavfi", "-i", "sine=d=2:r=8000", "-c:a", "libmp3lame", mp3)
    assert main(["zoom", str(photo), "-o", str(tmp_path / "a.mp4"), "--audio", str(mp3), *ZOOM_MOTION_ONLY]) == 0
    assert probe_output(tmp_path / "a.mp4").has_audio


def test_an_empty_wav_counts_as_no_audio(tmp_path, photo, capsys):
    """A valid WAV without samples: a note, and a silent output (exit 0)."""
    wav = tmp_path / "empty.wav"
    ff("-f", "lavfi", "-i", "sine=d=1", "-t", "0", wav)
    assert main(["zoom", str(photo), "-o", str(tmp_path / "b.mp4"), "--audio", str(wav), *ZOOM_MOTION_ONLY]) == 0
    assert "holds no samples" in capsys.readouterr().err
    got = probe_output(tmp_path / "b.mp4")
    assert got.frames == 6 and not got.has_audio


def _click_time(path) -> float:
    """Seconds from the container start to the loudest sample of ``path``'s first audio stream."""
    y = decode_audio(path, rate=audio.ANALYSIS_RATE)
    return float(np.argmax(np.abs(y)) / audio.ANALYSIS_RATE)


@pytest.mark.parametrize("shift", ["audio later", "audio earlier"])
def test_analysis_and_output_agree_on_time_zero(tmp_path, frames, shift):
    """A click drives the frame on which it is heard in the output, whichever stream starts first."""
    click = lavfi_audio(tmp_path / "click.wav", clicks_expr([1.0]), 3.0)
    clip = tmp_path / "clip.mp4"
    video = ["-f", "lavfi", "-i", f"testsrc=size=32x24:rate={FPS}:d=3"]
    sound = ["-i", click]
    if shift == "audio later":
        inputs = [*video, "-itsoffset", "0.5", *sound]
    else:
        inputs = ["-itsoffset", "0.5", *video, *sound]
    ff(*inputs, "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", clip)
    info = probe(clip)
    # the analysis, as a render's audio-reactive schedules see it
    path, offset = frameloop.video_track(info, start=0.0)
    onset = audio.frame_features(path, fps=FPS, n=60, offset=offset)["onset"]
    driven = int(np.argmax(onset))
    # the output, as it is heard
    out = tmp_path / "out.mp4"
    encode(frames, "%06d.png", 60, out, fps=info.fps, audio=audio_source(info, max_frames=60))
    heard = _click_time(out) * FPS
    expected = 36 if shift == "audio later" else 12  # 1.0 s into the track, 0.5 s after or before the video
    assert abs(driven - expected) <= 1 and abs(heard - expected) <= 1
    assert abs(driven - heard) <= 1
    # the features command numbers frames from the video's first frame too
    csv = tmp_path / "f.csv"
    assert main(["audio", str(clip), "-o", str(tmp_path / "f.png"), "--fps", str(FPS), "--csv", str(csv)]) == 0
    rows = [r.split(",") for r in csv.read_text().splitlines()[1:]]
    assert abs(int(max(rows, key=lambda r: float(r[3]))[0]) - expected) <= 1


def test_an_intact_mkv_whose_audio_outlasts_its_video_is_not_truncated(tmp_path):
    clip = tmp_path / "long_audio.mkv"
    ff("-f", "lavfi", "-i", f"testsrc=size=32x24:rate={FPS}:d=1", "-f", "lavfi", "-i", "sine=d=1.5",
       "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", clip)
    info = probe(clip)
    assert info.n_frames == FPS and not info.truncated
    assert not any("truncated" in note for note in info.notes), info.notes


# ---------------------------------------------------------------- bounded memory
def test_a_long_track_is_analysed_in_blocks_with_the_features_of_the_whole(tmp_path, monkeypatch):
    """Blocks of 1 s (a knob; 20 s by default) give the whole track's loudness, bands, onsets and beats."""
    clicks = [0.5 * i for i in range(1, 12)]
    track = lavfi_audio(tmp_path / "t.wav", clicks_expr(clicks) + "+0.2*sin(2*PI*(60*t+200*t*t))", 6.0)
    whole = audio.frame_features(track, fps=FPS, n=6 * FPS)
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 1.0)
    copy = tmp_path / "copy.wav"  # another file: no cache hit
    copy.write_bytes(track.read_bytes())
    blocks = audio.frame_features(copy, fps=FPS, n=6 * FPS)
    for name in ("rms", "bass", "mid", "treble"):
        np.testing.assert_allclose(blocks[name], whole[name], rtol=0, atol=1e-9, err_msg=name)
    peaks = [round(c * FPS) for c in clicks]
    assert [int(i) for i in np.flatnonzero(blocks["onset"] > 0.5)] == peaks
    np.testing.assert_array_equal(blocks["beat"] == 1.0, whole["beat"] == 1.0)


def test_the_analysis_budget_is_checked_before_anything_is_created(tmp_path, monkeypatch, capsys):
    from test_safety import assert_intact, refused, snapshot

    folder = tmp_path / "home"
    folder.mkdir()
    photo = folder / "photo.png"
    save_image(photo, np.full((32, 48, 3), 100, np.uint8))
    song = lavfi_audio(folder / "song.wav", clicks_expr([0.25, 0.75]), 2.0)
    cmd = ["zoom", str(photo), "-o", str(folder / "z.mp4"), "--audio", str(song), "--zoom", "0:(1.01 + 0.02*rms)",
           *ZOOM_MOTION_ONLY]
    monkeypatch.setattr(audio, "ANALYSIS_BYTES_PER_HOP", 1 << 40)  # as if the track were years long
    before = snapshot(folder)
    err = refused(capsys, main(cmd))
    assert "of audio needs about" in err and "song.wav" in err
    assert_intact(before)
    assert snapshot(folder).keys() == before.keys()
    monkeypatch.undo()
    assert main(cmd) == 0 and probe_output(folder / "z.mp4").has_audio


# ---------------------------------------------------------------- Ctrl-C wherever it lands
def test_a_ctrl_c_swallowed_by_a_library_is_still_noticed(tmp_path, monkeypatch, capsys):
    """A KeyboardInterrupt a foreign callback swallows: the command still stops (130), writing nothing."""
    import os
    import signal

    song = lavfi_audio(tmp_path / "song.wav", clicks_expr([0.25, 0.75]), 1.0)
    real = probe_audio

    def swallowing(path):
        try:
            signal.raise_signal(signal.SIGINT)  # to this thread, like a Ctrl-C in the terminal
            for _ in range(1000):  # the handler runs between two bytecodes of this loop
                pass
        except KeyboardInterrupt:
            pass  # what a ctypes callback does with it
        return real(path)

    monkeypatch.setattr("zoomdream.media.probe.probe_audio", swallowing)
    before = sorted(os.listdir(tmp_path))
    code = main(["audio", str(song), "-o", str(tmp_path / "c.png"), "--csv", str(tmp_path / "c.csv")])
    assert code == 130, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before


def _analysing(pid: int, track) -> bool:
    """True once a process below ``pid`` decodes or analyses ``track``."""
    import os

    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if str(track) in cmd and ("analysis_child" in cmd or "f32le" in cmd):
            return True
    return False


def test_sigint_during_audio_analysis_stops_the_command_and_writes_nothing(tmp_path):
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    track = tmp_path / "long.wav"  # 40 s: longer than one analysis block, so it is analysed in a child process
    ff("-f", "lavfi", "-i", "sine=frequency=220:beep_factor=4:sample_rate=22050:duration=40", track)
    before = sorted(os.listdir(tmp_path))
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "zoomdream", "audio", str(track), "-o", str(tmp_path / "c.png"),
                             "--csv", str(tmp_path / "c.csv")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # up to 120 s on a loaded machine; the analysis itself takes several seconds
            if _analysing(proc.pid, track) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the command ended before its analysis started"
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert sorted(os.listdir(tmp_path)) == before
    time.sleep(0.2)
    assert not _analysing(proc.pid, track)  # the analysis child and its ffmpeg are gone too
