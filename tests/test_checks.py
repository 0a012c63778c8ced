"""Up-front checks: hostile preset files, every named file, and the disk and memory budgets.

Each refusal is exit 2 with one line naming the file (or saying what the render needs and
what there is), no traceback, and nothing written in the output folder, work folder and
flow cache included. Cases that could hang (a FIFO) run in a subprocess with a timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import namedtuple

import pytest

from zoomdream import checks
from zoomdream.cli import main
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import presets

from clips import make_clip
from conftest import names_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoomdream: error: "), err
    assert "Traceback" not in err[0] and len(err[0]) < 500
    return err[0]


@pytest.fixture()
def outdir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def _run_cli(args, timeout=60):
    """`python -m zoomdream ...` in a child: a hang fails the test (TimeoutExpired) instead of blocking it."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "zoomdream", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- hostile preset files
def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb": (lambda d: _write(d, "bomb.yaml", _alias_bomb()), "aliases (*name) are not allowed"),
    "small alias bomb": (lambda d: _write(d, "small.yaml", _alias_bomb(6)), "aliases (*name) are not allowed"),
    "one alias": (lambda d: _write(d, "alias.yaml", "layers: &l {block4_conv3: 1.0}\nzoom: {layers: {0: *l}}\n"),
                  "aliases"),
    "deep flow nesting": (lambda d: _write(d, "deep.yaml", "layers: " + "[" * 5000 + "]" * 5000 + "\n"),
                          "nested deeper than"),
    "deep block nesting": (lambda d: _write(d, "deep2.yaml", "".join(" " * i + f"k{i}:\n" for i in range(200))),
                           "nested deeper than"),
    "huge file": (lambda d: _write(d, "huge.yaml", "# " + "x" * (2 << 20) + "\n"), "over the 256 KiB limit"),
    "huge integer": (lambda d: _write(d, "int.yaml", "jitter: " + "9" * 10000 + "\n"), "thousands of digits"),
    "long value": (lambda d: _write(d, "long.yaml", "model: " + "m" * 100000 + "\n"), "model: expected at most"),
    "long unknown key": (lambda d: _write(d, "key.yaml", "k" * 1000 + ": 1\n"), "unknown key"),
    "binary": (lambda d: (d / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage") and d / "bin.yaml", "not UTF-8"),
    "folder": (lambda d: (d / "dir.yaml").mkdir() or d / "dir.yaml", "is a directory"),
    "/dev/zero": (lambda d: "/dev/zero", "not a regular file"),
    "missing": (lambda d: d / "nope.yaml", "preset file not found"),
    "python tag": (lambda d: _write(d, "tag.yaml", "step: !!python/object/apply:os.system [echo hi]\n"),
                   "invalid YAML"),
}


def _write(folder, name, text):
    p = folder / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_preset_is_refused_in_one_bounded_line(case, tmp_path, outdir, capsys, sample_path):
    make, words = HOSTILE[case]
    preset = make(tmp_path)
    assert main(["image", str(sample_path), "-o", str(outdir / "o.png"), "--preset", str(preset), "-q"]) == 2
    line = _one_error_line(capsys)
    assert words in line and os.path.basename(str(preset)) in line
    assert names_in(outdir) == []


def test_a_fifo_preset_is_refused_without_opening_it(tmp_path, outdir, sample_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would block forever
    r = _run_cli(["image", str(sample_path), "-o", str(outdir / "o.png"), "--preset", str(fifo), "-q"])
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "fifo.yaml: preset file is not a regular file" in err[0]
    r = _run_cli(["presets", "--show", str(fifo)])
    assert r.returncode == 2 and "not a regular file" in r.stderr
    assert names_in(outdir) == []


def test_an_extends_chain_is_bounded(tmp_path):
    for i in range(40):
        _write(tmp_path, f"p{i}.yaml", f"extends: p{i + 1}.yaml\n" if i < 39 else "iterations: 3\n")
    with pytest.raises(ZoomdreamError, match="'extends' chain longer than"):
        presets.load_preset(tmp_path / "p0.yaml")


def test_read_text_refuses_a_name_swapped_for_a_fifo_after_the_stat(tmp_path, monkeypatch):
    """The open is non-blocking and fstat'ed: a FIFO that appears between stat and open is refused, not waited on."""
    target = tmp_path / "swap.yaml"
    os.mkfifo(target)
    real_stat = os.stat
    Fake = namedtuple("Fake", "st_mode st_size")
    calls = []

    def first_stat_lies(path, *a, **k):
        st = real_stat(path, *a, **k)
        if str(path) == str(target) and not calls:
            calls.append(path)
            return Fake(0o100644, 10)  # "a regular file" (then swapped for the FIFO)
        return st

    monkeypatch.setattr(os, "stat", first_stat_lies)
    with pytest.raises(ZoomdreamError, match="not a regular file"):
        presets.read_text(target)


# ---------------------------------------------------------------- every file a command names
def _fifo(d, name):
    p = d / name
    os.mkfifo(p)
    return p


KINDS = {
    "missing": (lambda d, n: d / n, "not found"),
    "folder": (lambda d, n: (d / n).mkdir() or d / n, "is a directory"),
    "device": (lambda d, n: "/dev/zero", "not a regular file"),
}
ROLES = {  # role -> (command, flag or None for the input, file name, words naming the role)
    "input": ("image", None, "in.jpg", "input"),
    "guide": ("image", "--guide", "guide.jpg", "guide image"),
    "weights": ("image", "--weights", "w.weights.h5", "weights file"),
    "mask": ("video", "--mask", "mask.png", "mask"),
    "audio": ("zoom", "--audio", "song.wav", "audio file"),
    "preset": ("image", "--preset", "p.yaml", "preset"),
}


def _argv(role, path, sample_path, outdir):
    command, flag, _, _ = ROLES[role]
    out = outdir / ("o.png" if command == "image" else "o.mp4")
    if flag is None:
        return [command, str(path), "-o", str(out), "-q"]
    return [command, str(sample_path), "-o", str(out), flag, str(path), "-q"]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("role", list(ROLES))
def test_every_named_file_is_checked_up_front(role, kind, tmp_path, outdir, capsys, sample_path):
    make, words = KINDS[kind]
    path = make(tmp_path, ROLES[role][2])
    assert main(_argv(role, path, sample_path, outdir)) == 2
    line = _one_error_line(capsys)
    assert os.path.basename(str(path)) in line and words in line
    if role != "preset" and kind != "folder":
        assert ROLES[role][3] in line
    assert names_in(outdir) == []


@pytest.mark.parametrize("role", [r for r in ROLES if r != "preset"])
def test_a_fifo_named_anywhere_is_refused_without_blocking(role, tmp_path, outdir, sample_path):
    path = _fifo(tmp_path, ROLES[role][2])
    r = _run_cli(_argv(role, path, sample_path, outdir))
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and path.name in err[0] and "not a regular file" in err[0], err
    assert names_in(outdir) == []


def test_a_video_input_may_be_a_folder_of_frames_but_not_a_fifo(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    assert checks.check_file(frames, "input", folder_ok=True) == frames
    with pytest.raises(ZoomdreamError, match="input is not a regular file"):
        checks.check_file(_fifo(tmp_path, "f.mp4"), "input", folder_ok=True)


# ---------------------------------------------------------------- budgets
Usage = namedtuple("Usage", "total used free")


@pytest.fixture()
def small_disk(monkeypatch):
    free = {"bytes": 50 << 20}
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(1 << 40, (1 << 40) - free["bytes"], free["bytes"]))
    return free


def test_a_zoom_whose_frames_cannot_fit_on_disk_is_refused_before_it_starts(outdir, capsys, sample_path, small_disk):
    assert main(["zoom", str(sample_path), "-o", str(outdir / "z.mp4"), "--frames", "500", "--size", "640x480"]) == 2
    line = _one_error_line(capsys)
    assert "500 frames of 640x480 need about 412.7 MB of disk" in line and "52.4 MB is free" in line
    assert names_in(outdir) == []  # no work folder either


def test_a_billion_frames_are_refused_by_the_bound_and_a_million_by_the_disk(outdir, capsys, sample_path,
                                                                            small_disk):
    with pytest.raises(SystemExit) as info:
        main(["zoom", str(sample_path), "-o", str(outdir / "z.mp4"), "--frames", "1000000000"])
    assert info.value.code == 2 and "argument --frames: expected an integer in 1..1000000" in capsys.readouterr().err
    small_disk["bytes"] = 100 << 30  # 100 GB free: a million frames of the photo still need more
    assert main(["zoom", str(sample_path), "-o", str(outdir / "z.mp4"), "--frames", "1000000"]) == 2
    assert "1000000 frames of" in _one_error_line(capsys)
    assert names_in(outdir) == []


def test_frames_that_cannot_fit_in_memory_are_refused(outdir, capsys, sample_path, monkeypatch):
    monkeypatch.setattr(checks, "available_memory", lambda: 4 << 30)
    assert main(["zoom", str(sample_path), "-o", str(outdir / "z.mp4"), "--size", "16384x16384"]) == 2
    line = _one_error_line(capsys)
    assert "16384x16384 frames need about 69.5 GB of memory and 4.3 GB is available" in line
    assert names_in(outdir) == []


def test_a_video_that_cannot_fit_is_refused_before_the_work_folder_and_flow_cache(tmp_path, outdir, capsys,
                                                                                   small_disk, _isolated_cache):
    clip = make_clip("basic", tmp_path)  # 20 frames of 320x240
    small_disk["bytes"] = 3 << 20
    flow = _isolated_cache / "flow"
    before = sorted(os.listdir(flow)) if flow.exists() else []
    assert main(["video", str(clip), "-o", str(outdir / "v.mp4"), "-q"]) == 2
    line = _one_error_line(capsys)
    assert "20 frames of 320x240 need about" in line and "3.1 MB is free" in line
    assert names_in(outdir) == []
    assert (sorted(os.listdir(flow)) if flow.exists() else []) == before


def test_budget_counts_only_frames_still_to_render(tmp_path, small_disk):
    work = tmp_path / "frames"
    work.mkdir()
    for i in range(90):
        (work / f"{i:06d}.png").write_bytes(b"")
    small_disk["bytes"] = 100 << 20  # room for ~10 + the reserve of 100x(640x480) frames
    with pytest.raises(ZoomdreamError, match="100 frames of 640x480"):
        checks.check_budget(tmp_path / "o.mp4", frames=100, size=(640, 480))
    checks.check_budget(tmp_path / "o.mp4", frames=100, size=(640, 480), work_frames=work)  # 10 left: fits


def test_frame_size_follows_max_size():
    assert checks.frame_size((1920, 1080), 960) == (960, 540)
    assert checks.frame_size((320, 240), 960) == (320, 240)
    assert checks.frame_size((320, 240), None) == (320, 240)


def test_available_memory_is_a_positive_number_here():
    mem = checks.available_memory()  # Linux: /proc/meminfo is always there
    assert isinstance(mem, int) and mem > 0
