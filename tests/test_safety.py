"""Data safety: zoomdream deletes or replaces only what it created, and never mixes runs.

Every test snapshots the files that exist before the command (path -> bytes) and checks
that each is still there, byte for byte, afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoomdream import fileio
from zoomdream.cli import main
from zoomdream.errors import Interrupted, Terminated
from zoomdream.flow import FlowCache
from zoomdream.media.images import save_image
from zoomdream.media.probe import probe
from zoomdream.media.write import encode

from clips import make_clip
from conftest import FAST_FLAGS, FFMPEG

TINY = [*FAST_FLAGS, "-q"]
VIDEO_TINY = [*TINY, "--iterations-per-frame", "1"]
ZOOM_TINY = [*TINY, "--fps", "12", "--frames", "4"]


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``roots``: path -> bytes (None for a folder)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            out[dirpath] = None
            for name in filenames:
                p = os.path.join(dirpath, name)
                out[p] = Path(p).read_bytes()
    return out


def assert_intact(before: dict[str, bytes | None]) -> None:
    for path, data in before.items():
        assert os.path.lexists(path), f"{path} was deleted"
        if data is not None:
            assert Path(path).read_bytes() == data, f"{path} was changed"


def refused(capsys, code: int) -> str:
    """The command's exit was 2 with exactly one stderr line; returns that line."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("zoomdream: error: "), err
    return err


@pytest.fixture()
def data(tmp_path):
    """A user's folder: a clip, a photo, notes and a subfolder of their own."""
    folder = tmp_path / "home" / "data"
    (folder / "sub").mkdir(parents=True)
    clip = folder / "clip.mp4"
    clip.write_bytes(make_clip("moving", tmp_path).read_bytes())
    save_image(folder / "photo.png", np.full((48, 64, 3), 120, np.uint8))
    (folder / "notes.txt").write_text("mine\n")
    (folder / "sub" / "keep.txt").write_text("also mine\n")
    return folder


# ---------------------------------------------------------------- outputs that would destroy inputs
@pytest.mark.parametrize("case", ["input folder", "current folder", "empty", "parent of input folder",
                                  "grandparent via ..", "symlink to input folder"])
def test_video_output_naming_a_folder_of_the_users_is_refused(data, monkeypatch, capsys, case):
    clip = data / "clip.mp4"
    monkeypatch.chdir(data)
    if case == "symlink to input folder":
        os.symlink(data, data.parent / "link")
    out = {"input folder": str(data), "current folder": ".", "empty": "", "parent of input folder": str(data.parent),
           "grandparent via ..": "../..", "symlink to input folder": str(data.parent / "link")}[case]
    before = snapshot(data.parent)
    err = refused(capsys, main(["video", str(clip), "-o", out, "--overwrite", *VIDEO_TINY]))
    assert any(w in err for w in ("input", "current folder", "empty")), err
    assert_intact(before)
    assert snapshot(data.parent).keys() == before.keys()  # nothing added either


def test_output_inside_a_frames_folder_input_is_refused(data, capsys):
    frames = data / "frames"
    frames.mkdir()
    for i in range(3):
        save_image(frames / f"{i:03d}.png", np.full((32, 32, 3), 40 * i, np.uint8))
    before = snapshot(data)
    err = refused(capsys, main(["video", str(frames), "-o", str(frames / "out.mp4"), *VIDEO_TINY]))
    assert "inside the input folder" in err
    assert_intact(before)
    assert snapshot(data).keys() == before.keys()


