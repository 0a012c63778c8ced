"""How fast is zoomdream's dream, against the seed post's algorithm and against this machine's peak?

One run measures, and prints as tables plus a final ``SUMMARY:`` line:

(a) zoomdream's still dream (``dream_image`` with the inception-classic preset's settings:
    4 octaves x 1.4, 5 steps, step 0.01, border 2, no jitter, no clipping, untiled) against
    ``seed_reference.seed_dream`` (the seed post ported to TF2) on the same image, backbone,
    layers and settings; A/B/C interleaved round-robin, first call (tracing) reported apart,
    ratio of steady-state medians. Backbones: vgg16-hed (the default preset's layers) and
    inception_v3 (random weights, the seed's mixed2-5 coefficients); zoomdream in fp32 and
    bf16, the seed always fp32 (as the seed is). The seed runs the network as Keras builds it;
    zoomdream's backbone has its BatchNormalization folded into the convolutions (same
    weights before folding, so the outputs are comparable).
(b) FLOPs of one dream step (forward + backward to the input), counted from the graph of the
    compiled step with TF's profiler statistics, only over the ops the outputs depend on
    (cross-checked against layer shapes for VGG), and the achieved GFLOP/s of steady steps
    at 640x360 and at the 512x512 tile size; for inception_v3 also the step on the unfolded
    network (BatchNormalization as Keras builds it), to show what folding saves.
(c) this machine's 4096x4096 matmul peak in float32 and bfloat16, measured interleaved with
    the steps of (b), and each step's fraction of its precision's peak.
(d) how bf16 looks against fp32: mean absolute pixel difference of the default preset's dream
    in the two precisions, and a side-by-side PNG (fp32 | bf16 | 4x |difference|).

Noise: the machine is shared, so only ratios measured inside one run are reported, with
interleaved repeats and medians. Nothing here asserts.

    python benchmarks/bench_dream.py                # full run (~5-10 min on 2 cores)
    python benchmarks/bench_dream.py --quick        # sanity run (~2 min)
    python benchmarks/bench_dream.py --size 800x533 --repeats 5 --out-dir /tmp/zoomdream-bench
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed_reference

import _common as C

MODELS = ("vgg16-hed", "inception_v3")
PRECISIONS = ("fp32", "bf16")


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- (a) zoomdream vs the seed
def classic_settings(model: str, layers: dict, precision: str, max_loss):
    """The inception-classic preset's dream settings, on ``model`` with ``layers``."""
    from zoomdream.settings.presets import load_preset

    base = load_preset("inception-classic").dream
    return dataclasses.replace(base, model=model, layers=layers, precision=precision, max_loss=max_loss)


