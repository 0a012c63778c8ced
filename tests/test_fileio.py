"""fileio on its own: atomic writes, the output checks, the per-output lock and the sweep of stale temporaries.

The end-to-end versions (through the CLI, with renders) are in test_safety.py.
"""

import os

import pytest

from zoomdream import fileio
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import (
    FOLDER_MARKER,
    PARTIAL_TAG,
    OutputKind,
    atomic_path,
    check_output_path,
    output_lock,
    sidecar_path,
    sweep_temps,
    write_bytes_atomic,
)

from conftest import names_in


def test_atomic_path_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(f"{PARTIAL_TAG}.png")  # keeps the extension
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # nothing replaced before the block ends
    assert target.read_bytes() == b"new"
    assert names_in(tmp_path) == ["out.png"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_leaves_nothing_on_failure(tmp_path, error):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the user's")
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a video")
            raise error()
    assert target.read_bytes() == b"the user's"
    assert names_in(tmp_path) == ["out.mp4"]
    new = tmp_path / "new.mp4"
    with pytest.raises(RuntimeError), atomic_path(new):
        raise RuntimeError
    assert not new.exists() and names_in(tmp_path) == ["out.mp4"]


def test_write_bytes_atomic_into_a_missing_folder_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "x.yaml"
    with pytest.raises(ZoomdreamError, match=rf"{path}: cannot write"):
        write_bytes_atomic(path, b"x")


def test_check_output_path_accepts_a_new_file_and_leaves_no_probe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = check_output_path("z.mp4", inputs=[None, ""])
    assert out == tmp_path / "z.mp4" and out.is_absolute()
    assert names_in(tmp_path) == []  # the write probe is gone


@pytest.mark.parametrize("case, problem", [
    ("empty", "output path is empty"),
    ("no parent", "does not exist"),
    ("exists", "output already exists; pass --overwrite"),
    ("is the input", "output is the input"),
    ("holds the input", "output is a folder holding the input"),
    ("inside the input folder", "output lies inside the input folder"),
    ("sidecar exists", "settings sidecar already exists"),
])
def test_check_output_path_refusals(tmp_path, case, problem):
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    photo.write_bytes(b"png")
    out, inputs = tmp_path / "out.png", [photo]
    if case == "empty":
        out = " "
    elif case == "no parent":
        out = tmp_path / "missing" / "out.png"
    elif case == "exists":
        out.write_bytes(b"mine")
    elif case == "is the input":
        out = photo
    elif case == "holds the input":
        out = photo.parent
    elif case == "inside the input folder":
        inputs = [photo.parent]
        out = photo.parent / "out.png"
    elif case == "sidecar exists":
        sidecar_path(out).write_text("notes: mine\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ZoomdreamError, match=problem):
        check_output_path(out, inputs=inputs)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_overwrite_replaces_only_what_zoomdream_writes(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ZoomdreamError, match="not of a kind zoomdream writes"):
        check_output_path(notes, OutputKind(kinds=(".png", ".jpg")), overwrite=True)
    folder = tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(ZoomdreamError, match="output exists and is a folder"):
        check_output_path(folder, overwrite=True)
    with pytest.raises(ZoomdreamError, match="was not written by zoomdream"):
        check_output_path(folder, OutputKind(folder=True), overwrite=True)
    with pytest.raises(ZoomdreamError, match="output exists and is a file"):
        check_output_path(notes, OutputKind(folder=True), overwrite=True)
    (folder / FOLDER_MARKER).write_text(fileio.FOLDER_MARKER_TEXT)
    (folder / "000000.png").write_bytes(b"frame")
    assert check_output_path(folder, OutputKind(folder=True, sidecar=False), overwrite=True) == folder
    side = sidecar_path(tmp_path / "a.png")
    side.write_text("a: user's yaml\n")
    with pytest.raises(ZoomdreamError, match="is not a settings sidecar written by zoomdream"):
        check_output_path(tmp_path / "a.png", overwrite=True)
    assert notes.read_text() == "mine" and side.read_text() == "a: user's yaml\n"


def test_output_lock_is_one_hidden_file_removed_afterwards_even_on_error(tmp_path):
    out = tmp_path / "z.mp4"
    with output_lock(out) as lock:
        assert lock == tmp_path / f".z.mp4{fileio.LOCK_SUFFIX}"
        assert lock.read_text() == f"zoomdream pid {os.getpid()}\n"
    assert names_in(tmp_path) == []
    with pytest.raises(ValueError), output_lock(out):
        raise ValueError
    assert names_in(tmp_path) == []


def test_sweep_temps_removes_the_exact_temp_names_and_reports_them(tmp_path):
    out = tmp_path / "z.mp4"
    stale = [".z.mp4.ab12cd_9.partial.mp4", ".z.mp4.yaml.qwertyui.partial.yaml", ".z.mp4.k2k2k2k2.partial.mp4.old"]
    kept = [".z.mp4.short.partial.mp4", ".y.mp4.ab12cd_9.partial.mp4", "z.mp4"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    frames = tmp_path / ".z.mp4.zzzzzzzz.partial"  # a frame-folder temp: swept
    frames.mkdir()
    (frames / "000000.png").write_bytes(b"frame")
    essay = tmp_path / ".z.mp4.yyyyyyyy.partial"  # looks like one but holds something else: kept
    essay.mkdir()
    (essay / "essay.txt").write_text("mine")
    assert sorted(sweep_temps(out)) == sorted(stale + [frames.name])
    assert names_in(tmp_path) == sorted(kept + [essay.name])
    assert sweep_temps(tmp_path / "gone" / "z.mp4") == []  # no such folder: nothing to do
