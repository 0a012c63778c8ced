"""Every output a command writes obeys the output rules, and outputs that belong together appear together.

The `audio` command's CSV is held to the same rules as its picture (kinds zoomdream writes, never an
input, never another output of the same command); an output and its settings sidecar are published
together or not at all. Each refusal leaves every file byte for byte as it was (``snapshot``).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_safety import assert_intact, refused, snapshot

from zoomdream import fileio
from zoomdream.cli import main
from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import save_image

from conftest import clicks_expr, lavfi_audio

ZOOM_MOTION_ONLY = ["--iterations", "0", "--frames", "3", "--fps", "12", "--size", "48x32", "-q"]


@pytest.fixture()
def home(tmp_path):
    """A user's folder: a short song, a photo and notes of their own."""
    folder = tmp_path / "home"
    folder.mkdir()
    lavfi_audio(folder / "song.wav", clicks_expr((0.25, 0.75)), 1.0)
    save_image(folder / "photo.png", np.full((32, 48, 3), 120, np.uint8))
    (folder / "notes.txt").write_text("mine\n")
    return folder


@pytest.mark.parametrize("csv,why", [("photo.png", "not of a kind"), ("notes.txt", "not of a kind"),
                                     ("c.png", "another output of this command"), ("song.wav", "is the input")])
def test_audio_csv_obeys_the_output_rules(home, capsys, csv, why):
    before = snapshot(home)
    for extra in ([], ["--overwrite"]):
        err = refused(capsys, main(["audio", str(home / "song.wav"), "-o", str(home / "c.png"),
                                    "--csv", str(home / csv), *extra]))
        assert why in err
        assert_intact(before)
        assert snapshot(home).keys() == before.keys()
    # the corrected command writes both
    assert main(["audio", str(home / "song.wav"), "-o", str(home / "c.png"), "--csv", str(home / "c.csv")]) == 0
    assert (home / "c.csv").read_text().startswith("frame,seconds,")
    assert_intact(before)


def test_an_output_must_not_be_another_outputs_sidecar(tmp_path):
    out = fileio.check_output_path(tmp_path / "a.png")
    with pytest.raises(ZoomdreamError, match="another output of this command"):
        fileio.check_output_path(tmp_path / "a.png.yaml", others=(out, fileio.sidecar_path(out)))
    with pytest.raises(ZoomdreamError, match="settings sidecar would overwrite"):
        fileio.check_output_path(tmp_path / "b.png", others=(tmp_path / "b.png.yaml",))


@pytest.mark.parametrize("name", ["z.mp4", "frames"])
def test_output_and_sidecar_appear_together_or_not_at_all(home, monkeypatch, capsys, name):
    """A full disk while the sidecar is written: no output is published, and the same command then succeeds."""
    out = home / name
    cmd = ["zoom", str(home / "photo.png"), "-o", str(out), *ZOOM_MOTION_ONLY]
    real = fileio.write_bytes_atomic

    def full_disk(path, data):
        if str(path).endswith(".yaml"):
            raise ZoomdreamError(f"{path}: cannot write (No space left on device)")
        return real(path, data)

    monkeypatch.setattr(fileio, "write_bytes_atomic", full_disk)
    before = snapshot(home)
    err = refused(capsys, main(cmd))
    assert "No space left" in err
    assert not out.exists() and not fileio.sidecar_path(out).exists()
    assert_intact(before)
    assert not [p for p in home.iterdir() if fileio.PARTIAL_TAG in p.name]
    monkeypatch.setattr(fileio, "write_bytes_atomic", real)
    assert main(cmd) == 0
    assert out.exists() and fileio.is_own_sidecar(fileio.sidecar_path(out))


def test_published_together_undoes_a_half_done_publication(tmp_path, monkeypatch):
    """When the second rename fails, the first output gets back what it held, and no temp is left."""
    a, b = tmp_path / "a.png", tmp_path / "a.png.yaml"
    a.write_bytes(b"old picture")
    real = fileio.os.replace

    def failing(src, dst, *args, **kwargs):
        if str(dst) == str(b):
            raise OSError(28, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "replace", failing)
    with pytest.raises(ZoomdreamError, match="nothing was published"), fileio.published_together():
        fileio.write_bytes_atomic(a, b"new picture")
        fileio.write_bytes_atomic(b, b"meta: {zoomdream: x}\n")
    assert a.read_bytes() == b"old picture" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