def test_overwrite_replaces_only_a_frame_folder_zoomdream_wrote(data, tmp_path, capsys):
    clip = data / "clip.mp4"
    user_folder = tmp_path / "renders"
    user_folder.mkdir()
    (user_folder / "000000.png").write_bytes(b"a user's file that looks like a frame")
    before = snapshot(data, user_folder)
    err = refused(capsys, main(["video", str(clip), "-o", str(user_folder), "--overwrite", "--preview", "2",
                                *VIDEO_TINY]))
    assert "not written by zoomdream" in err
    assert_intact(before)
    # A folder zoomdream wrote is replaced; once a user adds a file of their own, it no longer is.
    out = tmp_path / "frames_out"
    assert main(["video", str(clip), "-o", str(out), "--preview", "2", *VIDEO_TINY]) == 0
    assert fileio.is_own_folder(out) and sorted(p.name for p in out.glob("*.png")) == ["000000.png", "000001.png"]
    assert main(["video", str(clip), "-o", str(out), "--overwrite", "--preview", "3", *VIDEO_TINY]) == 0
    assert len(list(out.glob("*.png"))) == 3
    (out / "my_edit.psd").write_bytes(b"work of mine")
    before = snapshot(out)
    refused(capsys, main(["video", str(clip), "-o", str(out), "--overwrite", "--preview", "2", *VIDEO_TINY]))
    assert_intact(before)


def test_encode_never_replaces_a_users_folder(tmp_path):
    frames = tmp_path / "f"
    frames.mkdir()
    for i in range(2):
        save_image(frames / f"{i:06d}.png", np.zeros((16, 16, 3), np.uint8))
    user = tmp_path / "user"
    user.mkdir()
    (user / "000000.png").write_bytes(b"mine")
    before = snapshot(user)
    with pytest.raises(Exception, match="not written by zoomdream"):
        encode(frames, "%06d.png", 2, user, fps=24)
    assert_intact(before)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temp folder left


def test_overwrite_replaces_only_files_of_a_kind_zoomdream_writes(data, capsys):
    photo = data / "photo.png"
    (data / "dream.png").mkdir()
    (data / "dream.png" / "inside.txt").write_text("x")
    before = snapshot(data)
    err = refused(capsys, main(["image", str(photo), "-o", str(data / "dream.png"), "--overwrite", *TINY]))
    assert "is a folder" in err
    refused(capsys, main(["image", str(photo), "-o", str(photo), "--overwrite", *TINY]))  # the input itself
    os.link(photo, data / "hard.png")
    os.symlink(photo, data / "soft.png")
    before = snapshot(data)
    for other in ("hard.png", "soft.png"):  # other names of the input
        err = refused(capsys, main(["image", str(photo), "-o", str(data / other), "--overwrite", *TINY]))
        assert "is the input" in err
    assert_intact(before)


# ---------------------------------------------------------------- the settings sidecar
def test_sidecar_obeys_the_output_rules(data, capsys):
    photo = data / "photo.png"
    out = data / "o.png"
    (data / "o.png.yaml").write_text("my own notes, not a sidecar\n")
    before = snapshot(data)
    err = refused(capsys, main(["image", str(photo), "-o", str(out), *TINY]))
    assert "sidecar" in err and "--overwrite" in err
    err = refused(capsys, main(["image", str(photo), "-o", str(out), "--overwrite", *TINY]))
    assert "not a settings sidecar written by zoomdream" in err
    assert_intact(before)
    assert not out.exists()


def test_a_preset_named_like_the_sidecar_is_an_input(data, capsys):
    photo = data / "photo.png"
    preset = data / "o.png.yaml"
    preset.write_text("extends: default\nmeta: {zoomdream: my notes}\n")  # even one that looks like a sidecar
    before = snapshot(data)
    err = refused(capsys, main(["image", str(photo), "-o", str(data / "o.png"), "--overwrite", "--preset",
                                str(preset), *TINY]))
    assert "is the input" in err
    assert_intact(before)


def test_long_output_names(data, capsys):
    photo = data / "photo.png"
    limit = os.pathconf(data, "PC_NAME_MAX")
    too_long = data / ("x" * (limit - len(".png.yaml") + 1) + ".png")  # fits, but its sidecar would not
    before = snapshot(data)
    err = refused(capsys, main(["image", str(photo), "-o", str(too_long), *TINY]))
    assert "name too long" in err
    assert_intact(before)
    assert snapshot(data).keys() == before.keys()
    ok = data / ("y" * (limit - len(".png.yaml")) + ".png")  # the longest name whose sidecar still fits
    assert main(["image", str(photo), "-o", str(ok), *TINY]) == 0
    assert ok.is_file() and fileio.is_own_sidecar(str(ok) + ".yaml")
    assert_intact(before)
    assert sorted(set(snapshot(data)) - set(before)) == sorted([str(ok), str(ok) + ".yaml"])


