"""What gradient conditioning costs per dream step, and how much hatch it removes.

One run measures, and prints as a table plus a final ``SUMMARY:`` line:

(a) seconds per dream step at --size (default 640x360) on --model (default: the default
    preset's backbone, its layers and precision), with the gradient raw (``grad_levels 0``,
    the seed), Laplacian-band normalised (``grad_levels`` 4), blurred (``grad_blur`` 1.0) and both.
    A "step" is what ``dream`` does per iteration: the compiled gradient, the conditioning, the
    normalisation and the update, timed as one octave of --steps iterations, cases interleaved
    round-robin, steady median per step; the ratio is against the raw gradient.
(b) the hatch share of each case's dream delta (a 2-octave dream of the image at --size): the
    fraction of its energy above 0.375 cycles/px (Nyquist is 0.5), where the pixel-scale
    checkerboard of strided and depthwise convolutions lives. Lower is smoother.

    python benchmarks/bench_conditioning.py
    python benchmarks/bench_conditioning.py --model vgg16-hed --size 512x512
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

CASES = {"raw (grad_levels 0)": (0, 0.0), "laplacian 4": (4, 0.0), "blur 1.0": (0, 1.0),
         "laplacian 4 + blur 0.7": (4, 0.7)}


def hatch_share(delta: np.ndarray) -> float:
    d = delta.mean(axis=2)
    spectrum = np.abs(np.fft.fft2(d - d.mean())) ** 2
    fy, fx = np.abs(np.fft.fftfreq(d.shape[0]))[:, None], np.abs(np.fft.fftfreq(d.shape[1]))[None, :]
    return float(spectrum[np.maximum(fy, fx) > 0.375].sum() / spectrum.sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="backbone (default: the default preset's)")
    p.add_argument("--size", default="640x360", help="WxH (default 640x360)")
    p.add_argument("--steps", type=int, default=5, help="iterations per timed octave (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="steady repeats per case (default 3)")
    args = p.parse_args(argv)

    from zoomdream.backbones import load_backbone
    from zoomdream.dream import dream, to_unit
    from zoomdream.objectives import from_settings
    from zoomdream.settings.presets import load_preset

    C.tf()
    base = load_preset("default").dream
    model = args.model or base.model
    layers = dict(base.layers) if model == base.model else C.default_layers(model)
    backbone = load_backbone(model, precision=base.precision)
    w, h = C.parse_size(args.size)
    image = to_unit(C.load_image(C.DEFAULT_IMAGE, (w, h)))
    settings = dataclasses.replace(base, model=model, layers=layers, precision=backbone.precision)
    objective = from_settings(settings, backbone)
    print(f"model {model} ({backbone.precision}), layers {layers}, {w}x{h}, {args.steps} steps per timed octave")

    def case(levels, blur, octaves, steps):
        s = dataclasses.replace(settings, grad_levels=levels, grad_blur=blur, octaves=octaves, iterations=steps)
        return lambda: dream(image, objective, backbone, s)

    timed = {name: case(lv, bl, 1, args.steps) for name, (lv, bl) in CASES.items()}
    _, steady, _ = C.interleaved(timed, args.repeats, log=print)
    raw = C.median(steady[next(iter(CASES))]) / args.steps
    print(f"\n{'case':<26} {'s/step':>8} {'vs raw':>7} {'hatch share':>12}")
    summary = []
    for name, (lv, bl) in CASES.items():
        per_step = C.median(steady[name]) / args.steps
        share = hatch_share(case(lv, bl, 2, 10)() - image)
        print(f"{name:<26} {per_step:8.3f} {per_step / raw:6.2f}x {share:12.4f}")
        summary.append(f"{name}: {per_step / raw:.2f}x, hatch {share:.4f}")
    print("SUMMARY: " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
