"""Behaviour of zoomdream.media on the fixture clips of tests/clips.py.

Frame counts that are real, truncated and damaged files, variable frame rates, rotation, alpha and
non-square pixels, soundtracks, atomic encodes, odd file names and ffmpeg that fails or is interrupted.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from zoomdream import fileio
from zoomdream.errors import ZoomdreamError
from zoomdream.media.probe import has_audio, probe, probe_output
from zoomdream.media.process import ffmpeg_version
from zoomdream.media.read import frame_count, iter_frames
from zoomdream.media.write import AudioSource, audio_source, encode

from clips import KINDS, make_clip
from conftest import ROOT, child_processes

PACKAGE = ROOT / "zoomdream"
H264_MEAN_TOL = 4.0  # mean |diff| (0..255) allowed for one lossy H.264 generation of testsrc


# --------------------------------------------------------------------------- helpers and fixtures


@pytest.fixture(scope="module")
def clip_files(clips) -> dict[str, Path]:
    """Every fixture clip of clip_files.py, by kind (made in the session's clip folder)."""
    return {kind: make_clip(kind, clips) for kind in KINDS}


@pytest.fixture(autouse=True)
def no_leaked_ffmpeg():
    yield
    assert child_processes() == [], "child processes left behind"


def _testsrc(n: int, w: int = 320, h: int = 240, rate: str = "10") -> np.ndarray:
    """Lossless reference frames straight from ffmpeg's testsrc: (n, h, w, 3) uint8 RGB."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi",
           "-i", f"testsrc=size={w}x{h}:rate={rate}", "-frames:v", str(n), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL).stdout
    return np.frombuffer(raw, np.uint8).reshape(n, h, w, 3)


def _mad(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _frames(info, **kw) -> np.ndarray:
    return np.stack(list(iter_frames(info, **kw)))


def _write_pngs(frames, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:06d}.png"), np.ascontiguousarray(frame[:, :, ::-1]))
    return folder


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- probe


# kind: (width, height, fps, n_frames, audio_codec, extra VideoInfo fields)
GOOD = {
    "basic": (320, 240, Fraction(10), 20, None, {}),
    "audio": (320, 240, Fraction(10), 20, "aac", {}),
    "moving": (96, 64, Fraction(12), 12, "aac", {}),
    "odd": (321, 241, Fraction(10), 10, None, {}),
    "vfr": (320, 240, Fraction(30), 60, "aac", {"vfr": True, "header_frames": 26}),
    "rot90": (240, 320, Fraction(10), 20, None, {"rotation": 90}),
    "one_frame": (320, 240, Fraction(10), 1, None, {}),
    "trunc_tail": (320, 240, Fraction(10), 5, None, {"truncated": True, "header_frames": 20}),
    "short_audio": (320, 240, Fraction(10), 5, "aac", {}),
    "av_mismatch": (320, 240, Fraction(10), 10, "aac", {"duration": 1.0}),
    "rgba": (320, 240, Fraction(10), 20, None, {}),
    "gray": (320, 240, Fraction(10), 20, None, {}),
    "10bit": (320, 240, Fraction(10), 20, None, {}),
    "pcm": (320, 240, Fraction(10), 20, "pcm_s16le", {"codec": "mpeg4"}),
    "ntsc": (320, 240, Fraction(30000, 1001), 18, None, {}),
    "sar2": (640, 240, Fraction(10), 20, None, {"sar": Fraction(2)}),
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_probe_reports_size_rate_count_audio(clip_files, kind):
    width, height, fps, n, audio_codec, extra = GOOD[kind]
    info = probe(clip_files[kind])
    assert (info.width, info.height, info.fps, info.n_frames) == (width, height, fps, n)
    assert (info.has_audio, info.audio_codec) == (audio_codec is not None, audio_codec)
    assert info.duration == pytest.approx(extra.get("duration", n / fps))
    assert info.path == os.path.abspath(clip_files[kind])
    expected = {"vfr": False, "rotation": 0, "truncated": False, **extra}
    expected.pop("duration", None)
    assert {k: getattr(info, k) for k in expected} == expected


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_iter_frames_yields_exactly_n_frames_upright_rgb(clip_files, kind):
    info = probe(clip_files[kind])
    count = 0
    for frame in iter_frames(info):
        assert frame.shape == (info.height, info.width, 3) and frame.dtype == np.uint8
        assert frame.flags.writeable
        count += 1
    assert count == info.n_frames == frame_count(info)


@pytest.mark.parametrize("kind, problem", [
    ("not_video", "not a video file"),
    ("empty", "empty file"),
    ("missing", "media file not found"),
    ("no_streams", "no video stream"),
    ("zero_decodable", "no decodable frames"),
    ("trunc_nomoov", "file is truncated (moov atom missing)"),
    ("audio_only", "no video stream (audio only)"),
    ("audio_only_mp4", "no video stream (audio only)"),
    ("text", "not a video file"),
    ("empty_dir", "no images found"),
])
def test_bad_inputs_give_one_line_error_naming_the_file(clip_files, tmp_path, kind, problem):
    if kind == "missing":
        path = tmp_path / "nothing here.mp4"
    elif kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("ffmpeg would open this as ANSI art\n")
    elif kind == "empty_dir":
        path = tmp_path / "no_frames"
        path.mkdir()
        (path / "readme.md").write_text("not an image")
    else:
        path = clip_files[kind]
    with pytest.raises(ZoomdreamError) as e:
        probe(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message


def test_truncated_file_reports_decodable_count_and_header_claim(clip_files):
    info = probe(clip_files["trunc_tail"])
    assert info.truncated and info.header_frames == 20 and info.n_frames == 5
    assert info.truncation_note == "decoded 5 of 20 frames (file truncated?)"
    assert len(list(iter_frames(info))) == 5


def test_clean_file_is_not_flagged(clip_files):
    info = probe(clip_files["av_mismatch"])  # container says 3 s (audio), video has 10 frames
    assert not info.truncated and info.truncation_note is None and info.notes == ()


# --------------------------------------------------------------------------- pixels


def test_frames_are_rgb_and_match_the_lossless_source(clip_files):
    ref = _testsrc(20)
    got = _frames(probe(clip_files["basic"]))
    assert _mad(got, ref) < H264_MEAN_TOL
    assert _mad(got[..., ::-1], ref) > 10 * H264_MEAN_TOL  # the channel order matters


def test_rot90_frames_are_upright_and_equal_np_rot90_of_basic(clip_files):
    info = probe(clip_files["rot90"])
    rotated = _frames(info)
    basic = _frames(probe(clip_files["basic"]))
    assert rotated.shape == (20, 320, 240, 3)
    assert _mad(rotated, np.rot90(basic, k=1, axes=(1, 2))) <= 1.0
    assert _mad(rotated, np.rot90(basic, k=-1, axes=(1, 2))) > 10  # and not the other way round


@pytest.mark.parametrize("kind", ["10bit", "gray"])
def test_other_pixel_formats_become_rgb_uint8(clip_files, kind):
    got = _frames(probe(clip_files[kind]))
    ref = _testsrc(20)
    if kind == "gray":
        assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 1], got[..., 2])
        ref = np.repeat(cv2.cvtColor(ref.reshape(-1, 320, 3), cv2.COLOR_RGB2GRAY).reshape(20, 240, 320, 1), 3, 3)
    assert _mad(got, ref) < H264_MEAN_TOL


def test_alpha_is_composited_onto_black(clip_files):
    info = probe(clip_files["rgba"])  # alpha = 128 everywhere
    assert any("alpha" in note for note in info.notes)
    got = _frames(info).astype(np.float32)
    expected = _testsrc(20).astype(np.float32) * (128 / 255)
    assert np.abs(got - expected).max() <= 1.0


def test_non_square_pixels_are_scaled_not_squeezed(clip_files):
    info = probe(clip_files["sar2"])
    frame = next(iter(_frames(info, max_frames=1)))
    ref = cv2.resize(_testsrc(1)[0], (640, 240), interpolation=cv2.INTER_LINEAR)
    assert frame.shape == (240, 640, 3) and _mad(frame, ref) < 2 * H264_MEAN_TOL


def test_moving_clip_pans_three_pixels_per_frame(clip_files):
    gray = _frames(probe(clip_files["moving"])).astype(np.float32).mean(axis=3)  # (12, 64, 96)
    shifts = [cv2.phaseCorrelate(gray[i], gray[i + 1])[0] for i in range(11)]
    assert all(abs(dx + 3) < 0.5 and abs(dy) < 0.5 for dx, dy in shifts)


def test_max_size_keeps_aspect_and_uses_inter_area(clip_files):
    info = probe(clip_files["basic"])
    small = _frames(info, max_size=100, max_frames=3)
    full = _frames(info, max_frames=3)
    assert small.shape == (3, 75, 100, 3)
    assert np.array_equal(small[1], cv2.resize(full[1], (100, 75), interpolation=cv2.INTER_AREA))
    odd = probe(clip_files["odd"])
    assert _frames(odd, max_size=160, max_frames=1).shape == (1, 120, 160, 3)  # 321x241 -> 160x120
    assert _frames(odd, max_size=1000, max_frames=1).shape == (1, 241, 321, 3)  # never upscaled


# --------------------------------------------------------------------------- counts, seeking, VFR


@pytest.mark.parametrize("n", [1, 2, 17])
def test_max_frames_gives_exactly_n(clip_files, n):
    info = probe(clip_files["basic"])
    assert frame_count(info, max_frames=n) == n
    assert len(_frames(info, max_frames=n)) == n


@pytest.mark.parametrize("kind, start, end, first, count", [
    ("basic", 0.55, 1.0, 5, 5),  # frame 5 is on screen at 0.55 s; 0.55 + 4/10 < 1.0 <= 0.55 + 5/10
    ("basic", 0.3, 0.9, 3, 6),
    ("basic", 1.0 / 3, None, 3, 17),
    ("basic", 1.9, None, 19, 1),
    ("rot90", 0.7, 1.0, 7, 3),
    ("vfr", 1.0, None, 30, 30),
    ("vfr", 0.5, 1.5, 15, 30),
])
def test_start_end_are_frame_accurate(clip_files, kind, start, end, first, count):
    info = probe(clip_files[kind])
    full = _frames(info)
    part = _frames(info, start=start, end=end)
    assert frame_count(info, start=start, end=end) == len(part) == count
    assert np.array_equal(part, full[first:first + count])


@pytest.mark.parametrize("kind, start, skip", [("basic", 0.0, 7), ("basic", 0.3, 16), ("ntsc", 0.1, 5),
                                               ("vfr", 0.5, 20), ("basic", 0.0, 0)])
def test_skip_seeks_to_the_same_frames(clip_files, kind, start, skip):
    info = probe(clip_files[kind])
    full = _frames(info, start=start)
    part = _frames(info, start=start, skip=skip)
    assert len(part) == len(full) - skip and np.array_equal(part, full[skip:])
    with pytest.raises(ZoomdreamError, match="cannot skip"):
        iter_frames(info, start=start, skip=len(full) + 1)


def test_bad_ranges_are_user_errors(clip_files):
    info = probe(clip_files["basic"])
    for kwargs in ({"start": 2.0}, {"start": -1.0}, {"start": 1.0, "end": 0.5}, {"max_frames": 0}):
        with pytest.raises(ZoomdreamError, match=re.escape(info.path)):
            iter_frames(info, **kwargs)  # raised on the call, before any ffmpeg starts


def test_vfr_is_resampled_to_declared_cfr_keeping_time(clip_files):
    info = probe(clip_files["vfr"])  # 26 frames: 10 at 30 fps, then 16 at 10 fps, over 2.0 s
    assert info.vfr and info.fps == 30 and info.n_frames == 60
    assert "VFR input resampled to 30 fps (60 frames)" in info.notes
    frames = list(iter_frames(info))
    changes = [i for i in range(1, 60) if not np.array_equal(frames[i], frames[i - 1])]
    # every source frame appears exactly once in order, held for as long as it was on screen
    assert changes == list(range(1, 10)) + list(range(12, 60, 3))


def test_vfr_encode_keeps_duration_and_audio_sync(clip_files, tmp_path):
    info = probe(clip_files["vfr"])
    frames = _write_pngs(iter_frames(info), tmp_path / "frames")
    out = tmp_path / "vfr_out.mp4"
    encode(frames, "%06d.png", info.n_frames, out, fps=info.fps,
                 audio=AudioSource(info.path, 0.0, info.duration))
    got = probe_output(out)
    assert got.frames == 60 and got.fps == 30
    assert abs(got.seconds - 2.0) <= 1 / 30
    assert got.has_audio and abs(got.audio_seconds - got.seconds) <= 0.05


# --------------------------------------------------------------------------- generator hygiene


def test_closing_a_half_read_generator_kills_ffmpeg(clip_files):
    gen = iter_frames(probe(clip_files["basic"]))
    next(gen)
    next(gen)
    assert any("ffmpeg" in c for c in child_processes())  # the check below can see a live reader
    gen.close()
    assert child_processes() == []


def test_breaking_out_of_a_loop_and_dropping_the_generator_kills_ffmpeg(clip_files):
    for i, _ in enumerate(iter_frames(probe(clip_files["audio"]))):
        if i == 3:
            break
    assert child_processes() == []


def test_unstarted_generator_starts_no_process(clip_files):
    gen = iter_frames(probe(clip_files["basic"]))
    assert child_processes() == []
    gen.close()


# --------------------------------------------------------------------------- encode


@pytest.fixture(scope="module")
def basic_frames(clip_files, tmp_path_factory) -> Path:
    return _write_pngs(iter_frames(probe(clip_files["basic"])), tmp_path_factory.mktemp("basic_frames"))


@pytest.mark.parametrize("n", [1, 2, 17])
def test_encode_round_trips_count_and_ntsc_rate(basic_frames, tmp_path, n):
    out = tmp_path / "out.mp4"
    encode(basic_frames, "%06d.png", n, out, fps=Fraction(30000, 1001))
    info = probe(out)
    assert (info.n_frames, info.fps, info.has_audio) == (n, Fraction(30000, 1001), False)
    assert (info.width, info.height) == (320, 240)
    src = np.stack([cv2.imread(str(basic_frames / f"{i:06d}.png"))[:, :, ::-1] for i in range(n)])
    assert _mad(_frames(info), src) < H264_MEAN_TOL


def test_source_rate_is_kept_exactly(clip_files, tmp_path):
    info = probe(clip_files["ntsc"])
    frames = _write_pngs(iter_frames(info), tmp_path / "f")
    encode(frames, "%06d.png", info.n_frames, tmp_path / "o.mp4", fps=info.fps)
    assert probe(tmp_path / "o.mp4").fps == Fraction(30000, 1001)


@pytest.mark.parametrize("source, codec", [("audio", "aac"), ("pcm", "aac"), ("moving", "aac"), ("basic", None)])
def test_output_has_audio_iff_source_has_it(clip_files, basic_frames, tmp_path, source, codec):
    out = tmp_path / "out.mp4"
    encode(basic_frames, "%06d.png", 20, out, fps=Fraction(10),
                 audio=AudioSource(str(clip_files[source]), 0.0, 2.0))
    got = probe_output(out)
    assert got.frames == 20 and got.has_audio == (codec is not None) and got.audio_codec == codec
    if codec:
        assert got.audio_seconds <= got.seconds + 0.05


def test_short_audio_never_shortens_the_video(clip_files, basic_frames, tmp_path):
    out = tmp_path / "out.mp4"
    encode(basic_frames, "%06d.png", 20, out, fps=Fraction(10),
                 audio=AudioSource(str(clip_files["short_audio"]), 0.0, 2.0))
    got = probe_output(out)
    assert got.frames == 20 and got.seconds == pytest.approx(2.0)
    assert got.has_audio and got.audio_seconds <= 0.55


def test_long_audio_is_trimmed_to_the_video(clip_files, basic_frames, tmp_path):
    out = tmp_path / "out.mp4"
    encode(basic_frames, "%06d.png", 20, out, fps=Fraction(10),
                 audio=AudioSource(str(clip_files["av_mismatch"]), 0.0, 5.0))  # 3 s of audio offered
    got = probe_output(out)
    assert got.frames == 20 and got.audio_seconds <= 2.05


def test_odd_size_is_padded_for_mp4_and_kept_for_gif_and_png(clip_files, tmp_path):
    info = probe(clip_files["odd"])
    frames = _write_pngs(iter_frames(info), tmp_path / "f")
    encode(frames, "%06d.png", 10, tmp_path / "o.mp4", fps=info.fps)
    encode(frames, "%06d.png", 10, tmp_path / "o.gif", fps=info.fps)
    encode(frames, "%06d.png", 10, tmp_path / "o_frames", fps=info.fps)
    mp4, gif = probe_output(tmp_path / "o.mp4"), probe_output(tmp_path / "o.gif")
    assert (mp4.width, mp4.height, mp4.frames) == (322, 242, 10)  # 1 px pad, never 336x256
    assert (gif.width, gif.height, gif.frames, gif.codec) == (321, 241, 10, "gif")
    assert gif.seconds == pytest.approx(1.0)  # 10 fps -> 10 cs per frame
    assert cv2.imread(str(tmp_path / "o_frames" / "000009.png")).shape == (241, 321, 3)
    # the pad is on the right/bottom edge only: the picture itself is where it was
    padded = _frames(probe(tmp_path / "o.mp4"), max_frames=1)[0]  # (242, 322, 3)
    src = cv2.imread(str(frames / "000000.png"))[:, :, ::-1]  # (241, 321, 3); 4:4:4 -> 4:2:0 blurs colour edges
    assert _mad(padded[:241, :321], src) < 2 * H264_MEAN_TOL < _mad(padded[1:, 1:], src)


def test_rotated_input_gives_output_without_display_matrix(clip_files, tmp_path):
    info = probe(clip_files["rot90"])
    frames = _write_pngs(iter_frames(info, max_frames=4), tmp_path / "f")
    encode(frames, "%06d.png", 4, tmp_path / "o.mp4", fps=info.fps)
    got = probe_output(tmp_path / "o.mp4")
    assert (got.width, got.height, got.rotation) == (240, 320, 0)
    assert probe_output(clip_files["rot90"]).rotation == 90  # and the probe does see one when present


def test_png_folder_output_is_exact_copies(basic_frames, tmp_path):
    out = tmp_path / "dream_frames"
    encode(basic_frames, "%06d.png", 3, str(out) + "/", fps=Fraction(10))
    assert sorted(os.listdir(out)) == [fileio.FOLDER_MARKER, "000000.png", "000001.png", "000002.png"]
    assert _sha(out / "000002.png") == _sha(basic_frames / "000002.png")
    encode(basic_frames, "%06d.png", 2, out, fps=Fraction(10))  # its own folder is replaced whole
    assert sorted(os.listdir(out)) == [fileio.FOLDER_MARKER, "000000.png", "000001.png"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_encode_is_deterministic(clip_files, basic_frames, tmp_path, fmt):
    audio = AudioSource(str(clip_files["pcm"]), 0.0, 2.0) if fmt == "mp4" else None
    for name in ("a", "b"):
        encode(basic_frames, "%06d.png", 20, tmp_path / f"{name}.{fmt}", fps=Fraction(10), audio=audio)
    assert _sha(tmp_path / f"a.{fmt}") == _sha(tmp_path / f"b.{fmt}")


def test_unsupported_format_and_missing_frame_are_user_errors(basic_frames, tmp_path):
    unsupported = "out.avi: unsupported output format '.avi' (use .mp4, .gif or a folder)"
    with pytest.raises(ZoomdreamError, match=re.escape(unsupported)):
        encode(basic_frames, "%06d.png", 2, tmp_path / "out.avi", fps=Fraction(10))
    with pytest.raises(ZoomdreamError, match=r"000020\.png: frame 20 of 21 is missing"):
        encode(basic_frames, "%06d.png", 21, tmp_path / "out.mp4", fps=Fraction(10))
    with pytest.raises(ZoomdreamError, match="does not exist|cannot write"):
        encode(basic_frames, "%06d.png", 2, tmp_path / "no_such_dir" / "out.mp4", fps=Fraction(10))
    assert os.listdir(tmp_path) == []


def _fake_ffmpeg(tmp_path: Path, body: str) -> str:
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n{body}\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_ffmpeg_failure_is_reported_and_leaves_nothing(basic_frames, tmp_path, monkeypatch, fmt):
    fake = _fake_ffmpeg(tmp_path, "echo 'Error closing file: No space left on device' >&2; exit 1")
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: fake)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ZoomdreamError) as e:
        encode(basic_frames, "%06d.png", 5, out_dir / f"dream.{fmt}", fps=Fraction(10))
    assert "ffmpeg failed (exit 1)" in str(e.value) and "No space left on device" in str(e.value)
    assert str(e.value).startswith(str(out_dir / f"dream.{fmt}"))
    assert os.listdir(out_dir) == []


def test_interrupt_during_encode_kills_ffmpeg_and_removes_temp(basic_frames, tmp_path, monkeypatch):
    fake = _fake_ffmpeg(tmp_path, "exec sleep 30")  # an ffmpeg that never finishes
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: fake)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            encode(basic_frames, "%06d.png", 5, out_dir / "dream.mp4", fps=Fraction(10))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert os.listdir(out_dir) == []
    assert child_processes() == []


def test_failed_verification_leaves_no_output(basic_frames, tmp_path, monkeypatch):
    # An ffmpeg that exits 0 but writes 1 frame where it was asked for more (rebuilds its arguments).
    real = imageio_ffmpeg.get_ffmpeg_exe()
    rewrite = 'prev=\nfor a do shift; [ "$prev" = -frames:v ] && a=1; set -- "$@" "$a"; prev=$a; done\n'
    fake = _fake_ffmpeg(tmp_path, rewrite + f'exec "{real}" "$@"')
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: fake)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ZoomdreamError, match="ffmpeg wrote 1 frames, expected 3"):
        encode(basic_frames, "%06d.png", 3, out_dir / "o.mp4", fps=Fraction(10))
    assert os.listdir(out_dir) == []


# --------------------------------------------------------------------------- image folders


def test_image_folder_is_ordered_numerically_past_999(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    n = 1200
    for i in range(n):  # unpadded names: lexicographic order would put frame1000 before frame2
        img = np.zeros((4, 4, 3), np.uint8)
        img[..., 2], img[..., 1] = i % 256, i // 256  # BGR on disk: R = low byte, G = high byte
        cv2.imwrite(str(folder / f"frame{i}.png"), img)
    info = probe(folder, fps=Fraction(24))
    assert (info.n_frames, info.fps, info.width, info.height, info.has_audio) == (n, 24, 4, 4, False)
    assert info.duration == pytest.approx(n / 24)
    order = [int(f[0, 0, 0]) + 256 * int(f[0, 0, 1]) for f in iter_frames(info)]
    assert order == list(range(n))
    assert [int(f[0, 0, 0]) for f in iter_frames(info, start=1.0, max_frames=2)] == [24, 25]


def test_image_folder_converts_gray_alpha_and_16_bit(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "001.png"), np.full((6, 8, 3), (10, 20, 30), np.uint8))  # BGR
    cv2.imwrite(str(folder / "002.png"), np.full((6, 8), 77, np.uint8))
    cv2.imwrite(str(folder / "003.png"), np.full((6, 8, 4), (200, 200, 200, 128), np.uint8))
    cv2.imwrite(str(folder / "004.png"), np.full((6, 8, 3), 0x8000, np.uint16))
    cv2.imwrite(str(folder / "005.jpg"), np.full((6, 8, 3), 128, np.uint8))
    frames = list(iter_frames(probe(folder)))
    assert [f.shape for f in frames] == [(6, 8, 3)] * 5 and all(f.dtype == np.uint8 for f in frames)
    assert frames[0][0, 0].tolist() == [30, 20, 10]  # RGB
    assert frames[1][0, 0].tolist() == [77, 77, 77]
    assert frames[2][0, 0].tolist() == [100, 100, 100]  # 200 at alpha 128 over black
    assert frames[3][0, 0].tolist() == [128, 128, 128]  # 16-bit scaled, not clipped


def test_image_folder_size_mismatch_names_the_file(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(folder / "2.png"), np.zeros((5, 4, 3), np.uint8))
    info = probe(folder)
    with pytest.raises(ZoomdreamError, match=re.escape(str(folder / "2.png")) + ": image is 4x5, expected 4x4"):
        list(iter_frames(info))


# --------------------------------------------------------------------------- paths, helpers, hygiene


@pytest.mark.parametrize("name", ["-dash.mp4", "file:odd.mp4", "uni cödé 動画 .mp4", "time 12:30.mp4", "50%.mp4"])
def test_any_legal_file_name_works_in_and_out(clip_files, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)  # relative names are the hard case (options, protocols)
    (tmp_path / name).write_bytes(clip_files["audio"].read_bytes())
    info = probe(name)
    assert info.n_frames == 20 and has_audio(name)
    frames = _write_pngs(iter_frames(info, max_frames=3), tmp_path / "50% frames")
    out = "-" + name.replace(".mp4", "_out.mp4").lstrip("-")
    encode(frames, "%06d.png", 3, out, fps=info.fps, audio=AudioSource(name, 0.0, 0.3))
    got = probe_output(out)
    assert got.frames == 3 and got.has_audio


def test_audio_source_matches_the_frames_it_goes_with(clip_files):
    info = probe(clip_files["audio"])
    assert audio_source(info, start=0.5, max_frames=5) == AudioSource(info.path, 0.5, 0.5, "aac", 44100)
    assert audio_source(info, start=1.0) == AudioSource(info.path, 1.0, 1.0, info.audio_codec, info.audio_rate)
    assert audio_source(probe(clip_files["basic"])) is None


def test_has_audio(clip_files):
    assert has_audio(clip_files["audio"]) and has_audio(clip_files["audio_only"]) and has_audio(clip_files["pcm"])
    assert not has_audio(clip_files["basic"])
    with pytest.raises(ZoomdreamError, match="not_video.mp4: not a media file"):
        has_audio(clip_files["not_video"])


def test_ffmpeg_version_is_reported():
    assert re.match(r"n?\d+\.\d+", ffmpeg_version())


def test_no_removed_sync_flag_in_the_package():
    flag = "-" + "vsync"  # ffmpeg 9 removed it; -fps_mode replaces it
    offenders = [p.name for p in PACKAGE.rglob("*.py") if flag in p.read_text(encoding="utf-8")]
    assert offenders == []


def _record_ffmpeg_commands(monkeypatch) -> list[list[str]]:
    """Every command line zoomdream starts from now on (the processes still run)."""
    commands, real = [], subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: commands.append(list(cmd)) or real(cmd, **kw))
    return commands


def test_probe_counts_clean_files_without_decoding_them(clip_files, monkeypatch):
    commands = _record_ffmpeg_commands(monkeypatch)

    def decodes() -> int:  # full decodes, to ffmpeg's null muxer, among the commands so far
        return sum(1 for cmd in commands if any(a == "-f" and b == "null" for a, b in zip(cmd, cmd[1:])))

    for kind in ("basic", "audio", "odd", "rot90", "pcm", "av_mismatch"):
        probe(clip_files[kind])
    assert commands and decodes() == 0
    probe(clip_files["trunc_tail"])
    assert decodes() == 1  # damaged: counted by a real decode
    assert math.isclose(probe(clip_files["vfr"]).duration, 2.0)


def test_encode_takes_the_audio_codec_from_the_probe(clip_files, basic_frames, tmp_path, monkeypatch):
    info = probe(clip_files["audio"])
    commands = _record_ffmpeg_commands(monkeypatch)
    encode(basic_frames, "%06d.png", 5, tmp_path / "o.mp4", fps=info.fps,
                 audio=audio_source(info, max_frames=5))
    got = probe_output(tmp_path / "o.mp4")
    assert got.has_audio and got.audio_codec == info.audio_codec == "aac"  # copied, as probe said
    header_reads = [cmd for cmd in commands if cmd[-2:] == ["-i", "file:" + info.path]]  # no outputs: a scan
    assert header_reads == [] and len(commands) == 3  # the encode, its verification, the probe_output above