# ---------------------------------------------------------------- resume identity by content
def _zoom(photo, out, *extra):
    return main(["zoom", str(photo), "-o", str(out), *ZOOM_TINY, *extra])


def test_replaced_guide_refuses_to_resume(data, tmp_path, capsys):
    photo = data / "photo.png"
    guide = tmp_path / "guide.png"
    save_image(guide, np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (48, 1, 3)))
    out = tmp_path / "z.mp4"
    assert _zoom(photo, out, "--guide", str(guide), "--keep-frames") == 0
    os.utime(guide, (1, 1))  # touched, same picture: the same input
    assert _zoom(photo, out, "--guide", str(guide), "--keep-frames", "--overwrite") == 0
    save_image(guide, np.full((48, 64, 3), 200, np.uint8))  # same path, another picture
    before = snapshot(tmp_path)
    err = refused(capsys, _zoom(photo, out, "--guide", str(guide), "--keep-frames", "--overwrite"))
    assert "guide file changed" in err and "--restart" in err
    assert_intact(before)
    assert _zoom(photo, out, "--guide", str(guide), "--overwrite", "--restart") == 0


def test_replaced_input_with_same_size_and_time_refuses_to_resume(tmp_path, capsys):
    a, b = np.full((48, 64, 3), 100, np.uint8), np.full((48, 64, 3), 101, np.uint8)
    photo = tmp_path / "p.png"
    save_image(photo, a)
    out = tmp_path / "z.mp4"
    assert _zoom(photo, out, "--keep-frames") == 0
    st = photo.stat()
    save_image(photo, b)
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert photo.stat().st_size == st.st_size  # same size, same time stamp: only the content differs
    err = refused(capsys, _zoom(photo, out, "--keep-frames", "--overwrite"))
    assert "input changed" in err


