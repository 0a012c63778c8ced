"""Stills: one dreamed photo (``render_image``), a sheet of one dream per layer (``render_sheet``),
and the picture of a soundtrack's features (``render_audio_features``).

Convention: images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from zoomdream.audio import analyse, frame_features, plot_features, write_csv
from zoomdream.backbones import load_backbone
from zoomdream.checks import check_budget, check_dream_size, check_render
from zoomdream.dream import dream_image, total_steps
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import OutputKind, check_output_path, check_readable, output_lock, published_together
from zoomdream.media.images import SAVE_FORMATS, load_image, resize_max, save_image
from zoomdream.media.probe import probe, probe_audio
from zoomdream.objectives import layer as layer_objective
from zoomdream.render.frameloop import load_backbone_and_objective, progress, render_inputs, sidecar, still
from zoomdream.settings import DEFAULT_CELL, Settings

__all__ = ["SHEET_BACKGROUND", "render_audio_features", "render_image", "render_sheet"]

SHEET_BACKGROUND = 24  # dark grey behind empty cells of a layer sheet


def _check_still_output(output, inputs, overwrite) -> Path:
    ext = Path(output).suffix.lower()
    if os.fspath(output).strip() and ext not in SAVE_FORMATS:  # the formats save_image writes
        raise ZoomdreamError(f"{output}: unsupported image format '{ext or '(none)'}' (use .png or .jpg)")
    return check_output_path(output, OutputKind(kinds=tuple(SAVE_FORMATS)), inputs=inputs, overwrite=overwrite)


def render_image(input, output, *, settings: Settings, overwrite: bool = False, quiet: bool = False) -> np.ndarray:
    """Dream one photo into ``output`` (PNG/JPEG) with a settings sidecar; returns the dreamed RGB array."""
    settings = check_render(settings, input=input)
    out = _check_still_output(output, render_inputs(settings, input), overwrite)
    settings = still(settings)
    with output_lock(out):
        image = load_image(input, max_size=settings.dream.max_size)
        check_dream_size(settings, image.shape[1::-1], f"{Path(input).name} is")
        check_budget(out, frames=1, size=image.shape[1::-1])
        backbone, objective = load_backbone_and_objective(settings)
        steps = total_steps(image.shape[:2], settings.dream, backbone.min_size)
        with progress(steps, quiet=quiet, unit="step", desc="dreaming") as bar:
            result = dream_image(image, settings=settings.dream, backbone=backbone, objective=objective,
                                 progress=bar.update)
        with published_together():  # the picture and its sidecar, or neither
            save_image(out, result)
            sidecar(out, settings, {"input": str(Path(input).resolve()), "weights": backbone.weights,
                                    "precision": backbone.precision})
    return result


def render_sheet(input, output, *, settings: Settings, layers: list[str] | None = None, cell: int = DEFAULT_CELL,
                 overwrite: bool = False, quiet: bool = False) -> np.ndarray:
    """One dream per layer (the backbone's interesting ones by default), as a labelled grid."""
    settings = check_render(settings, input=input, cell=cell)
    out = _check_still_output(output, render_inputs(settings, input), overwrite)
    with output_lock(out):
        return _sheet(input, out, settings=settings, layers=layers, cell=cell, quiet=quiet)


def _sheet(input, out: Path, *, settings: Settings, layers: list[str] | None, cell: int, quiet: bool) -> np.ndarray:
    settings = still(settings)
    image = resize_max(load_image(input), cell)
    check_budget(out, frames=1, size=image.shape[1::-1])
    d = settings.dream
    backbone = load_backbone(d.model, weights=d.weights, precision=d.precision)
    layers = layers or list(backbone.spec.interesting)
    for name in layers:
        backbone.channels(name)  # unknown layer: one clear error before any dreaming
    cells = [_label(image, "original")]
    steps = total_steps(image.shape[:2], d, backbone.min_size)
    with progress(steps * len(layers), quiet=quiet, unit="step", desc="sheet") as bar:
        for name in layers:
            dreamed = dream_image(image, settings=d, backbone=backbone,
                                  objective=layer_objective(name, border=d.border), progress=bar.update)
            cells.append(_label(dreamed, name))
    cols = min(4, len(cells))
    rows = -(-len(cells) // cols)
    h, w = cells[0].shape[:2]
    sheet = np.full((rows * h, cols * w, 3), SHEET_BACKGROUND, np.uint8)  # (rows*h, cols*w, 3)
    for i, c in enumerate(cells):
        r, k = divmod(i, cols)
        sheet[r * h:(r + 1) * h, k * w:(k + 1) * w] = c
    with published_together():
        save_image(out, sheet)
        sidecar(out, settings, {"input": str(Path(input).resolve()), "sheet_layers": layers})
    return sheet


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` on a dark band at the bottom of a copy of ``image``."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.35, w / 600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = th + base + 6
    out[h - band:] = (out[h - band:] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, h - base - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render_audio_features(input, output, *, fps: float = 24.0, start: float = 0.0, end: float | None = None,
                          csv=None, width: int = 1200, overwrite: bool = False) -> dict:
    """``zoomdream audio``: a PNG of the features schedules can use, frame by frame at ``fps``; optionally a CSV.

    Frame 0 is ``start`` seconds into the file; frames run to ``end`` (default: the track's end).
    Returns {"frames", "beats", "tempo"}.
    """
    if not (start >= 0 and math.isfinite(start)) or (end is not None and not end > start):
        raise ZoomdreamError(f"--start {start} / --end {end}: expected 0 <= start < end")
    if os.fspath(output).strip() and Path(output).suffix.lower() != ".png":
        raise ZoomdreamError(f"{output}: the features picture is a .png")
    out = check_output_path(output, OutputKind("features picture", (".png",), sidecar=False), inputs=(input,),
                            overwrite=overwrite)
    csv_out = None if csv is None else check_output_path(csv, OutputKind("CSV", (".csv",), sidecar=False),
                                                         inputs=(input,), overwrite=overwrite, others=(out,))
    check_readable(input, "audio file")
    stream = probe_audio(input)
    if stream is None or stream.empty:
        raise ZoomdreamError(f"{input}: no audio stream found" if stream is None else
                             f"{input}: its audio track holds no samples")
    # Time zero of a video is its first frame, as in a render: frame i is start + i / fps seconds after it.
    zero = probe(input).video_start if stream.has_video else 0.0
    a = analyse(input)
    stop = a.duration if end is None else min(zero + end, a.duration)
    if stop <= zero + start:
        raise ZoomdreamError(f"{input}: --start {start} is past the end of the audio ({a.duration - zero:.3f} s)")
    n = max(1, math.ceil((stop - zero - start) * fps - 1e-6))
    features = frame_features(input, fps=fps, n=n, offset=zero + start)
    title = f"{Path(input).name}: {n} frames at {fps:g} fps from {start:g} s; about {a.tempo:.0f} bpm"
    with published_together():  # the picture and the CSV, or neither
        save_image(out, plot_features(features, fps=fps, width=width, title=title))
        if csv_out is not None:
            write_csv(csv_out, features, fps=fps)
    beats = int(np.sum(features["beat"] == 1.0))
    return {"frames": n, "beats": beats, "tempo": a.tempo}