def bench_vs_seed(model: str, backbones: dict, image: np.ndarray, repeats: int, max_loss_arg: str) -> dict:
    from zoomdream.dream import dream_image
    from zoomdream.objectives import from_settings

    layers = C.default_layers(model)
    if max_loss_arg == "auto":
        max_loss = C.SEED_INCEPTION_MAX_LOSS if model == "inception_v3" else None
    else:
        max_loss = None if max_loss_arg.lower() == "none" else float(max_loss_arg)
    settings = {p: classic_settings(model, layers, p, max_loss) for p in PRECISIONS}
    s = settings["fp32"]
    objectives = {p: from_settings(settings[p], backbones[p]) for p in PRECISIONS}
    fp32, seed = backbones["fp32"], backbones["seed"]
    h, w = image.shape[:2]
    log(f"\n(a) zoomdream vs the seed: {model}, {C.weights_note(fp32)}")
    log(f"    image {w}x{h}; layers {layers}; octaves {s.octaves} x {s.octave_scale}, {s.iterations} steps, "
        f"step {s.step}, border {s.border}, max_loss {max_loss}, jitter {s.jitter}, clip {getattr(s, 'clip', '?')}, "
        f"tile {s.tile}{' (untiled)' if max(h, w) <= s.tile else ' (TILED: not like the seed)'}")
    if model != "inception_v3" and max_loss_arg == "auto":
        log("    max_loss: none here - this net's loss starts far above the seed's 10, which would stop every "
            "octave before its first update")

    outs, steps = {}, {}

    def run_seed():
        hist: list = []
        outs["seed"] = seed_reference.seed_dream(
            image, (seed.model, layers, seed.preprocess), step=s.step, num_octave=s.octaves,
            octave_scale=s.octave_scale, iterations=s.iterations, max_loss=max_loss, border=s.border, history=hist)
        steps["seed"] = sum(1 for v in hist if max_loss is None or v <= max_loss)  # updates applied

    def run_zd(p):
        def go():
            calls: list = []
            outs[p] = dream_image(image, settings=settings[p], backbone=backbones[p], objective=objectives[p],
                                  progress=calls.append)
            steps[p] = sum(1 for c in calls if c == 1)  # early stops report the skipped rest in one call

        return go

    cases = {"seed fp32": run_seed, "zoomdream fp32": run_zd("fp32"), "zoomdream bf16": run_zd("bf16")}
    first, steady, cpu = C.interleaved(cases, repeats, warmup=1, log=log)
    med = {k: C.median(v) for k, v in steady.items()}
    cmed = {k: C.median(v) for k, v in cpu.items()}
    res = {"model": model, "first": first, "steady": steady, "median": med,
           "speedup": {k: med["seed fp32"] / med[k] for k in cases},
           "speedup_min": {k: min(steady["seed fp32"]) / min(steady[k]) for k in cases},
           "speedup_cpu": {k: cmed["seed fp32"] / cmed[k] for k in cases}, "steps": dict(steps)}
    log(f"\n    {'case':<16} {'first call s':>12} {'steady median s':>16} {'steady runs s':>22} {'steps':>6} "
        f"{'speedup vs seed':>16} {'(by min)':>9} {'(by cpu s)':>10}")
    for k, key in zip(cases, ("seed", "fp32", "bf16")):
        log(f"    {k:<16} {first[k]:12.2f} {med[k]:16.2f} {C.fmt_times(steady[k]):>22} {steps.get(key, 0):6d} "
            f"{res['speedup'][k]:15.2f}x {res['speedup_min'][k]:8.2f}x {res['speedup_cpu'][k]:9.2f}x")
    log("    speedup = seed's steady median wall time / this case's; (by min) the same with the fastest runs; "
        "(by cpu s) with this process's CPU seconds")
    log("    first call = build the feature model + trace + first run at each octave shape (oneDNN primitives);")
    log(f"    compile overhead (first - steady): seed {first['seed fp32'] - med['seed fp32']:.2f} s, "
        f"zoomdream fp32 {first['zoomdream fp32'] - med['zoomdream fp32']:.2f} s, "
        f"bf16 {first['zoomdream bf16'] - med['zoomdream bf16']:.2f} s")
    diff = np.abs(outs["seed"].astype(int) - outs["fp32"].astype(int)).mean()
    log(f"    mean |seed - zoomdream fp32| = {diff:.2f} / 255 (expected > 0: scipy.ndimage.zoom is corner-aligned, "
        f"tf.image.resize half-pixel; the seed truncates to uint8, zoomdream rounds)")
    res["seed_vs_zd_px"] = float(diff)
    return res


# --------------------------------------------------------------------------- (b) FLOPs of one step
def step_graph(step, h: int, w: int):
    """The compiled step's Python function retraced at a static (h, w) so every shape is known."""
    tf = C.tf()
    fn = tf.function(step.fn.python_function)
    return fn.get_concrete_function(tf.TensorSpec([h, w, 3], tf.float32),
                                    tf.TensorSpec([len(step.objective.terms)], tf.float32))


