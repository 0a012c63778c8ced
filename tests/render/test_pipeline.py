"""The pipelined frame loop and the dream size: same bytes as in line, work beside the dream, detail kept."""

from __future__ import annotations

import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from zoomdream import render_video
from zoomdream import settings as S
from zoomdream.cli import main
from zoomdream.errors import Interrupted, ZoomdreamError
from zoomdream.media.images import load_png_fast, png_size, save_png_fast
from zoomdream.media.probe import probe, probe_output
from zoomdream.media.read import iter_frames
from zoomdream.render import video
from zoomdream.render.job import Clip
from zoomdream.render.pipeline import Lookahead, WriteBehind
from zoomdream.settings import presets

from clips import make_clip

# Tiny dreams on the default model: the loop, not the look, is under test.
FAST = {"octaves": 1, "iterations": 1, "precision": "fp32", "jitter": 2, "video.iterations_per_frame": 1}


def _settings(**extra):
    return S.merge(presets.load_preset("default"), {**FAST, **extra})


def _frames(info, settings, n, *, lookahead):
    loop = video.VideoLoop(Clip(info.path).probed(info), settings, lookahead=lookahead)
    out, prev = [], None
    try:
        for i in range(n):
            prev = loop.frame(i, prev)
            out.append(prev)
    finally:
        loop.close()
    return out, loop.flicker.mean


# ---------------------------------------------------------------- the helpers
def test_lookahead_keeps_order_and_stays_bounded():
    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    ahead = Lookahead(items(), depth=2)
    seen = []
    for k, item in enumerate(ahead):
        seen.append(item)
        if k == 3:
            threading.Event().wait(0.2)  # give the worker time to run ahead as far as it may
            assert len(made) <= len(seen) + 3  # the queue (2) and the one item in the worker's hand
    assert seen == list(range(20))
    ahead.close()


def test_lookahead_raises_the_workers_error_and_closes_its_source():
    closed = threading.Event()

    def items():
        try:
            yield 1
            raise ZoomdreamError("clip.mp4: damaged")
        finally:
            closed.set()

    ahead = Lookahead(items())
    assert next(ahead) == 1
    with pytest.raises(ZoomdreamError, match="damaged"):
        next(ahead)
    ahead.close()
    assert closed.is_set()

    def endless():
        try:
            while True:
                yield 0
        finally:
            closed.set()

    closed.clear()
    ahead = Lookahead(endless())
    next(ahead)
    ahead.close()  # half read: the worker stops and the generator's cleanup runs (an ffmpeg is reaped)
    assert closed.is_set()


def test_write_behind_runs_in_order_and_reports_a_failed_write(tmp_path):
    done = []
    writer = WriteBehind()
    for i in range(5):
        writer.submit(done.append, i)
    writer.flush()
    assert done == [0, 1, 2, 3, 4]

    def fail(_):
        raise ZoomdreamError("disk full")

    writer.submit(fail, 0)
    with pytest.raises(ZoomdreamError, match="disk full"):
        writer.close()


def test_png_size_reads_the_header_only(tmp_path):
    path = tmp_path / "f.png"
    save_png_fast(path, np.zeros((7, 11, 3), np.uint8))
    assert png_size(path) == (11, 7)
    (tmp_path / "x.png").write_bytes(b"not a png at all, not at all")
    with pytest.raises(ZoomdreamError, match="not a PNG"):
        png_size(tmp_path / "x.png")


# ---------------------------------------------------------------- same bytes as the loop in line
@pytest.mark.parametrize("dream_size", [None, 64])
def test_pipelined_video_frames_equal_the_frames_made_in_line(clips, dream_size, fresh_flow_cache):
    info = probe(make_clip("moving", clips))  # 96x64, a pan over a photo
    settings = _settings(**{"video.dream_size": dream_size})
    a, flicker_a = _frames(info, settings, 6, lookahead=0)
    b, flicker_b = _frames(info, settings, 6, lookahead=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b) == 6
    assert flicker_a == flicker_b
    assert a[0].shape == (64, 96, 3)  # the output keeps the frame's size


@pytest.fixture()
def fresh_flow_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOMDREAM_CACHE", str(tmp_path / "cache"))