# ---------------------------------------------------------------- damaged caches
def test_damaged_cached_frames_are_dreamed_again(data, tmp_path):
    photo = data / "photo.png"
    ref, out = tmp_path / "ref.mp4", tmp_path / "z.mp4"
    assert _zoom(photo, ref) == 0
    assert _zoom(photo, out, "--keep-frames") == 0
    frames = sorted((tmp_path / ".z.mp4.zoomdream-work" / "frames").glob("*.png"))
    assert len(frames) == 4
    last = frames[-1].read_bytes()
    frames[-1].write_bytes(last[: len(last) // 2])  # half-written last frame
    mid = bytearray(frames[1].read_bytes())
    mid[40:200] = bytes(160)  # whole-looking (its IEND is there) but undecodable
    frames[1].write_bytes(bytes(mid))
    assert _zoom(photo, out, "--overwrite") == 0
    assert out.read_bytes() == ref.read_bytes()


def test_flow_cache_entries_that_are_not_right_are_misses(tmp_path):
    good = np.ones((12, 16, 2), np.float32)
    cache = FlowCache(tmp_path, "clip|dis|16x12")
    cache.put(1, good, good)
    assert cache.get(1, shape=(12, 16)) is not None
    assert cache.get(1, shape=(12, 17)) is None  # wrong shape for these frames
    np.save(cache.folder / "000002.npy", np.full((2, 12, 16, 2), np.nan, np.float16))
    assert cache.get(2, shape=(12, 16)) is None  # not finite
    np.save(cache.folder / "000003.npy", np.ones((2, 12, 16, 2), np.float64))
    assert cache.get(3, shape=(12, 16)) is None  # another dtype: not written by this version
    (cache.folder / "key.json").write_text('{"key": "someone else"}\n')  # a foreign folder
    foreign = FlowCache(tmp_path, "clip|dis|16x12")
    assert foreign.get(1) is None
    foreign.put(4, good, good)
    assert not (foreign.folder / "000004.npy").exists()  # and it is not written to


def test_poisoned_flow_cache_gives_the_same_video(data, tmp_path, monkeypatch):
    clip = data / "clip.mp4"
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOOMDREAM_CACHE", str(cache))
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert main(["video", str(clip), "-o", str(a), "--preview", "4", *VIDEO_TINY]) == 0
    entries = sorted(cache.rglob("0*.npy"))
    assert len(entries) == 3
    entries[0].write_bytes(b"garbage")
    np.save(entries[1], np.zeros((2, 5, 5, 2), np.float16))
    assert main(["video", str(clip), "-o", str(b), "--preview", "4", *VIDEO_TINY]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_stale_temporaries_are_swept_and_nothing_else(data, tmp_path):
    photo = data / "photo.png"
    out = tmp_path / "z.mp4"
    stale = [tmp_path / ".z.mp4.ab12cd_9.partial.mp4", tmp_path / ".z.mp4.yaml.qwertyui.partial.yaml"]
    for p in stale:
        p.write_bytes(b"left by a killed run")
    stale_dir = tmp_path / ".z.mp4.zzzzzzzz.partial"
    stale_dir.mkdir()
    (stale_dir / "000000.png").write_bytes(b"frame")
    mine = [tmp_path / ".z.mp4.notes", tmp_path / ".z.mp4.abc.partial.mp4", tmp_path / ".other.mp4.ab12cd_9.partial.mp4"]
    for p in mine:
        p.write_bytes(b"not zoomdream's temp")
    user_dir = tmp_path / ".z.mp4.yyyyyyyy.partial"
    user_dir.mkdir()
    (user_dir / "essay.txt").write_text("a folder that only looks like a temp")
    before = snapshot(data) | {str(p): p.read_bytes() for p in mine} | snapshot(user_dir)
    assert _zoom(photo, out) == 0
    assert not any(os.path.lexists(p) for p in [*stale, stale_dir])
    assert_intact(before)


def test_work_folder_path_taken_by_a_users_file_or_folder(data, tmp_path, capsys):
    photo = data / "photo.png"
    out = tmp_path / "z.mp4"
    work = tmp_path / ".z.mp4.zoomdream-work"
    work.write_text("a file of mine")
    before = snapshot(tmp_path)
    err = refused(capsys, _zoom(photo, out))
    assert "work folder" in err
    refused(capsys, _zoom(photo, out, "--restart"))
    assert_intact(before)
    work.unlink()
    work.mkdir()
    (work / "diary.txt").write_text("mine")  # a folder without zoomdream's manifest
    before = snapshot(tmp_path)
    refused(capsys, _zoom(photo, out, "--restart"))
    assert_intact(before)


# ---------------------------------------------------------------- one run per output
def test_a_second_run_of_the_same_output_is_refused(data, tmp_path, capsys):
    photo = data / "photo.png"
    out = tmp_path / "z.mp4"
    with fileio.output_lock(out):
        (tmp_path / ".z.mp4.abcdefgh.partial.mp4").write_bytes(b"the running render's temp")
        before = snapshot(tmp_path)
        err = refused(capsys, _zoom(photo, out))
        assert "another zoomdream run is writing this output" in err
        assert_intact(before)  # the running render's temp is not swept by the refused one
        refused(capsys, main(["image", str(photo), "-o", str(tmp_path / "z.mp4"), *TINY]))


def test_a_lock_left_by_a_killed_run_is_taken_over(data, tmp_path):
    photo = data / "photo.png"
    out = tmp_path / "z.mp4"
    code = ("import os, signal, sys; from zoomdream import fileio\n"
            "with fileio.output_lock(sys.argv[1]):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert (tmp_path / ".z.mp4.zoomdream-lock").exists()  # the killed run could not remove it
    assert _zoom(photo, out) == 0
    assert out.is_file() and not (tmp_path / ".z.mp4.zoomdream-lock").exists()


# ---------------------------------------------------------------- signals and child processes
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_process_creation_still_stops_the_child(data, monkeypatch, sig):
    """The signal lands just after the fork, before zoomdream holds the child: it must still be stopped."""
    real_popen = subprocess.Popen
    spawned = []

    def popen_then_signal(cmd, **kwargs):
        proc = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)  # a child that lingers
        spawned.append(proc)
        signal.raise_signal(sig)  # to this thread: a process-wide kill may land on another thread, handled late
        for _ in range(10000):  # ample bytecodes for a Python signal handler to run here, if it may
            pass
        return proc

    def on_term(signum, frame):
        raise Terminated()

    # the handlers a command has (pytest may run with SIGINT ignored, as a background job of a script does)
    old = {s: signal.signal(s, h) for s, h in ((signal.SIGTERM, on_term), (signal.SIGINT, signal.default_int_handler))}
    monkeypatch.setattr(subprocess, "Popen", popen_then_signal)
    try:
        with pytest.raises((Terminated, KeyboardInterrupt)):
            probe(data / "clip.mp4")
        assert len(spawned) == 1
        assert spawned[0].poll() is not None, "the child outlived the signal"
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for proc in spawned:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------- every refusal before anything is created
BIG_KEYFRAME = "1" + "0" * 399  # a frame number of 400 digits


@pytest.mark.parametrize("bad,fixed,named", [
    (["--step", "5+0*t"], ["--step", "0.5+0*t"], "(--step): '5+0*t' is 5 at frame 0; expected a number in 0..1"),
    (["--rotate", "1000+0*t"], ["--rotate", "100+0*t"], "(--rotate): '1000+0*t' is 1000 at frame 0"),
    (["--zoom", "1000+0*t"], ["--zoom", "1.1+0*t"], "(--zoom): '1000+0*t' is 1000 at frame 0"),
    (["--pan", "99999+0*t | 0"], ["--pan", "9+0*t | 0"], "(--pan) x: '99999+0*t' is 99999 at frame 0"),
    (["--step", "0:(0.01), 5:(5)"], ["--step", "0:(0.01), 5:(0.5)"], "--step: '0:(0.01), 5:(5)' is 1.008 at frame 1"),
    (["--step", "0.2*t"], ["--step", "0.2*t/n"], "(--step): '0.2*t' is 1.2 at frame 6"),  # 12 frames: late
    (["--colour-lock", "t"], ["--colour-lock", "t/n"], "(--colour-lock): 't' is 2 at frame 2"),
    (["--layers", "block3_conv1=5000+0*t"], ["--layers", "block3_conv1=50+0*t"],
     "(--layers) block3_conv1: '5000+0*t' is 5000 at frame 0; expected a number in -1000..1000"),
    (["--zoom", f"0:(1), {BIG_KEYFRAME}:(2)"], ["--zoom", "0:(1), 10:(2)"],
     "--zoom: keyframe 100000000000... (400 digits): frames must be integers in 0..1000000"),
    (["--size", "16x16"], ["--size", "32x32"], "16x16 px; the model vgg16-hed needs at least 32 px on each side"),
], ids=["step", "rotate", "zoom", "pan", "step-keyframes", "step-late", "colour-lock", "layer-weight",
        "huge-keyframe", "size"])
def test_a_refused_zoom_leaves_nothing_and_the_corrected_command_runs(data, tmp_path, capsys, bad, fixed, named):
    """Each value at each frame is held to its setting's own range (as a constant would be), the network's
    minimum size is known up front: refused in one line naming the flag (and the first bad frame), exit 2,
    with nothing created; then the corrected command renders."""
    photo = data / "photo.png"
    out = data / "z.mp4"
    before = snapshot(data)
    err = refused(capsys, _zoom(photo, out, "--frames", "12", *bad))
    assert named in err, err
    assert_intact(before)
    assert snapshot(data).keys() == before.keys()  # no work folder, no temp, no lock left
    assert _zoom(photo, out, "--frames", "3", *fixed) == 0
    assert out.is_file() and not [p for p in os.listdir(data) if "zoomdream" in p]


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory):
    """Clips too small for the network, a sound file, and folders of frames with an odd member."""
    folder = tmp_path_factory.mktemp("odd")
    ff = [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi"]
    for name, size in (("tiny.mkv", "1x1"), ("wide.mkv", "10000x10")):
        subprocess.run([*ff, "-i", f"testsrc=size={size}:rate=10:duration=0.3", "-c:v", "ffv1", str(folder / name)],
                       check=True)
    subprocess.run([*ff, "-i", "sine=d=1", str(folder / "sound.wav")], check=True)
    return folder


def _frames_folder(folder: Path, sizes, *, damage=None) -> Path:
    folder.mkdir()
    for i, (w, h) in enumerate(sizes):
        save_image(folder / f"{i:03d}.png", np.full((h, w, 3), 40 * i, np.uint8))
    if damage == "cut short":
        last = folder / f"{len(sizes) - 1:03d}.png"
        last.write_bytes(last.read_bytes()[:-20])
    elif damage == "empty":
        (folder / f"{len(sizes) - 1:03d}.png").write_bytes(b"")
    return folder


@pytest.mark.parametrize("case", ["1x1 clip", "10000x10 clip", "sound as mask", "mixed sizes", "cut-short member",
                                  "empty member"])
def test_a_refused_video_leaves_nothing_and_the_corrected_command_runs(data, odd_inputs, case, capsys):
    """Found up front, before the work folder: the network's minimum size, a mask without pictures, a folder
    of frames whose members differ in size or are damaged (checked by their headers, not decoded)."""
    clip, mask = data / "clip.mp4", None
    if case == "1x1 clip":
        source = odd_inputs / "tiny.mkv"
    elif case == "10000x10 clip":
        source = odd_inputs / "wide.mkv"
    elif case == "sound as mask":
        source, mask = clip, odd_inputs / "sound.wav"
    else:
        damage = {"cut-short member": "cut short", "empty member": "empty"}.get(case)
        sizes = [(64, 48), (72, 48), (64, 48)] if case == "mixed sizes" else [(64, 48)] * 3
        source = _frames_folder(data / "frames", sizes, damage=damage)
    out = data / "v.mp4"
    before = snapshot(data)
    extra = ["--mask", str(mask)] if mask else []
    err = refused(capsys, main(["video", str(source), "-o", str(out), "--preview", "2", *VIDEO_TINY, *extra]))
    assert {"1x1 clip": "1x1 px", "10000x10 clip": "10000x10 px", "sound as mask": "mask: ",
            "mixed sizes": "72x48, expected 64x48", "cut-short member": "002.png: image is truncated",
            "empty member": "002.png: image is an empty file"}[case] in err, err
    assert_intact(before)
    assert snapshot(data).keys() == before.keys()
    if case == "sound as mask":
        extra = ["--mask", str(data / "photo.png")]
    elif source.is_dir():
        _frames_folder(data / "fixed", [(64, 48)] * 3)
        source = data / "fixed"
    else:
        source = clip
    assert main(["video", str(source), "-o", str(out), "--preview", "2", *VIDEO_TINY, *extra]) == 0
    assert out.is_file() and not [p for p in os.listdir(data) if "zoomdream" in p]


@pytest.mark.parametrize("where", ["building the network", "before frame 0"])
def test_ctrl_c_before_the_first_frame_leaves_nothing(data, tmp_path, monkeypatch, capsys, where):
    """Ctrl-C after the work folder was made but before a frame was finished: the folder goes, the message
    says nothing was written (and it is so), and the same command then runs afresh."""
    from zoomdream.render import zoom

    photo = data / "photo.png"
    out = tmp_path / "z.mp4"
    before = snapshot(tmp_path)
    if where == "building the network":
        real = zoom.ZoomLoop

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(zoom, "ZoomLoop", interrupted)
        assert _zoom(photo, out) == 130
        assert capsys.readouterr().err.strip() == "zoomdream: interrupted; nothing was written"
        monkeypatch.setattr(zoom, "ZoomLoop", real)
    else:
        with pytest.raises(Interrupted, match="^interrupted before the first frame was finished; nothing was written$"):
            zoom.render_zoom(photo, out, settings=zoom_settings(), on_frame=ctrl_c_at(0))
    assert snapshot(tmp_path) == before  # no work folder, no lock
    assert _zoom(photo, out) == 0 and out.is_file()


def zoom_settings():
    from zoomdream.cli import build_parser, resolve_settings

    return resolve_settings(build_parser().parse_args(["zoom", "x", "-o", "y.mp4", *ZOOM_TINY]))


def ctrl_c_at(k: int):
    def on_frame(done: int):
        if done == k:
            raise KeyboardInterrupt

    return on_frame
