"""The frame loop behind `video` and `zoom`: counts, rates, audio, resume, interrupts, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from zoomdream import colour, motion, render_video, render_zoom
from zoomdream import settings as S
from zoomdream.cli import main
from zoomdream.errors import Interrupted, ZoomdreamError
from zoomdream.media.images import load_png_fast, save_image
from zoomdream.media.probe import probe, probe_output
from zoomdream.media.read import iter_frames
from zoomdream.media.write import AudioSource, Mp4Stream, audio_source, encode
from zoomdream.render.framecache import FRAME_PATTERN
from zoomdream.settings import presets

from clips import make_clip
from conftest import FAST_DREAM, FAST_FLAGS, child_processes

# Tiny dreams (conftest): the loop, not the look, is under test here.
FAST = FAST_FLAGS
VIDEO_FAST = [*FAST, "--iterations-per-frame", "1", "-q"]
# The same settings for the Python API (FAST + --fps 12 --frames 6 for a zoom).
FAST_SETTINGS = FAST_DREAM
ZOOM_SETTINGS = {**FAST_SETTINGS, "zoom.fps": 12, "zoom.frames": 6}
VIDEO_SETTINGS = {**FAST_SETTINGS, "video.iterations_per_frame": 1}


def _stop_after(k: int):
    """An ``on_frame`` callback: Ctrl-C once this run has made k new frames."""
    def on_frame(done: int) -> None:
        if done >= k:
            raise KeyboardInterrupt
    return on_frame


def _interrupted_zoom(photo, out, k: int, **kw) -> Interrupted:
    settings = S.merge(presets.load_preset("default"), ZOOM_SETTINGS)
    with pytest.raises(Interrupted) as e:
        render_zoom(photo, out, settings=settings, quiet=True, on_frame=_stop_after(k), **kw)
    return e.value


def _interrupted_video(src, out, k: int, **kw) -> Interrupted:
    settings = S.merge(presets.load_preset("default"), VIDEO_SETTINGS)
    with pytest.raises(Interrupted) as e:
        render_video(src, out, settings=settings, quiet=True, on_frame=_stop_after(k), **kw)
    return e.value


def _work_frames(out: Path) -> list[Path]:
    return sorted((out.parent / f".{out.name}.zoomdream-work" / "frames").glob("*.png"))


# ---------------------------------------------------------------- zoom
def _zoom(photo, out, *extra):
    return main(["zoom", str(photo), "-o", str(out), *FAST, "--fps", "12", "--frames", "6", "-q", *extra])


def test_zoom_frame_count_fps_and_size(tmp_path, small_photo):
    out = tmp_path / "zoom.mp4"
    assert _zoom(small_photo, out) == 0
    p = probe_output(out)
    assert (p.frames, p.fps, p.width, p.height, p.has_audio) == (6, 12, 64, 48, False)
    assert (tmp_path / "zoom.mp4.yaml").exists()
    assert not list(tmp_path.glob(".*"))  # work folder removed, no temps


def test_zoom_frames_really_move(tmp_path, small_photo):
    out = tmp_path / "zoom.mp4"
    # Dream only frame 0; later frames are pure motion, so each must equal the previous one moved once.
    assert _zoom(small_photo, out, "--dream-every", "100", "--colour-lock", "0", "--zoom", "1.1", "--rotate", "2",
                 "--keep-frames") == 0
    frames = [load_png_fast(p) for p in _work_frames(out)]
    assert len(frames) == 6
    m = motion.frame_matrix(motion.Motion(zoom=1.1, rotate=2.0), fps=12, size=(64, 48))
    for a, b in zip(frames, frames[1:]):
        expected = motion.warp_affine(a, m)
        centre = (slice(12, 36), slice(16, 48))
        assert np.abs(b[centre].astype(int) - expected[centre].astype(int)).max() <= 1
        assert np.abs(b[centre].astype(int) - a[centre].astype(int)).mean() > 2  # and it did move


def test_zoom_colour_lock_holds_statistics(tmp_path, small_photo, photo):
    out = tmp_path / "zoom"
    assert main(["zoom", str(small_photo), "-o", str(out), *FAST, "--step", "0.05", "--frames", "8",
                 "--colour-lock", "1", "-q"]) == 0
    frames = sorted(out.glob("*.png"))
    assert len(frames) == 8
    ref_mean, ref_std = colour.colour_stats(photo)
    mean, std = colour.colour_stats(load_png_fast(frames[-1]))
    assert np.all(np.abs(mean - ref_mean) <= 0.1 * ref_mean + 1)
    assert np.all(np.abs(std - ref_std) <= 0.1 * ref_std + 1)


def test_zoom_resume_gives_identical_frames(tmp_path, small_photo, capsys):
    full, part = tmp_path / "full.mp4", tmp_path / "part.mp4"
    assert _zoom(small_photo, full, "--keep-frames") == 0
    stop = _interrupted_zoom(small_photo, part, 3, keep_frames=True)
    assert stop.code == 130 and "interrupted after frame 3/6" in str(stop)
    assert not part.exists() and len(_work_frames(part)) == 3
    assert _zoom(small_photo, part, "--keep-frames") == 0
    a = [p.read_bytes() for p in _work_frames(full)]
    b = [p.read_bytes() for p in _work_frames(part)]
    assert len(a) == 6 and a == b
    assert full.read_bytes() == part.read_bytes()


def test_zoom_pingpong_gif_and_audio(tmp_path, small_photo, clips):
    gif = tmp_path / "loop.gif"
    assert _zoom(small_photo, gif, "--pingpong") == 0
    assert probe_output(gif).frames == 10  # 6 + 4 back, without repeating the ends
    song = make_clip("audio", clips)
    mp4 = tmp_path / "song.mp4"
    assert _zoom(small_photo, mp4, "--audio", str(song)) == 0
    p = probe_output(mp4)
    assert p.has_audio and p.audio_seconds <= 0.5 + 0.05  # trimmed to 6 frames at 12 fps


def test_zoom_changed_settings_refuse_to_resume(tmp_path, small_photo, capsys):
    out = tmp_path / "z.mp4"
    assert _interrupted_zoom(small_photo, out, 2).code == 130
    capsys.readouterr()
    assert _zoom(small_photo, out, "--step", "0.02") == 2
    err = capsys.readouterr().err
    assert "settings changed" in err and "--restart" in err and len(err.strip().splitlines()) == 1
    assert _zoom(small_photo, out, "--step", "0.02", "--restart") == 0


# ---------------------------------------------------------------- video
def _video(src, out, *extra):
    return main(["video", str(src), "-o", str(out), *VIDEO_FAST, *extra])


def test_video_keeps_count_rate_and_audio(tmp_path, clips):
    src = make_clip("moving", clips)
    out = tmp_path / "dream.mp4"
    assert _video(src, out) == 0
    p, q = probe_output(src), probe_output(out)
    assert (q.frames, q.fps, q.width, q.height) == (p.frames, p.fps, p.width, p.height) == (12, 12, 96, 64)
    assert q.has_audio and abs(q.audio_seconds - 1.0) < 0.05
    assert child_processes(zombies=False) == []


def test_video_preview_start_end_and_silent_source(tmp_path, clips):
    src = make_clip("basic", clips)  # 20 frames at 10 fps, no audio
    out = tmp_path / "p.mp4"
    assert _video(src, out, "--preview", "3", "--max-size", "64") == 0
    q = probe_output(out)
    assert (q.frames, q.width, q.height, q.has_audio) == (3, 64, 48, False)
    out2 = tmp_path / "se.mp4"
    assert _video(src, out2, "--start", "0.5", "--end", "1.0", "--max-size", "64") == 0
    assert probe_output(out2).frames == 5


def test_video_audio_trimmed_to_rendered_range(tmp_path, clips):
    src = make_clip("audio", clips)
    out = tmp_path / "a.mp4"
    assert _video(src, out, "--preview", "5", "--max-size", "64") == 0
    q = probe_output(out)
    assert q.frames == 5 and q.has_audio and q.audio_seconds <= 0.5 + 0.05


@pytest.mark.parametrize("kind,size", [("odd", (322, 242)), ("rot90", (240, 320))])
def test_video_geometry(tmp_path, clips, kind, size):
    src = make_clip(kind, clips)
    out = tmp_path / "g.mp4"
    assert _video(src, out, "--preview", "2") == 0
    q = probe_output(out)
    assert (q.width, q.height, q.rotation) == (*size, 0)


def test_video_vfr_keeps_time(tmp_path, clips):
    src = make_clip("vfr", clips)
    out = tmp_path / "v.mp4"
    assert _video(src, out, "--max-size", "64") == 0
    q = probe_output(out)
    assert abs(q.seconds - 2.0) <= 1 / float(q.fps) + 1e-6
    assert q.has_audio and abs(q.audio_seconds - q.seconds) < 0.06


def test_video_one_frame_and_folder_input(tmp_path, clips, photo):
    out = tmp_path / "one.mp4"
    assert _video(make_clip("one_frame", clips), out, "--max-size", "64") == 0
    assert probe_output(out).frames == 1
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10):
        save_image(folder / f"f{i}.png", np.roll(photo, i, axis=1))
    out2 = tmp_path / "folder.mp4"
    assert _video(folder, out2, "--fps", "24") == 0
    q = probe_output(out2)
    assert (q.frames, q.fps) == (3, 24)


def test_video_resume_gives_identical_frames(tmp_path, clips, capsys):
    src = make_clip("moving", clips)
    full, part = tmp_path / "full.mp4", tmp_path / "part.mp4"
    assert _video(src, full, "--keep-frames") == 0
    for k in (0, 5):
        assert _interrupted_video(src, part, k, keep_frames=True).code == 130
    frames = _work_frames(part)
    assert len(frames) == 5
    frames[-1].write_bytes(b"")  # a damaged last frame must be re-rendered, never reused
    frames[-1].unlink()
    assert _video(src, part, "--keep-frames") == 0
    a = [p.read_bytes() for p in _work_frames(full)]
    b = [p.read_bytes() for p in _work_frames(part)]
    assert len(a) == 12 and a == b
    assert full.read_bytes() == part.read_bytes()
    assert child_processes(zombies=False) == []


def test_video_changed_input_refuses_to_resume(tmp_path, clips, capsys):
    import shutil

    src = tmp_path / "clip.mp4"
    shutil.copy(make_clip("moving", clips), src)
    out = tmp_path / "d.mp4"
    assert _interrupted_video(src, out, 2).code == 130
    shutil.copy(make_clip("basic", clips), src)
    capsys.readouterr()
    assert _video(src, out) == 2
    assert "input changed" in capsys.readouterr().err


BAD_VIDEOS = ["not_video", "empty", "trunc_nomoov", "no_streams", "audio_only", "audio_only_mp4", "zero_decodable"]


@pytest.mark.parametrize("kind", BAD_VIDEOS)
def test_bad_video_is_exit_2_one_line_nothing_written(tmp_path, clips, kind, capsys):
    src = make_clip(kind, clips)
    outdir = tmp_path / "out"
    outdir.mkdir()
    assert _video(src, outdir / "d.mp4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and src.name in err[0] and "Traceback" not in err[0]
    assert list(outdir.iterdir()) == []
    assert child_processes(zombies=False) == []


@pytest.mark.parametrize("case", ["missing", "empty folder", "same output", "exists", "no folder", "bad ext"])
def test_bad_video_paths(tmp_path, clips, case, capsys):
    src = make_clip("basic", clips)
    out = tmp_path / "d.mp4"
    if case == "missing":
        src = tmp_path / "nope.mp4"
    elif case == "empty folder":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "same output":
        out = src
    elif case == "exists":
        out.write_bytes(b"old")
    elif case == "no folder":
        out = tmp_path / "missing" / "d.mp4"
    else:
        out = tmp_path / "d.avi"
    before = out.read_bytes() if out.exists() else None
    assert _video(src, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zoomdream: error:" in err[0]
    assert (out.read_bytes() if out.exists() else None) == before


def test_truncated_video_is_reported(tmp_path, clips):
    src = make_clip("trunc_tail", clips)
    out = tmp_path / "t.mp4"
    r = subprocess.run([sys.executable, "-m", "zoomdream", "video", str(src), "-o", str(out), *VIDEO_FAST[:-1],
                        "--max-size", "64"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "file truncated?" in r.stderr
    assert probe_output(out).frames == probe(src).n_frames


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_exit_cleanly_and_resume(tmp_path, clips, sig, code):
    import shutil

    src = tmp_path / "signal clip.mp4"  # a private copy: any ffmpeg still reading it is ours
    shutil.copy(make_clip("basic", clips), src)
    out = tmp_path / "s.mp4"
    cmd = [sys.executable, "-m", "zoomdream", "video", str(src), "-o", str(out), *FAST, "--iterations", "3",
           "--octaves", "2", "--max-size", "160"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    frames_dir = tmp_path / ".s.mp4.zoomdream-work" / "frames"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and len(list(frames_dir.glob("[0-9]*.png"))) < 2:
        time.sleep(0.1)
    os.killpg(proc.pid, sig)
    err = proc.communicate(timeout=60)[1]  # it stops at once; the time-out only keeps a hang from blocking CI
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip() and "\r" not in line]
    assert any("run the same command again to resume" in line for line in lines), err
    assert not out.exists()
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", str(src)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "an ffmpeg outlived zoomdream"
    done = len(list(frames_dir.glob("[0-9]*.png")))
    assert 2 <= done < 20, done
    r = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert probe_output(out).frames == 20


def test_video_mask_image_and_mask_video(tmp_path, clips):
    import imageio_ffmpeg

    src = make_clip("moving", clips)
    info = probe(src)
    sources = list(iter_frames(info))
    mask = np.zeros((64, 96, 3), np.uint8)
    mask[:, 48:] = 255  # dream only the right half
    save_image(tmp_path / "mask.png", mask)
    out = tmp_path / "m.mp4"
    assert _video(src, out, "--mask", str(tmp_path / "mask.png"), "--keep-frames", "--step", "0.05") == 0
    frames = [load_png_fast(p).astype(int) for p in _work_frames(out)]
    left = np.mean([np.abs(f[:, :32] - s[:, :32]).mean() for f, s in zip(frames, sources)])
    right = np.mean([np.abs(f[:, 64:] - s[:, 64:]).mean() for f, s in zip(frames, sources)])
    assert left < 0.5 and right > 2.0
    black = tmp_path / "black.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "color=black:size=96x64:rate=12:duration=1", "-pix_fmt", "yuv420p", str(black)], check=True)
    out2 = tmp_path / "m2.mp4"
    assert _video(src, out2, "--mask", str(black), "--keep-frames", "--step", "0.05") == 0
    frames = [load_png_fast(p).astype(int) for p in _work_frames(out2)]
    assert max(np.abs(f - s).max() for f, s in zip(frames, sources)) <= 1


def test_render_video_from_python_reports_what_it_made(tmp_path, clips):
    import zoomdream

    settings = zoomdream.merge(zoomdream.load_preset("default"), {**FAST_DREAM, "max_size": 64,
                                                                   "video.iterations_per_frame": 1})
    summary = zoomdream.render_video(make_clip("basic", clips), tmp_path / "lib.mp4", settings=settings, preview=4,
                                     quiet=True)
    assert summary["frames"] == 4 and summary["fps"] == 10 and tuple(summary["size"]) == (64, 48)
    assert summary["flicker"] == summary["flicker"]  # measured (not nan) over 3 carried frames


def test_chunk_options_need_workers(tmp_path, clips, capsys):
    assert _video(make_clip("basic", clips), tmp_path / "c.mp4", "--chunk", "8") == 2
    assert "--chunk applies to chunked renders" in capsys.readouterr().err
    assert not (tmp_path / "c.mp4").exists()


# ---------------------------------------------------------------- the MP4 encoded beside the dream
def _end_encoded(out: Path, ref: Path, n: int, fps, audio) -> bytes:
    """What encoding the kept frames after the last one gives (the GIF/folder/Ray path)."""
    encode(out.parent / f".{out.name}.zoomdream-work" / "frames", FRAME_PATTERN, n, ref, fps=fps, audio=audio)
    return ref.read_bytes()


def test_streamed_mp4_equals_end_encoded(tmp_path, clips, small_photo):
    src = make_clip("moving", clips)  # with a soundtrack
    out = tmp_path / "v.mp4"
    assert _video(src, out, "--keep-frames") == 0
    info = probe(src)
    assert out.read_bytes() == _end_encoded(out, tmp_path / "v-end.mp4", 12, info.fps, audio_source(info))
    song = make_clip("audio", clips)
    zoom = tmp_path / "z.mp4"
    assert _zoom(small_photo, zoom, "--audio", str(song), "--keep-frames") == 0
    track = AudioSource(str(song), 0.0, 6 / 12)
    assert zoom.read_bytes() == _end_encoded(zoom, tmp_path / "z-end.mp4", 6, Fraction(12), track)
    assert probe_output(zoom).has_audio and probe_output(out).has_audio


def test_interrupted_streamed_render_leaves_no_output_nor_temp(tmp_path, clips):
    src = make_clip("moving", clips)
    full, part = tmp_path / "full.mp4", tmp_path / "part.mp4"
    assert _video(src, full) == 0
    assert _interrupted_video(src, part, 4).code == 130
    assert not part.exists() and len(_work_frames(part)) == 4
    assert [p.name for p in tmp_path.rglob("*partial*")] == []
    assert child_processes(zombies=False) == []
    assert _video(src, part) == 0  # fed the 4 cached frames first, then the new ones
    assert part.read_bytes() == full.read_bytes()
    assert [p.name for p in tmp_path.rglob(".*")] == []  # work folder and temps gone


def test_mp4_stream_matches_encode_and_aborts_cleanly(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (33, 47, 3), np.uint8) for _ in range(5)]  # odd size: padded alike
    for i, f in enumerate(frames):
        save_image(tmp_path / (FRAME_PATTERN % i), f)
    with Mp4Stream(tmp_path / "s.mp4", 5, fps=Fraction(10)) as stream:
        for f in frames:
            stream.write(f)
        stream.finish()
    encode(tmp_path, FRAME_PATTERN, 5, tmp_path / "e.mp4", fps=Fraction(10))
    assert (tmp_path / "s.mp4").read_bytes() == (tmp_path / "e.mp4").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    with Mp4Stream(tmp_path / "a.mp4", 5, fps=Fraction(10), folder=work) as stream:
        stream.write(frames[0])
        assert len(list(work.iterdir())) == 1  # the temp is in the work folder, not beside the output
        with pytest.raises(ZoomdreamError, match="1 frames were encoded, expected 5"):
            stream.finish()
    assert not (tmp_path / "a.mp4").exists() and list(work.iterdir()) == []
    assert child_processes(zombies=False) == []