def count_flops(step, h: int, w: int) -> dict:
    """FLOPs of one step: TF's profiler total over the graph, and the part the outputs need.

    ``tape.gradient`` calls TF's Conv2D gradient function, which always emits both
    Conv2DBackpropInput and Conv2DBackpropFilter; the filter (weight) gradients are not
    ancestors of the step's outputs, so the function runtime prunes them. The profiler's
    ``float_operation()`` sums every node in the graph, pruned or not, so the executed count
    is taken over the outputs' ancestors with the same per-op statistics.
    """
    tf = C.tf()
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.profiler.internal import flops_registry  # noqa: F401  (registers op stats)

    cf = step_graph(step, h, w)
    g = cf.graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    opts = builder(builder.float_operation()).with_empty_output().build()
    profiled = tf.compat.v1.profiler.profile(graph=g, options=opts).total_float_ops

    needed, stack = set(), [t.op for t in cf.outputs]
    while stack:
        op = stack.pop()
        if op.name in needed:
            continue
        needed.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    total, executed, count_all, count_exec = Counter(), Counter(), Counter(), Counter()
    for op in g.get_operations():
        try:
            v = tf_ops.get_stats_for_node_def(g, op.node_def, "flops").value or 0
        except Exception:  # noqa: BLE001  (ops without a registered statistic)
            v = 0
        total[op.type] += v
        count_all[op.type] += 1
        if op.name in needed:
            executed[op.type] += v
            count_exec[op.type] += 1
    return {"profiler_total": int(profiled), "graph_total": int(sum(total.values())),
            "executed": int(sum(executed.values())), "by_type": executed,
            "filter_grads_in_graph": count_all["Conv2DBackpropFilter"],
            "filter_grads_needed": count_exec["Conv2DBackpropFilter"],
            "convs": count_exec["Conv2D"]}


def vgg_shape_flops(backbone, layers, h: int, w: int) -> tuple[int, int]:
    """VGG forward conv FLOPs from layer shapes (2*H*W*k*k*Cin*Cout, 'same' convs, 2x2 pools), up to the deepest layer."""
    names = [layer.name for layer in backbone.model.layers]
    deepest = max(names.index(n) for n in layers)
    fwd, convs = 0, 0
    for layer in backbone.model.layers[:deepest + 1]:
        kind = type(layer).__name__
        if kind == "Conv2D":
            k1, k2, cin, cout = (int(d) for d in layer.kernel.shape)
            fwd += 2 * h * w * k1 * k2 * cin * cout
            convs += 1
        elif kind == "MaxPooling2D":
            h, w = h // 2, w // 2
    return fwd, convs


def with_weight_grads_step(backbone, objective):
    """A variant of zoomdream's step that also fetches the weight gradients (to show they cost, and are pruned)."""
    from zoomdream.dream import GradientStep

    tf = C.tf()
    zd = GradientStep.get(backbone, objective)
    variables = zd.features.trainable_variables

    def step(tile, weights):
        with tf.GradientTape() as tape:
            tape.watch(tile)
            loss = zd.loss(tile, weights)  # zoomdream's own loss: only what is differentiated differs
        grads = tape.gradient(loss, [tile] + list(variables))
        return loss, grads[0], tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads[1:]])

    return tf.function(step, input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                                              tf.TensorSpec([len(objective.terms)], tf.float32)])


