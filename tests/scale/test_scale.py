"""Scale-out: the chunk planner on its own, then Ray runs with 2 local workers.

The planner cases are hand-computed (STYLE 13a). The Ray tests share one module-scoped Ray
(starting Ray takes ~10 s here) and one reference render; each render still starts its own
worker processes (TensorFlow, the backbone), so only the reference run is always on and the
other runs are marked slow. Every Ray test compares frames byte for byte (STYLE 13d): a rerun,
a run with a killed worker, a 1-worker run and a resumed run must all equal the reference,
and the first chunk of a shot must equal a sequential ``render_video``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from zoomdream import render_video, scale
from zoomdream import settings as S
from zoomdream.cli import main
from zoomdream.errors import Interrupted, ZoomdreamError
from zoomdream.media.probe import probe, probe_output
from zoomdream.media.read import iter_frames
from zoomdream.render import video
from zoomdream.render.job import Clip
from zoomdream.scale import Chunk, find_cuts, plan_segments, render_video_ray
from zoomdream.settings import presets

from clips import make_clip
from conftest import FAST_DREAM, ROOT, as_flags

# Tiny dreams (conftest), one step a frame. On the 12-frame clip, chunk 4, warm-up 1 and fade 1 make
# chunks [0, 4), [4, 8) dreamed from 2 and [8, 12) from 6, with frames 3 and 7 cross-faded.
FAST = {**FAST_DREAM, "video.iterations_per_frame": 1}
FAST_FLAGS = as_flags(FAST)
CHUNKING = {"chunk": 4, "warmup": 1, "fade": 1}
ASSETS = ROOT / "assets"


def _settings(**extra):
    return S.merge(presets.load_preset("default"), {**FAST, **extra})


def _stop_after(k: int):
    """An ``on_frame`` callback: Ctrl-C once this run has made k new frames."""
    def on_frame(done: int) -> None:
        if done >= k:
            raise KeyboardInterrupt
    return on_frame


def _work_frames(out: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((out.parent / f".{out.name}.zoomdream-work" / "frames").glob("*.png"))]


# ---------------------------------------------------------------- the planner (pure)
@pytest.mark.parametrize("n,cuts,chunk,warmup,fade,expected", [
    # one shot, near-equal chunks (10 = 3 + 3 + 4); no fade: dreamed from first - warmup
    (10, [], 4, 2, 0, [(0, 3, 0, 0), (3, 6, 1, 3), (6, 10, 4, 6)]),
    # warm-up 1 and fade 1: dreamed from first - 2, frame first - 1 cross-faded
    (10, [], 4, 1, 1, [(0, 3, 0, 0), (3, 6, 1, 2), (6, 10, 4, 5)]),
    # warm-up 2 and fade 1 reach back to the shot start for [3, 6): dreamed from 0, exact
    (10, [], 4, 2, 1, [(0, 3, 0, 0), (3, 6, 0, 3), (6, 10, 3, 5)]),
    # a shot that fits one chunk: nothing to warm up
    (4, [], 4, 2, 6, [(0, 4, 0, 0)]),
    # warm-up 0, fade 0: chunks start cold mid-shot
    (8, [], 4, 0, 0, [(0, 4, 0, 0), (4, 8, 4, 4)]),
    # a fade longer than the previous chunk is cut to it
    (12, [], 3, 0, 5, [(0, 3, 0, 0), (3, 6, 0, 3), (6, 9, 3, 3), (9, 12, 6, 6)]),
    # a cut at 5: shots [0, 5) and [5, 16) (11 = 3 + 4 + 4); the chunk at 5 needs nothing
    (16, [5], 4, 1, 1, [(0, 2, 0, 0), (2, 5, 0, 2), (5, 8, 5, 5), (8, 12, 6, 7), (12, 16, 10, 11)]),
    # cuts given unsorted, repeated, and at 0 (which starts a shot anyway)
    (7, [4, 0, 4], 8, 2, 1, [(0, 4, 0, 0), (4, 7, 4, 4)]),
    # one-frame shots at the end
    (6, [4, 5], 2, 1, 0, [(0, 2, 0, 0), (2, 4, 1, 2), (4, 5, 4, 4), (5, 6, 5, 5)]),
    (0, [], 4, 2, 1, []),
])
def test_plan_hand_computed(n, cuts, chunk, warmup, fade, expected):
    plan = plan_segments(n, cuts, chunk=chunk, warmup=warmup, fade=fade)
    assert [(c.first, c.stop, c.warmup_from, c.fade_from) for c in plan] == expected


def test_plan_seams_warmup_and_fade_properties():
    plan = plan_segments(16, [5], chunk=4, warmup=1, fade=1)
    assert [c.shot for c in plan] == [0, 0, 5, 5, 5]
    assert [(c.warmup, c.fade) for c in plan] == [(0, 0), (2, 0), (0, 0), (1, 1), (1, 1)]  # (2, 5) drops 0, 1
    # (2, 5) is dreamed from the shot start, so it is exact; (8, 12) and (12, 16) start afresh mid-shot
    assert [c.seam for c in plan] == [False, False, False, True, True]
    assert Chunk(8, 12, 6, 7, 5).seam and not Chunk(5, 8, 5, 5, 5).seam


@pytest.mark.parametrize("n,chunk", [(1, 1), (17, 4), (100, 7), (48, 48), (49, 48)])
def test_plan_covers_every_frame_once_and_fades_stay_in_the_shot(n, chunk):
    cuts = [c for c in (5, 6, 30) if c < n]
    plan = plan_segments(n, cuts, chunk=chunk, warmup=3, fade=4)
    assert [i for c in plan for i in range(c.first, c.stop)] == list(range(n))
    assert max(c.stop - c.first for c in plan) <= chunk
    for shot in {c.shot for c in plan}:  # near-equal sizes within a shot
        in_shot = [c.stop - c.first for c in plan if c.shot == shot]
        assert max(in_shot) - min(in_shot) <= 1
    for prev, c in zip(plan, plan[1:]):
        assert c.shot <= c.warmup_from <= c.fade_from <= c.first
        if c.seam:  # cross-faded frames are the previous chunk's own
            assert (c.warmup, c.fade) == (3, min(4, prev.stop - prev.first)) and c.fade_from >= prev.first
        else:
            assert c.warmup_from == c.shot and c.fade == 0
    assert all(not c.seam for c in plan if c.first in cuts or c.first == 0)


def test_plan_rejects_bad_arguments():
    for args, kw in [((10, []), {"chunk": 0}), ((10, []), {"warmup": -1}), ((10, []), {"fade": -1}),
                     ((10, [10]), {}), ((10, [-1]), {})]:
        with pytest.raises(ValueError, match="Got"):
            plan_segments(*args, **kw)


def test_public_api_is_present():
    for name in ("DEFAULT_CHUNK", "DEFAULT_WARMUP", "DEFAULT_FADE", "Chunk", "find_cuts", "plan_segments",
                 "render_video_ray"):
        assert name in scale.__all__ and hasattr(scale, name), name
    assert scale.DEFAULT_CHUNK > scale.DEFAULT_WARMUP + scale.DEFAULT_FADE


def test_cross_fade_weights_hand_computed(tmp_path):
    from zoomdream.render.framecache import FrameCache

    cache = FrameCache(tmp_path / "o.mp4", {"kind": "test"})
    plan = [Chunk(0, 8, 0, 0, 0), Chunk(8, 12, 3, 5, 0)]  # frames 5, 6, 7 cross-faded over 3 frames
    store = scale.FrameStore(cache, plan)
    for i in range(8):
        store.save(plan[0], i, np.full((2, 2, 3), 100, np.uint8))
    for i in range(5, 12):
        store.save(plan[1], i, np.full((2, 2, 3), 200, np.uint8))
    assert store.done(plan[0]) and store.done(plan[1])
    # weights of the later chunk 1/4, 2/4, 3/4, then its own frames
    assert [int(cache.load(i)[0, 0, 0]) for i in range(4, 10)] == [100, 125, 150, 175, 200, 200]
    (cache.frames / "000009.png").unlink()
    assert store.done(plan[0]) and not store.done(plan[1])


# ---------------------------------------------------------------- scene cuts
@pytest.fixture(scope="module")
def cut_folder(tmp_path_factory):
    """12 frames of 96x64 as numbered PNGs: a pan over one photo (0-5), then over another (6-11)."""
    import cv2

    from zoomdream.media.images import save_image

    folder = tmp_path_factory.mktemp("cut")
    shots = [("coffee.jpg", 3 * i) for i in range(6)] + [("chelsea.jpg", 3 * i) for i in range(6)]
    for k, (name, x0) in enumerate(shots):
        photo = cv2.cvtColor(cv2.imread(str(ASSETS / name)), cv2.COLOR_BGR2RGB)
        photo = cv2.resize(photo, (150, 100), interpolation=cv2.INTER_AREA)
        save_image(folder / f"f{k:02d}.png", photo[18:82, x0:x0 + 96])
    return folder


def test_find_cuts_matches_the_sequential_test(cut_folder, clips):
    info = probe(cut_folder, fps=12)
    assert find_cuts(info, settings=_settings()) == [6]
    assert find_cuts(info, settings=_settings(), start=0.25) == [3]  # frame indices count from start
    assert find_cuts(info, settings=_settings(**{"video.blend": 0.0})) == []  # nothing carried: nothing to reset
    assert find_cuts(probe(make_clip("moving", clips)), settings=_settings()) == []  # a pan is no cut


# ---------------------------------------------------------------- without Ray, and refusals before Ray starts
def test_without_ray_exit_2_with_the_install_command(tmp_path, clips, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "d.mp4"
    assert main(["video", str(make_clip("moving", clips)), "-o", str(out), "--workers", "2", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["zoomdream: error: --workers and --ray-address need Ray: pip install 'zoomdream[ray]'"]
    assert main(["video", str(make_clip("moving", clips)), "-o", str(out), "--ray-address", "auto", "-q"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_chunk_decodes_from_its_first_dreamed_frame(clips, monkeypatch, fresh_flow_cache):
    info = probe(make_clip("moving", clips))
    skips = []
    real = iter_frames
    monkeypatch.setattr(video, "iter_frames", lambda *a, **k: skips.append(k.get("skip", 0)) or real(*a, **k))
    chunk = list(video.dream_frames(Clip(info.path).probed(info), _settings(), first=6, stop=8,
                                    warmup=2))
    assert skips == [4] and [i for i, _, _ in chunk] == [6, 7]
    # the same frames as a loop that decodes from frame 0 and starts dreaming at frame 4
    loop = video.VideoLoop(Clip(info.path).probed(info), _settings())
    prev = None
    for i in range(4, 8):
        prev = loop.frame(i, prev)
        if i >= 6:
            assert np.array_equal(prev, chunk[i - 6][1]), i
    loop.close()


def test_sequential_frames_are_not_resumed_by_a_chunked_run(tmp_path, clips, monkeypatch):
    pytest.importorskip("ray")
    src, out = make_clip("moving", clips), tmp_path / "d.mp4"
    with pytest.raises(Interrupted):
        render_video(src, out, settings=_settings(), quiet=True, on_frame=_stop_after(2))
    with pytest.raises(ZoomdreamError, match="render options changed.*--restart"):
        render_video_ray(src, out, settings=_settings(), workers=2, quiet=True, **CHUNKING)


# ---------------------------------------------------------------- Ray, 2 local workers
@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture()
def fresh_flow_cache(tmp_path, monkeypatch):
    """A cold flow cache, so a sequential run computes its flows (as every chunk does)."""
    monkeypatch.setenv("ZOOMDREAM_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def reference(ray_session, clips, tmp_path_factory):
    """The moving clip (12 frames, 12 fps, 1 s of audio) dreamed by 2 workers: 3 chunks, 2 seams."""
    out = tmp_path_factory.mktemp("reference") / "ray.mp4"
    summary = render_video_ray(make_clip("moving", clips), out, settings=_settings(), workers=2, keep_frames=True,
                               quiet=True, **CHUNKING)
    return out, summary, _work_frames(out)


def test_two_workers_keep_count_rate_audio_and_sidecar(reference, clips, tmp_path, fresh_flow_cache, capfd):
    out, summary, frames = reference
    capfd.readouterr()
    seq = tmp_path / "seq.mp4"
    render_video(make_clip("moving", clips), seq, settings=_settings(), keep_frames=True, quiet=True)
    p, q = probe_output(seq), probe_output(out)
    assert (q.frames, q.fps, q.width, q.height, q.has_audio) == (p.frames, p.fps, p.width, p.height, True)
    assert q.frames == len(frames) == 12 and abs(q.audio_seconds - p.audio_seconds) < 1e-3
    assert (summary["chunks"], summary["seams"], summary["workers"], summary["size"]) == (3, 2, 2, (96, 64))
    assert np.isfinite([summary["flicker_inside"], summary["flicker_seams"]]).all()
    # the sidecar is the same preset as a sequential run's
    assert yaml.safe_load(Path(str(out) + ".yaml").read_text()) == yaml.safe_load(Path(str(seq) + ".yaml").read_text())
    # the first chunk starts where a sequential run starts: the same bytes up to its cross-faded frame 3
    assert frames[:3] == _work_frames(seq)[:3]
    assert frames[3:] != _work_frames(seq)[3:]  # and the seams are real: later frames differ a little
    assert capfd.readouterr() == ("", "")


@pytest.mark.slow
def test_rerun_with_a_killed_worker_gives_identical_frames(reference, clips, tmp_path, monkeypatch, capfd):
    import logging

    out, _, frames = reference
    marker = tmp_path / "killed"

    def die_once(i: int) -> None:  # runs in the worker: dies in chunk [4, 8) after handing back frames 3 and 4
        if i == 5 and not marker.exists():
            marker.touch()
            os._exit(1)  # a worker dying mid-chunk, as an OOM kill would: no cleanup, no exception

    notes = []
    handler = logging.Handler()
    handler.emit = notes.append
    logging.getLogger("zoomdream").addHandler(handler)
    try:
        again = tmp_path / "again.mp4"
        render_video_ray(make_clip("moving", clips), again, settings=_settings(), workers=2, keep_frames=True,
                         quiet=True, worker_fault=die_once, **CHUNKING)
    finally:
        logging.getLogger("zoomdream").removeHandler(handler)
    assert marker.exists()  # the worker really died
    assert _work_frames(again) == frames
    assert probe_output(again).frames == 12
    assert capfd.readouterr().out == ""  # Ray's notice of the death went to our log, not to stdout
    assert any("ray: " in n.getMessage() for n in notes)


@pytest.mark.slow
def test_one_worker_gives_the_same_frames(reference, clips, tmp_path):
    out = tmp_path / "one.mp4"
    summary = render_video_ray(make_clip("moving", clips), out, settings=_settings(), workers=1, keep_frames=True,
                               quiet=True, **CHUNKING)
    assert summary["workers"] == 1 and _work_frames(out) == reference[2]


def test_interrupted_before_the_first_frame_says_nothing_was_written(ray_session, clips, tmp_path, monkeypatch):
    def ctrl_c(*args, **kwargs):  # Ctrl-C while the driver waits for the workers' first frame
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_session, "wait", ctrl_c)
    out = tmp_path / "none.mp4"
    with pytest.raises(Interrupted) as e:
        render_video_ray(make_clip("moving", clips), out, settings=_settings(), workers=2, quiet=True, **CHUNKING)
    assert str(e.value) == "interrupted before the first frame was finished; nothing was written"
    assert e.value.code == 130 and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_resume_skips_complete_chunks_and_gives_identical_output(reference, clips, tmp_path, monkeypatch):
    out = tmp_path / "part.mp4"
    with pytest.raises(Interrupted, match="after 5/12 frames.*run the same command again to resume") as e:
        render_video_ray(make_clip("moving", clips), out, settings=_settings(), workers=2, keep_frames=True,
                         quiet=True, on_frame=_stop_after(5), **CHUNKING)
    assert e.value.code == 130 and not out.exists()
    assert 0 < len(_work_frames(out)) <= 5  # a cross-faded frame waits for its second version
    render_video_ray(make_clip("moving", clips), out, settings=_settings(), workers=2, keep_frames=True,
                     quiet=True, **CHUNKING)
    assert _work_frames(out) == reference[2]
    assert out.read_bytes() == reference[0].read_bytes()


def test_chunks_see_the_schedules_of_their_own_frames(ray_session, clips, tmp_path, fresh_flow_cache):
    """Schedules are functions of the frame index (and the audio): chunks [4, 8) and [8, 12) move their frames
    exactly as a sequential run does. --iterations 0, so every frame is exact and seams cannot hide a shift."""
    import subprocess

    import imageio_ffmpeg

    clicks = tmp_path / "clicks.wav"  # hits at 0.25 and 0.75 s: frames 3 and 9 at 12 fps
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "aevalsrc='0.8*(2*random(0)-1)*(between(t,0.25,0.255)+between(t,0.75,0.755))':s=44100:d=1",
                    str(clicks)], check=True)
    settings = _settings(**{"iterations": 0, "video.zoom": "1 + 0.02*t", "video.rotate": "4*(beat == 1)"})
    out, seq = tmp_path / "ray.mp4", tmp_path / "seq.mp4"
    render_video_ray(make_clip("moving", clips), out, settings=settings, workers=2, keep_frames=True, quiet=True,
                     audio=clicks, **CHUNKING)
    render_video(make_clip("moving", clips), seq, settings=settings, keep_frames=True, quiet=True, audio=clicks)
    assert len(_work_frames(out)) == 12 and _work_frames(out) == _work_frames(seq)
    assert probe_output(out).has_audio


@pytest.mark.slow
def test_chunks_starting_at_cuts_equal_a_sequential_run(ray_session, cut_folder, tmp_path, fresh_flow_cache):
    # shots [0, 6) and [6, 12), chunk 6: each chunk starts a shot, so no seams and every frame is exact
    out, seq = tmp_path / "ray.mp4", tmp_path / "seq.mp4"
    summary = render_video_ray(cut_folder, out, settings=_settings(), fps=12, workers=2, chunk=6, warmup=2, fade=1,
                               keep_frames=True, quiet=True)
    render_video(cut_folder, seq, settings=_settings(), fps=12, keep_frames=True, quiet=True)
    assert (summary["chunks"], summary["seams"]) == (2, 0) and np.isnan(summary["flicker_seams"])
    assert _work_frames(out) == _work_frames(seq)


@pytest.mark.slow
def test_a_worker_error_is_one_line(ray_session, clips, tmp_path):
    # Every file is checked by the driver before any worker starts; what a worker still meets
    # (a file gone from its node, say) comes back as the driver's one-line error.
    def fault(i):
        if i == 3:
            raise ZoomdreamError("guide.png: not found on Ray node n2")

    with pytest.raises(ZoomdreamError, match="guide.png: not found on Ray node n2"):
        render_video_ray(make_clip("moving", clips), tmp_path / "e.mp4", settings=_settings(), workers=2, quiet=True,
                         worker_fault=fault, **CHUNKING)
    assert not (tmp_path / "e.mp4").exists()


# ---------------------------------------------------------------- the command line, Ray started by zoomdream
def _ray_processes(ray_tmp: Path) -> list[str]:
    """Command lines of live processes that belong to a Ray whose temp folder is ray_tmp."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(ray_tmp) in text:
            found.append(text)
    return found