def test_interrupted_pipelined_render_keeps_every_counted_frame_and_resumes_identically(tmp_path, clips):
    src, full, part = make_clip("moving", clips), tmp_path / "full.mp4", tmp_path / "part.mp4"
    settings = _settings(**{"video.dream_size": 64})
    render_video(src, full, settings=settings, quiet=True, keep_frames=True)

    def stop(k):
        if k >= 4:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="after frame 4/12"):
        render_video(src, part, settings=settings, quiet=True, keep_frames=True, on_frame=stop)
    frames = sorted((tmp_path / ".part.mp4.zoomdream-work" / "frames").glob("*.png"))
    assert len(frames) == 4 and all(load_png_fast(f).shape == (64, 96, 3) for f in frames)
    render_video(src, part, settings=settings, quiet=True, keep_frames=True)
    a = sorted((tmp_path / ".full.mp4.zoomdream-work" / "frames").glob("*.png"))
    b = sorted((tmp_path / ".part.mp4.zoomdream-work" / "frames").glob("*.png"))
    assert len(a) == 12 and [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert full.read_bytes() == part.read_bytes()


# ---------------------------------------------------------------- the dream size
def _high_pass(image: np.ndarray) -> float:
    """Mean |image - its 5x5 box blur|: the share of the picture in detail of a few px."""
    f = image.astype(np.float32)
    return float(np.abs(f - cv2.blur(f, (5, 5))).mean())


def test_dream_size_dreams_small_and_keeps_the_footages_own_detail(clips, fresh_flow_cache):
    info = probe(make_clip("moving", clips))  # 96x64
    strong = {"iterations": 4, "step": 0.05, "video.blend": 0.0}
    src = next(iter(iter_frames(info)))
    full, _ = _frames(info, _settings(**strong), 1, lookahead=0)
    small, _ = _frames(info, _settings(**strong, **{"video.dream_size": 48}), 1, lookahead=0)
    assert small[0].shape == full[0].shape == src.shape
    delta_full = full[0].astype(np.float32) - src
    delta_small = small[0].astype(np.float32) - src
    assert np.abs(delta_small).mean() > 2.0  # it does dream
    # the delta, dreamed at half size and scaled up, is smooth; the full-size dream paints pixel-scale detail
    assert _high_pass(delta_small) < 0.7 * _high_pass(delta_full)
    # where the dream is weak the footage comes through unblurred: its detail survives
    weak = np.abs(delta_small).max(axis=2) < 2
    assert weak.any() and np.abs(delta_small[weak]).max() < 2


@pytest.mark.parametrize("full", [(192, 108), (200, 120)])
def test_a_carried_delta_rebuilt_at_the_dream_size_loses_less_detail_than_an_area_average(full):
    work = video.WorkSize(full=full, size=(64, 36))
    rng = np.random.default_rng(0)
    delta = cv2.GaussianBlur(rng.normal(0, 0.3, (36, 64, 3)).astype(np.float32), (0, 0), 1.0)  # dream-like detail
    shown = work.up(delta)  # what the saved frame holds
    plain = np.abs(work.down(shown) - delta).mean()
    rebuilt = np.abs(work.down_delta(shown) - delta).mean()
    assert rebuilt < 0.5 * plain
    assert work.down_delta(shown).shape == delta.shape
    same = video.WorkSize(full=(64, 36), size=(64, 36))
    assert same.down_delta(delta) is delta


def test_dream_size_is_a_setting_with_a_flag_and_a_sidecar_entry(tmp_path, clips):
    src, out = make_clip("moving", clips), tmp_path / "o.mp4"
    assert main(["video", str(src), "-o", str(out), "--octaves", "1", "--iterations", "1", "--precision", "fp32",
                 "--iterations-per-frame", "1", "--preview", "3", "--dream-size", "64", "-q"]) == 0
    assert "dream_size: 64" in (tmp_path / "o.mp4.yaml").read_text()
    assert probe_output(out).frames == 3
    with pytest.raises(ZoomdreamError, match="dream_size"):
        S.merge(presets.load_preset("default"), {"video.dream_size": 10})


def test_motion_only_renders_never_import_tensorflow(tmp_path, clips, small_photo):
    clip = make_clip("moving", clips)
    code = ("import sys\nfrom zoomdream.cli import main\n"
            f"assert main(['video', {str(clip)!r}, '-o', {str(tmp_path / 'v.mp4')!r}, '--iterations', '0',"
            f" '--preview', '3', '-q']) == 0\n"
            f"assert main(['zoom', {str(small_photo)!r}, '-o', {str(tmp_path / 'z.mp4')!r}, '--iterations', '0',"
            f" '--frames', '3', '-q']) == 0\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "v.mp4").exists() and (tmp_path / "z.mp4").exists()