# --------------------------------------------------------------------------- (b)+(c) timing
def bench_steps_and_peak(models: list, all_backbones: dict, image: np.ndarray, sizes: list, repeats: int,
                         matmul_n: int) -> dict:
    tf = C.tf()
    from zoomdream.dream import GradientStep, to_unit
    from zoomdream.objectives import from_settings

    log("\n(b) FLOPs of one dream step (forward + backward to the input), counted from the compiled step's graph")
    flops, steps, inputs, cases = {}, {}, {}, {}
    for (w, h) in sizes:
        inputs[(w, h)] = tf.constant(to_unit(_resized(image, (w, h))))  # (h, w, 3) unit range
    for model in models:
        layers = C.default_layers(model)
        for p in PRECISIONS:
            bb = all_backbones[model][p]
            obj = from_settings(classic_settings(model, layers, p, None), bb)
            steps[(model, p)] = (GradientStep.get(bb, obj), obj.weight_tensor(), obj)
        for (w, h) in sizes:
            f = {p: count_flops(steps[(model, p)][0], h, w) for p in PRECISIONS}
            flops[(model, (w, h))] = f["fp32"]
            r = f["fp32"]
            log(f"    {model:<13} {w}x{h}: executed {r['executed'] / 1e9:8.2f} GFLOP "
                f"(bf16 graph: {f['bf16']['executed'] / 1e9:.2f}); whole graph incl. pruned weight grads "
                f"{r['graph_total'] / 1e9:.2f} (tf.compat.v1.profiler float_operation: {r['profiler_total'] / 1e9:.2f}); "
                f"Conv2DBackpropFilter nodes: {r['filter_grads_in_graph']} in graph, {r['filter_grads_needed']} needed")
            top = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in r["by_type"].most_common(4))
            log(f"        executed by op type (GFLOP): {top}")
            if model.startswith("vgg"):
                fwd, n = vgg_shape_flops(all_backbones[model]["fp32"], layers, h, w)
                conv_graph = r["by_type"]["Conv2D"] + r["by_type"]["Conv2DBackpropInput"]
                log(f"        layer-shape cross-check: {n} convs, forward {fwd / 1e9:.2f} GFLOP, x2 with the backward "
                    f"to the input = {2 * fwd / 1e9:.2f}; graph convs {conv_graph / 1e9:.2f} "
                    f"(ratio {conv_graph / (2 * fwd):.4f}); non-conv ops {(r['executed'] - conv_graph) / 1e9:.3f}")
            for p in PRECISIONS:
                st, wt, _ = steps[(model, p)]
                x = inputs[(w, h)]
                cases[f"{model} {p} {w}x{h}"] = (lambda st=st, wt=wt, x=x: st.fn(x, wt)[1][0, 0, 0].numpy())

    # BatchNormalization folding: the same step on the network as Keras builds it, at the first size
    for model in models:
        unfolded = all_backbones[model].get("unfolded")
        if unfolded:
            (w, h), layers = sizes[0], C.default_layers(model)
            for p in PRECISIONS:
                obj = from_settings(classic_settings(model, layers, p, None), unfolded[p])
                st, wt, x = GradientStep.get(unfolded[p], obj), obj.weight_tensor(), inputs[(w, h)]
                cases[f"{model} {p} {w}x{h} unfolded BN"] = (lambda st=st, wt=wt, x=x: st.fn(x, wt)[1][0, 0, 0].numpy())

    # the pruning check: the same step, also fetching the weight gradients
    if "vgg16-hed" in models:
        _, wt, obj = steps[("vgg16-hed", "fp32")]
        wstep = with_weight_grads_step(all_backbones["vgg16-hed"]["fp32"], obj)
        x = inputs[sizes[0]]
        cases[f"vgg16-hed fp32 {sizes[0][0]}x{sizes[0][1]} +weight grads"] = \
            (lambda: wstep(x, wt)[1][0, 0, 0].numpy())

    # (c) the matmul peaks, in the same round-robin as the steps
    a32 = tf.random.stateless_normal((matmul_n, matmul_n), seed=(1, 2))
    b32 = tf.random.stateless_normal((matmul_n, matmul_n), seed=(3, 4))
    a16, b16 = tf.cast(a32, tf.bfloat16), tf.cast(b32, tf.bfloat16)
    cases["matmul fp32"] = lambda: tf.linalg.matmul(a32, b32)[0, 0].numpy()
    cases["matmul bf16"] = lambda: tf.linalg.matmul(a16, b16)[0, 0].numpy()

    log(f"\n(b)+(c) timing: {len(cases)} cases round-robin, 1 warm-up + {repeats} repeats each")
    first, steady, cpu = C.interleaved(cases, repeats, warmup=1)
    med = {k: C.median(v) for k, v in steady.items()}
    cmed = {k: C.median(v) for k, v in cpu.items()}
    mm_flops = 2 * matmul_n ** 3
    peak = {p: mm_flops / med[f"matmul {p}"] / 1e9 for p in PRECISIONS}
    peak_cpu = {p: mm_flops / cmed[f"matmul {p}"] / 1e9 for p in PRECISIONS}  # per CPU-second
    log(f"\n(c) matmul peak, {matmul_n}x{matmul_n} tf.linalg.matmul (median of {repeats}): "
        f"fp32 {peak['fp32']:.0f} GFLOP/s ({C.fmt_times(steady['matmul fp32'])} s), "
        f"bf16 {peak['bf16']:.0f} GFLOP/s ({C.fmt_times(steady['matmul bf16'])} s); bf16/fp32 = "
        f"{peak['bf16'] / peak['fp32']:.2f}x (by CPU seconds: {peak_cpu['fp32']:.0f} and {peak_cpu['bf16']:.0f} "
        f"GFLOP per CPU-second, {peak_cpu['bf16'] / peak_cpu['fp32']:.2f}x)")

    log(f"\n    {'step':<28} {'GFLOP':>8} {'median s':>9} {'runs s':>26} {'GFLOP/s':>8} {'% of peak':>9} "
        f"{'(by cpu s)':>10} {'bf16 speedup':>12} {'(by cpu s)':>10}")
    table = {}
    for model in models:
        for (w, h) in sizes:
            gf = flops[(model, (w, h))]["executed"]
            for p in PRECISIONS:
                k = f"{model} {p} {w}x{h}"
                k32 = f"{model} fp32 {w}x{h}"
                rate = gf / med[k] / 1e9
                frac, frac_cpu = rate / peak[p], (gf / cmed[k] / 1e9) / peak_cpu[p]
                sp, sp_cpu = med[k32] / med[k], cmed[k32] / cmed[k]
                table[(model, p, (w, h))] = {"gflop": gf / 1e9, "s": med[k], "gflops": rate, "frac": frac,
                                             "frac_cpu": frac_cpu, "bf16_speedup": sp, "bf16_speedup_cpu": sp_cpu}
                log(f"    {k:<28} {gf / 1e9:8.2f} {med[k]:9.3f} {C.fmt_times(steady[k]):>26} {rate:8.1f} "
                    f"{100 * frac:8.1f}% {100 * frac_cpu:9.1f}% {sp:11.2f}x {sp_cpu:9.2f}x")
    log("    % of peak = step GFLOP/s / matmul GFLOP/s of the same precision, from wall medians; (by cpu s) the same "
        "from this process's CPU seconds (steadier when other processes take the cores)")
    folding = {}
    for k in [k for k in cases if k.endswith(" unfolded BN")]:
        model, p = k.split()[:2]
        base = k.removesuffix(" unfolded BN")
        folding[(model, p)] = (med[k] / med[base], cmed[k] / cmed[base])
        if len(folding) == 1:
            log("\n    BatchNormalization folded into the convolutions (as zoomdream builds its backbones) vs the "
                "network as Keras builds it:")
        log(f"    {base}: {len(all_backbones[model][p].folded)} BN layers folded; unfolded step {med[k]:.3f} s "
            f"({C.fmt_times(steady[k])}) = {folding[(model, p)][0]:.2f}x the folded step (by cpu s "
            f"{folding[(model, p)][1]:.2f}x)")
    wk = [k for k in cases if k.endswith("+weight grads")]
    pruning = None
    if wk:
        base = f"vgg16-hed fp32 {sizes[0][0]}x{sizes[0][1]}"
        pruning = cmed[wk[0]] / cmed[base]
        log("\n    weight gradients: the step graph holds Conv2DBackpropFilter nodes (TF's Conv2D gradient emits them),"
            " but none is on the path to the outputs, so they are pruned and never run.")
        log(f"    Check by timing: a step that also fetches the weight gradients takes {med[wk[0]]:.3f} s, "
            f"{med[wk[0]] / med[base]:.2f}x zoomdream's input-only step ({med[base]:.3f} s; by CPU seconds {pruning:.2f}x); ~1.5x is expected if they were skipped "
            f"before, ~1.0x would mean they were being computed all along.")
    return {"peak": peak, "table": table, "pruning": pruning, "first": first, "folding": folding}


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR), np.uint8)


