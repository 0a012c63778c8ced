"""The command line end to end: stills, sheets, listings, and every bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import yaml

from zoomdream.cli import main
from zoomdream.settings import presets

from conftest import FFMPEG, names_in

TINY = ["--octaves", "1", "--iterations", "2", "--layers", "block3b_add=1", "--precision", "fp32", "-q"]  # on the default model


@pytest.fixture()
def small_jpg(tmp_path, photo):
    from zoomdream.media.images import save_image

    path = tmp_path / "small photo.jpg"
    save_image(path, photo)
    return path


def test_image_end_to_end_with_reproducible_sidecar(tmp_path, small_jpg, capsys):
    from zoomdream.media.images import load_image

    out = tmp_path / "dream.png"
    assert main(["image", str(small_jpg), "-o", str(out), *TINY, "--seed", "3"]) == 0
    first = out.read_bytes()
    side = tmp_path / "dream.png.yaml"
    meta = yaml.safe_load(side.read_text())["meta"]
    assert meta["zoomdream"] and meta["tensorflow"] and meta["weights"].startswith("bundled")
    assert load_image(out).shape == load_image(small_jpg).shape
    # The sidecar is a preset: dreaming again from it gives the same bytes.
    again = tmp_path / "again.png"
    assert main(["image", str(small_jpg), "-o", str(again), "--preset", str(side), "-q"]) == 0
    assert again.read_bytes() == first
    assert presets.load_preset(side).dream.seed == 3
    assert not [n for n in names_in(tmp_path) if "partial" in n]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a temp file


def test_existing_output_needs_overwrite(tmp_path, small_jpg, capsys):
    out = tmp_path / "dream.png"
    out.write_bytes(b"keep me")
    assert main(["image", str(small_jpg), "-o", str(out), *TINY]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["image", str(small_jpg), "-o", str(out), *TINY, "--overwrite"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def _bomb(path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 61))
                     + chunk(b"IEND", b""))


BAD_INPUTS = {
    "missing": (lambda d: d / "nope.jpg", "not found"),
    "directory": (lambda d: (d / "adir.jpg").mkdir() or d / "adir.jpg", "directory"),
    "not an image": (lambda d: (d / "text.jpg").write_text("hello") and d / "text.jpg", "not an image"),
    "empty": (lambda d: (d / "empty.png").write_bytes(b"") or d / "empty.png", "empty"),
    "truncated": (None, "truncated"),
    "bomb": (lambda d: _bomb(d / "bomb.png") or d / "bomb.png", "20000x20000"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path, small_jpg, capsys):
    make, words = BAD_INPUTS[case]
    if case == "truncated":
        src = tmp_path / "trunc.jpg"
        src.write_bytes(small_jpg.read_bytes()[:400])
    else:
        src = make(tmp_path)
    outdir = tmp_path / "out"
    outdir.mkdir()
    code = main(["image", str(src), "-o", str(outdir / "dream.png"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("zoomdream: error: ") and "Traceback" not in err[0]
    assert src.name in err[0] and words in err[0]
    assert names_in(outdir) == []


@pytest.mark.parametrize("case", ["missing folder", "same as input", "bad extension", "unwritable folder"])
def test_bad_output_is_exit_2(case, tmp_path, small_jpg, capsys, monkeypatch):
    if case == "missing folder":
        out = tmp_path / "no" / "such" / "dream.png"
    elif case == "same as input":
        out = small_jpg
    elif case == "bad extension":
        out = tmp_path / "dream.xyz"
    else:
        out = tmp_path / "ro" / "dream.png"
        out.parent.mkdir()
        import tempfile

        real = tempfile.mkstemp

        def refuse(*a, dir=None, **k):  # root ignores mode bits: simulate a read-only folder
            if dir is not None and str(dir) == str(out.parent):
                raise PermissionError(13, "Permission denied")
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = small_jpg.read_bytes()
    code = main(["image", str(small_jpg), "-o", str(out), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and out.name in err[0]
    assert small_jpg.read_bytes() == before
    if case != "same as input":
        assert not out.exists()


def test_sheet_makes_a_labelled_grid(tmp_path, small_jpg):
    from zoomdream.media.images import load_image

    out = tmp_path / "sheet.png"
    code = main(["sheet", str(small_jpg), "-o", str(out), "--sheet-layers", "block2b_add,block3b_add,block4a_expand_activation",
                 "--cell", "64", "--octaves", "1", "--iterations", "2", "--precision", "fp32", "-q"])
    assert code == 0
    sheet = load_image(out)
    assert sheet.shape == (2 * 48, 4 * 64, 3) or sheet.shape == (48, 4 * 64, 3)
    cells = [sheet[:48, i * 64:(i + 1) * 64].astype(int) for i in range(4)]
    for a in range(4):  # every cell differs from every other: each layer dreams its own way
        for b in range(a + 1, 4):
            assert np.abs(cells[a] - cells[b]).mean() > 1.0


def test_presets_and_layers_listings(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(presets.bundled_presets()) and any(line.startswith("default ") for line in lines)
    assert main(["layers", "--model", "vgg16-hed"]) == 0
    out = capsys.readouterr().out
    assert "block4_conv3" in out and "512 channels" in out
    assert main(["layers", "--model", "efficientnet-lite0"]) == 0
    out = capsys.readouterr().out
    assert "# interesting: block3b_add, block4c_add, block5a_expand_activation, block5c_expand_activation" in out and "\nblock5c_add " in out and "112 channels" in out
    assert main(["presets", "--show", "inception-classic"]) == 0
    assert "mixed5: 2.0" in capsys.readouterr().out


def _run(args, **kw):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([sys.executable, "-m", "zoomdream", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kw)


def test_help_and_listings_never_import_tensorflow():
    code = ("import sys; from zoomdream.cli import main\n"
            "for argv in (['presets'], ['layers'], ['layers', '--model', 'vgg16'],\n"
            "             ['layers', '--model', 'efficientnet-lite0']):\n"
            "    assert main(argv) == 0\n"
            "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_python_dash_m_help_and_usage_errors():
    r = _run(["--help"])
    assert r.returncode == 0 and "image" in r.stdout and "zoom" in r.stdout and "video" in r.stdout
    r = _run(["image"])
    assert r.returncode == 2 and "usage" in r.stderr


def test_dreaming_prints_no_library_log_spam(tmp_path, small_jpg):
    out = tmp_path / "o.png"
    r = _run(["image", str(small_jpg), "-o", str(out), *TINY])
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "" and r.stdout.strip() == ""
    assert out.exists()


# ---------------------------------------------------------------- schedule forms and notes
VGG = ["--model", "vgg16-hed", "--octaves", "1", "--iterations", "1", "--precision", "fp32", "--jitter", "2"]


@pytest.mark.parametrize("weights,expected", [
    ("block3_conv1=max(0.5, 0.1*t)", {"block3_conv1": "max(0.5, 0.1*t)"}),
    ("block3_conv1=0:(1), 5:(2)", {"block3_conv1": "0:(1), 5:(2)"}),
    ("block3_conv1=0:(1), 5:(max(1, 2)); smooth, block2_conv2=clip(t, 0, 1), block4_conv1",
     {"block3_conv1": "0:(1), 5:(max(1, 2)); smooth", "block2_conv2": "clip(t, 0, 1)", "block4_conv1": 1.0}),
])
def test_layer_weights_may_hold_commas(tmp_path, small_jpg, weights, expected):
    """A comma inside parentheses, or before a keyframe, belongs to the weight; the render then runs."""
    from zoomdream.cli import build_parser, resolve_settings

    args = build_parser().parse_args(["zoom", str(small_jpg), "-o", "z.mp4", "--layers", weights, *VGG])
    assert dict(resolve_settings(args).dream.layers) == expected
    out = tmp_path / "z.mp4"
    assert main(["zoom", str(small_jpg), "-o", str(out), "--layers", weights, "--frames", "6", "-q", *VGG]) == 0
    assert out.is_file()


def test_a_preset_of_keyframe_maps_and_layer_expressions_renders(tmp_path, small_jpg):
    preset = tmp_path / "mine.yaml"
    preset.write_text("model: vgg16-hed\nlayers: {block3_conv1: 1.0}\nstep: {0: 0.01, 10: 0.02}\n"
                      "zoom:\n  colour_lock: {0: 0.2, 4: 0.6}\n"
                      "  layers: {0: {block3_conv1: 1.0}, 4: {block3_conv1: '0.5 + 0.1*t', block4_conv1: 1}}\n")
    out = tmp_path / "z.mp4"
    assert main(["zoom", str(small_jpg), "-o", str(out), "--preset", str(preset), "--frames", "6", "-q",
                 "--octaves", "1", "--iterations", "1", "--precision", "fp32"]) == 0
    assert out.is_file()


def test_a_flag_without_effect_gets_a_note(tmp_path, small_jpg, capsys):
    """``--border`` that leaves nothing of the layer at this size, ``--fps`` on a video file: a note, not silence."""
    out = tmp_path / "b.png"
    assert main(["image", str(small_jpg), "-o", str(out), "--border", "2", "--layers", "block5_conv3=1", *VGG]) == 0
    err = capsys.readouterr().err
    assert "note: --border 2 leaves nothing of layer block5_conv3 at 64x48 px (its map is 4x3 cells)" in err, err
    assert main(["image", str(small_jpg), "-o", str(tmp_path / "c.png"), "--border", "1", "--layers",
                 "block3_conv1=1", *VGG]) == 0
    assert "--border" not in capsys.readouterr().err  # a border that leaves cells: no note
    clip = tmp_path / "clip.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10:duration=0.3", "-c:v", "libx264", str(clip)], check=True)
    assert main(["video", str(clip), "-o", str(tmp_path / "v.mp4"), "--iterations", "0", "--fps", "12"]) == 0
    err = capsys.readouterr().err
    assert "note: --fps 12 has no effect on a video file (it is the rate of a folder of images): clip.mp4 plays at " \
           "its own 10 fps" in err, err
