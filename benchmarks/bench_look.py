"""How many animals does a dream add? An ImageNet classifier's animal share, photo vs dream.

    python benchmarks/bench_look.py                 # the bundled photos, default and vgg-edges
    python benchmarks/bench_look.py my.jpg --judge efficientnet-lite1

Each photo is dreamed with each preset (as ``zoomdream image`` does, at ``--max-size``), then
the judge's own ImageNet classifier (by default EfficientNet-Lite2: another network than the
default preset's Lite0, at another resolution, though of the same family and training data;
the only other ImageNet classifier that installs offline) gives its full 1000-class
distribution. The *animal share* is the probability it puts on ImageNet's animal classes
(indices 0-397: fish, birds, reptiles, dogs, cats, insects, ...). Also printed: the judge's
top class and how many of its top-5 classes are animals. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import tf as quiet_tensorflow

ROOT = Path(__file__).resolve().parent.parent
ANIMAL_CLASSES = range(0, 398)  # ImageNet-1k: 0 tench ... 397 puffer; 398 abacus onwards are objects and scenes


def animal_share(image: np.ndarray, judge: str) -> tuple[float, int, int]:
    from zoomdream.backbones.efficientnet import classify

    probs = classify(image, model=judge, top=1000)
    share = sum(p for i, p in probs if i in ANIMAL_CLASSES)
    top5 = [i for i, _ in probs[:5]]
    return share, top5[0], sum(i in ANIMAL_CLASSES for i in top5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="*", default=[str(ROOT / "assets" / "chelsea.jpg"),
                                                   str(ROOT / "assets" / "coffee.jpg")])
    ap.add_argument("--presets", default="default,vgg-edges")
    ap.add_argument("--judge", default="efficientnet-lite2")
    ap.add_argument("--max-size", type=int, default=450)
    args = ap.parse_args()
    quiet_tensorflow()
    import zoomdream
    from zoomdream.media.images import load_image

    print(f"judge: {args.judge} (its own ImageNet head); animal share = P(class in 0-397)")
    print(f"{'photo':<14} {'preset':<12} {'animal share':>12} {'top class':>9} {'animals in top 5':>17} {'s':>6}")
    for photo in args.photos:
        image = load_image(photo, max_size=args.max_size)
        share, top, n5 = animal_share(image, args.judge)
        name = Path(photo).name
        print(f"{name:<14} {'(photo)':<12} {share:>12.3f} {top:>9d} {n5:>17d} {'':>6}")
        for preset in args.presets.split(","):
            settings = zoomdream.load_preset(preset)
            t0 = time.perf_counter()
            dreamed = zoomdream.dream_image(image, settings=settings.dream)
            seconds = time.perf_counter() - t0
            share, top, n5 = animal_share(dreamed, args.judge)
            print(f"{name:<14} {preset:<12} {share:>12.3f} {top:>9d} {n5:>17d} {seconds:>6.1f}")
            print(f"SUMMARY look {name} {preset} animal_share={share:.3f}")


if __name__ == "__main__":
    main()