# --------------------------------------------------------------------------- (d) bf16 vs fp32 look
def bench_bf16_look(backbones: dict, image: np.ndarray, out_dir: Path, iterations: int | None) -> dict:
    from zoomdream.dream import dream_image
    from zoomdream.settings.presets import load_preset

    settings = load_preset("default").dream
    if iterations:
        settings = dataclasses.replace(settings, iterations=iterations)
    h, w = image.shape[:2]
    log(f"\n(d) bf16 vs fp32 look: default preset ({dict(settings.layers)}, {settings.octaves} octaves, "
        f"{settings.iterations} steps, step {settings.step}, jitter {settings.jitter}, tile {settings.tile}) "
        f"on a {w}x{h} image")
    outs, times = {}, {}
    for p in PRECISIONS:
        t = C.now()
        outs[p] = dream_image(image, settings=dataclasses.replace(settings, precision=p), backbone=backbones[p])
        times[p] = C.now() - t
    diff = np.abs(outs["bf16"].astype(np.int16) - outs["fp32"].astype(np.int16))
    change = np.abs(outs["fp32"].astype(np.int16) - image.astype(np.int16)).mean()
    gap = np.full((h, 6, 3), 255, np.uint8)
    amplified = np.clip(4 * diff, 0, 255).astype(np.uint8)
    panel = np.concatenate([outs["fp32"], gap, outs["bf16"], gap, amplified], axis=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "bf16_vs_fp32.png"
    C.save_image(path, panel)
    C.save_image(out_dir / "dream_fp32.png", outs["fp32"])
    C.save_image(out_dir / "dream_bf16.png", outs["bf16"])
    res = {"mean_abs": float(diff.mean()), "p99": float(np.percentile(diff, 99)), "max": int(diff.max()),
           "over8": float((diff > 8).mean()), "change": float(change), "path": str(path), "times": times}
    log(f"    mean |bf16 - fp32| = {res['mean_abs']:.2f} / 255 (99th pct {res['p99']:.0f}, max {res['max']}, "
        f"{100 * res['over8']:.1f}% of values differ by > 8); for scale, the dream itself moved pixels by "
        f"{change:.1f} on average")
    log(f"    (one run each, compile included: fp32 {times['fp32']:.1f} s, bf16 {times['bf16']:.1f} s)")
    log(f"    side by side (fp32 | bf16 | 4x |difference|): {path}")
    return res


# --------------------------------------------------------------------------- (e) what tiling costs
def bench_tiling(backbone, image: np.ndarray, repeats: int) -> dict | None:
    """The default preset (tile 512) against the same dream untiled, fp32, interleaved."""
    from zoomdream.dream import dream_image, octave_shapes, tile_plan
    from zoomdream.objectives import from_settings
    from zoomdream.settings.presets import load_preset

    # 4 steps per octave instead of 10: the ratio does not depend on the count, the run time does
    settings = dataclasses.replace(load_preset("default").dream, precision=backbone.precision, iterations=4)
    h, w = image.shape[:2]
    log(f"\n(e) tiling: default preset (but {settings.iterations} steps per octave), {backbone.precision}, "
        f"tile {settings.tile} vs untiled, on {w}x{h}")
    if max(h, w) <= settings.tile:
        log(f"    skipped: the image is not larger than the tile ({settings.tile} px)")
        return None
    shapes = octave_shapes((h, w), settings.octaves, settings.octave_scale, backbone.min_size)
    px_tiled = px_whole = 0
    for sh in shapes:
        px_whole += sh[0] * sh[1]
        if max(sh) > settings.tile:
            plan = tile_plan(*sh, settings.tile)
            px_tiled += sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in plan.boxes)
            log(f"    octave {sh[1]}x{sh[0]}: {len(plan.boxes)} tiles "
                f"{', '.join(f'{x1 - x0}x{y1 - y0}' for y0, y1, x0, x1 in plan.boxes)} = "
                f"{sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in plan.boxes) / (sh[0] * sh[1]):.2f}x its pixels")
        else:
            px_tiled += sh[0] * sh[1]
    log(f"    pixels through the network per dream: tiled / untiled = {px_tiled / px_whole:.2f}x")
    untiled = dataclasses.replace(settings, tile=max(h, w))
    obj = from_settings(settings, backbone)
    cases = {f"tile {settings.tile}": lambda: dream_image(image, settings=settings, backbone=backbone, objective=obj),
             "untiled": lambda: dream_image(image, settings=untiled, backbone=backbone, objective=obj)}
    first, steady, cpu = C.interleaved(cases, repeats, warmup=1, log=log)
    med = {k: C.median(v) for k, v in steady.items()}
    tk = f"tile {settings.tile}"
    ratio = med[tk] / med["untiled"]
    ratio_cpu = C.median(cpu[tk]) / C.median(cpu["untiled"])
    log(f"    median: tiled {med[tk]:.2f} s, untiled {med['untiled']:.2f} s -> tiling costs {ratio:.2f}x wall, "
        f"{ratio_cpu:.2f}x CPU seconds (pixel ratio {px_tiled / px_whole:.2f}x)")
    return {"ratio": ratio, "ratio_cpu": ratio_cpu, "px_ratio": px_tiled / px_whole, "median": med}


