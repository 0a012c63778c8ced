"""PNG size of dreamed frames relative to raw RGB: the figure behind checks.PNG_RATIO.

Dreams the sample photo with bundled presets at a few sizes (full octaves, a few steps),
writes each result the way the frame cache does (``save_png_fast``, zlib level 1) and prints
``png_bytes / (w * h * 3)`` for the source and for the dream. A dream adds fine detail
everywhere, so it compresses worse than the photo it came from; the disk budget uses the
largest ratio seen here, rounded up.

    python benchmarks/bench_png_ratio.py
    python benchmarks/bench_png_ratio.py --sizes 320x240,640x480 --iterations 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="320x240,640x480")
    ap.add_argument("--presets", default="default,textures,structures")
    ap.add_argument("--iterations", type=int, default=4)
    args = ap.parse_args()
    C.tf()
    import dataclasses

    import cv2

    from zoomdream import dream_image, load_image, load_preset
    from zoomdream.backbones import load_backbone
    from zoomdream.media.images import save_png_fast

    photo = load_image(C.DEFAULT_IMAGE)
    backbone = load_backbone("vgg16-hed", precision="fp32")
    worst = 0.0
    print(f"{'size':>9} {'preset':<11} {'source':>7} {'dreamed':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            src = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)  # (h, w, 3) uint8
            path = Path(tmp) / "f.png"
            save_png_fast(path, src)
            src_ratio = path.stat().st_size / (w * h * 3)
            for name in args.presets.split(","):
                d = dataclasses.replace(load_preset(name).dream, iterations=args.iterations, precision="fp32")
                out = dream_image(src, settings=d, backbone=backbone)
                save_png_fast(path, out)
                ratio = path.stat().st_size / (w * h * 3)
                worst = max(worst, ratio)
                print(f"{size:>9} {name:<11} {src_ratio:7.3f} {ratio:8.3f}")
    print(f"SUMMARY: largest dreamed-frame PNG ratio {worst:.3f} (png bytes / raw RGB bytes)")


if __name__ == "__main__":
    main()
