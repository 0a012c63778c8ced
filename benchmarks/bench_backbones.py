"""Which precision is faster for which backbone here, and does ``precision: auto`` pick it?

One dream step (forward + backward to the input, zoomdream's compiled ``GradientStep``) per
backbone at 640x360, in float32 and bfloat16, all cases interleaved round-robin (first call
reported apart, median of the steady repeats). For each: seconds per step, the step's FLOPs
(counted from the compiled graph, as bench_dream.py (b) does) and achieved GFLOP/s, the
bf16/fp32 time ratio, and what ``backbones.resolve_precision("auto", spec)`` chooses on this
machine next to the measured faster one.

Backbones: the EfficientNet-Lites and vgg16-hed with their real (bundled) weights; inception_v3
and the other ImageNet nets with random weights (speed does not depend on weight values).
Layers: the default preset's where it uses the backbone, else the backbone's ``interesting[-3]``
(deep in the network, like a preset's), or ``--layer``.

    python benchmarks/bench_backbones.py
    python benchmarks/bench_backbones.py --models efficientnet-lite0,vgg16 --size 320x180 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dream import classic_settings, count_flops, machine_note

import _common as C

MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "vgg16-hed", "vgg16", "inception_v3")
PRECISIONS = ("fp32", "bf16")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def lite_shape_flops(name: str, layers, h: int, w: int) -> float:
    """EfficientNet-Lite forward FLOPs from the block table (2 * MACs of every conv), up to the deepest layer.

    A cross-check on the graph count: TensorFlow registers no FLOP statistic for the depthwise
    convolution's input gradient, so the graph count misses that part of the backward pass.
    """
    from zoomdream.backbones import efficientnet as E

    order = [n for n, _, _ in E.layer_table(name)]
    deepest = max(order.index(n) for n in layers)
    h, w = -(-h // 2), -(-w // 2)  # the stem's stride 2, TF "same"
    fwd = 2 * h * w * 3 * 3 * 3 * E.STEM_WIDTH
    def used(layer: str) -> bool:
        return order.index(layer) <= deepest

    for b in E.blocks(name):
        if b.expand != 1 and used(f"{b.name}_expand_conv"):
            fwd += 2 * h * w * b.inputs * b.hidden
        h, w = -(-h // b.stride), -(-w // b.stride)
        if used(f"{b.name}_dwconv"):
            fwd += 2 * h * w * b.kernel * b.kernel * b.hidden
        if used(f"{b.name}_project_conv"):
            fwd += 2 * h * w * b.hidden * b.outputs
    if used("top_conv"):
        fwd += 2 * h * w * E.blocks(name)[-1].outputs * E.HEAD_WIDTH
    return float(fwd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    p.add_argument("--size", default="640x360", help="step input WxH (default 640x360)")
    p.add_argument("--repeats", type=int, default=5, help="steady repeats per case (default 5)")
    p.add_argument("--layer", default=None, help="dream on this layer for every backbone (default: see above)")
    args = p.parse_args(argv)

    tf = C.tf()
    from zoomdream import backbones as B
    from zoomdream.dream import GradientStep, to_unit
    from zoomdream.objectives import from_settings

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    w, h = C.parse_size(args.size)
    log(f"backbone precision benchmark: {machine_note()}")
    log(f"load average now {os.getloadavg()[0]:.1f}; step input {w}x{h}; supports_fast_bf16() = "
        f"{B.supports_fast_bf16()}")
    x = tf.constant(to_unit(C.load_image(C.DEFAULT_IMAGE, (w, h))))  # (h, w, 3) unit range
    cases, flops, layers_of = {}, {}, {}
    for m in models:
        layers = {args.layer: 1.0} if args.layer else C.default_layers(m)
        layers_of[m] = layers
        for pr in PRECISIONS:
            bb = C.load_backbone(m, pr)
            obj = from_settings(classic_settings(m, layers, pr, None), bb)
            step, wt = GradientStep.get(bb, obj), obj.weight_tensor()
            if pr == "fp32":
                counted = count_flops(step, h, w)
                flops[m] = counted["executed"]
                log(f"  {m:<19} {C.weights_note(bb)}; layers {layers}; {flops[m] / 1e9:.2f} GFLOP per step")
                if m.startswith("efficientnet-lite"):
                    fwd = lite_shape_flops(m, layers, h, w)
                    dw = sum(v for k, v in counted["by_type"].items() if k.startswith("DepthwiseConv2dNative"))
                    log(f"      layer-shape cross-check: forward {fwd / 1e9:.2f} GFLOP, x2 with the backward to the "
                        f"input = {2 * fwd / 1e9:.2f}; graph: depthwise ops {dw / 1e9:.3f} GFLOP "
                        f"({', '.join(k for k in counted['by_type'] if k.startswith('Depthwise')) or 'none counted'})")
            cases[f"{m} {pr}"] = (lambda st=step, wt=wt: st.fn(x, wt)[1][0, 0, 0].numpy())

    log(f"\n{len(cases)} cases round-robin, 1 warm-up + {args.repeats} repeats each")
    first, steady, cpu = C.interleaved(cases, args.repeats, warmup=1)
    med = {k: C.median(v) for k, v in steady.items()}
    log(f"\n  {'backbone':<19} {'GFLOP':>7} {'fp32 s':>8} {'bf16 s':>8} {'fp32 GFLOP/s':>13} {'bf16 GFLOP/s':>13} "
        f"{'bf16/fp32':>10} {'faster':>7} {'auto':>5}")
    parts = []
    for m in models:
        t32, t16 = med[f"{m} fp32"], med[f"{m} bf16"]
        faster = "bf16" if t16 < t32 else "fp32"
        auto = B.resolve_precision("auto", B.get_spec(m))
        gf = flops[m] / 1e9
        log(f"  {m:<19} {gf:7.2f} {t32:8.3f} {t16:8.3f} {gf / t32:13.1f} {gf / t16:13.1f} {t16 / t32:9.2f}x "
            f"{faster:>7} {auto:>5}{'' if auto == faster else '  <- auto is not the faster here'}")
        parts.append(f"{m} fp32 {t32:.3f} s / bf16 {t16:.3f} s per step (auto {auto}, faster {faster})")
    log("  runs (s): " + "; ".join(f"{k} {C.fmt_times(v)}" for k, v in steady.items()))
    log("  first calls (s, trace + first run): " + ", ".join(f"{k} {v:.1f}" for k, v in first.items()))
    log(f"\nload average at the end {os.getloadavg()[0]:.1f} (other processes share these CPUs: compare ratios)")
    log("SUMMARY: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