# --------------------------------------------------------------------------- main
def machine_note() -> str:
    tf = C.tf()
    import keras

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{cpu or platform.processor()}, {os.cpu_count()} CPUs, avx512_bf16={'avx512_bf16' in flags}, "
            f"amx_bf16={'amx_bf16' in flags}, GPUs={len(gpus)}; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=str(C.DEFAULT_IMAGE), help="input image (default assets/coffee.jpg)")
    p.add_argument("--size", default=None, help="WxH for (a) and (d) (default: the image's own size; --quick: 360x240)")
    p.add_argument("--repeats", type=int, default=None, help="steady repeats per case in (a) (default 3; --quick 1)")
    p.add_argument("--step-repeats", type=int, default=None, help="repeats per case in (b)/(c) (default 5; --quick 2)")
    p.add_argument("--step-sizes", default=None, help="WxH,WxH for (b) (default 640x360,512x512; --quick 320x180,256x256)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    p.add_argument("--max-loss", default="auto",
                   help="max_loss for (a): auto (the seed's 10 on inception_v3, none on VGG), none, or a number")
    p.add_argument("--matmul", type=int, default=None, help="matmul side for (c) (default 4096; --quick 2048)")
    p.add_argument("--out-dir", default="/tmp/zoomdream-bench", help="where (d) writes its PNGs")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: a,b,d,e")
    p.add_argument("--quick", action="store_true", help="small sizes and repeats: a sanity run in ~2 min")
    args = p.parse_args(argv)

    quick = args.quick
    size = C.parse_size(args.size) if args.size else ((360, 240) if quick else None)
    repeats = args.repeats or (1 if quick else 3)
    step_repeats = args.step_repeats or (2 if quick else 5)
    step_sizes = [C.parse_size(s) for s in (args.step_sizes or ("320x180,256x256" if quick else "640x360,512x512")).split(",")]
    matmul_n = args.matmul or (2048 if quick else 4096)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    skip = set(filter(None, args.skip.split(",")))

    t0 = C.now()
    log(f"zoomdream benchmark{' (quick)' if quick else ''}: {machine_note()}")
    image = C.load_image(args.image, size)
    log(f"image {args.image} at {image.shape[1]}x{image.shape[0]}; load average now {os.getloadavg()[0]:.1f}")
    backbones = {}
    for m in models:
        backbones[m] = {pr: C.load_backbone(m, pr) for pr in PRECISIONS}
        backbones[m]["seed"] = C.load_backbone(m, "fp32", fold=False)  # the seed runs Keras's network as built
        if backbones[m]["fp32"].folded:  # for (b)'s folded vs unfolded step
            backbones[m]["unfolded"] = {"fp32": backbones[m]["seed"], "bf16": C.load_backbone(m, "bf16", fold=False)}
        log(f"backbone {m}: {C.weights_note(backbones[m]['fp32'])}")

    vs_seed = {}
    if "a" not in skip:
        for m in models:
            vs_seed[m] = bench_vs_seed(m, backbones[m], image, repeats, args.max_loss)
    steps = None
    if "b" not in skip:
        steps = bench_steps_and_peak(models, backbones, image, step_sizes, step_repeats, matmul_n)
    look = None
    if "d" not in skip and "vgg16-hed" in models:
        look = bench_bf16_look(backbones["vgg16-hed"], image, Path(args.out_dir), 3 if quick else None)
    tiling = None
    if "e" not in skip and "vgg16-hed" in models:
        tiling = bench_tiling(backbones["vgg16-hed"]["fp32"], image, repeats)

    parts = []
    for m, r in vs_seed.items():
        parts.append(f"{m} speedup vs seed: fp32 {r['speedup']['zoomdream fp32']:.2f}x, "
                     f"bf16 {r['speedup']['zoomdream bf16']:.2f}x (by cpu s: {r['speedup_cpu']['zoomdream fp32']:.2f}x, "
                     f"{r['speedup_cpu']['zoomdream bf16']:.2f}x; first call {r['first']['zoomdream fp32']:.1f}s vs "
                     f"steady {r['median']['zoomdream fp32']:.1f}s fp32)")
    if steps:
        pk = steps["peak"]
        parts.append(f"matmul peak fp32 {pk['fp32']:.0f} / bf16 {pk['bf16']:.0f} GFLOP/s")
        for (m, pr, (w, h)), r in steps["table"].items():
            if (w, h) == step_sizes[0]:
                parts.append(f"{m} {pr} step {w}x{h}: {r['gflops']:.0f} GFLOP/s = {100 * r['frac']:.0f}% of {pr} peak "
                             f"({100 * r['frac_cpu']:.0f}% by cpu s)")
        for (m, pr), (r, rc) in steps["folding"].items():
            parts.append(f"{m} {pr} step with BN unfolded {r:.2f}x slower (cpu {rc:.2f}x)")
        if steps["pruning"]:
            parts.append(f"weight-grad variant {steps['pruning']:.2f}x slower (pruned in zoomdream)")
    if look:
        parts.append(f"bf16 vs fp32 mean |diff| {look['mean_abs']:.2f}/255")
    if tiling:
        parts.append(f"default-preset tiling (tile 512) costs {tiling['ratio']:.2f}x wall, {tiling['ratio_cpu']:.2f}x cpu "
                     f"vs untiled ({tiling['px_ratio']:.2f}x pixels)")
    log(f"\ntotal {C.now() - t0:.0f} s; load average at the end {os.getloadavg()[0]:.1f} "
        f"(other processes share these {os.cpu_count()} CPUs: ratios only)")
    log("SUMMARY: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