@pytest.mark.slow
def test_cli_quiet_terminal_ctrl_c_and_resume_leave_no_process(tmp_path, clips, request):
    pytest.importorskip("ray")
    src, out = make_clip("basic", clips), tmp_path / "w.mp4"  # 20 frames: the default chunk makes one chunk
    ray_tmp = Path(tempfile.mkdtemp(prefix="zdray", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    request.addfinalizer(lambda: shutil.rmtree(ray_tmp, ignore_errors=True))
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    cmd = [sys.executable, "-m", "zoomdream", "video", str(src), "-o", str(out), *FAST_FLAGS, "--iterations", "3",
           "--octaves", "2", "--max-size", "160", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    frames_dir = tmp_path / ".w.mp4.zoomdream-work" / "frames"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(frames_dir.glob("*.png"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr and stdout == ""
    time.sleep(2)
    assert _ray_processes(ray_tmp) == []
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    lines = [line for line in r.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith(("zoomdream: ", "finding scene cuts", "dreaming (")) for line in lines), lines
    assert any("resuming" in line for line in lines)
    assert probe_output(out).frames == 20
    time.sleep(2)
    assert _ray_processes(ray_tmp) == []


@pytest.mark.slow
def test_nothing_at_the_address_is_exit_2_and_nothing_written(tmp_path, clips):
    pytest.importorskip("ray")
    outdir = tmp_path / "out"
    outdir.mkdir()
    # A fresh process: in this one the module's Ray may be running, and it would be used as is.
    # ("auto" is no use here either: Ray finds any cluster running on this machine, even another test's.)
    r = subprocess.run([sys.executable, "-m", "zoomdream", "video", str(make_clip("moving", clips)), "-o",
                        str(outdir / "d.mp4"), *FAST_FLAGS, "--ray-address", "127.0.0.1:9"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoomdream: error: --ray-address 127.0.0.1:9: nothing answers there")
    assert list(outdir.iterdir()) == []
