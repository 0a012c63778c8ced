"""The command line: parse, merge preset and flags, call the library, map errors to exit codes.

Exit codes: 0 ok; 1 internal error (traceback with --debug); 2 bad input, preset or
output (one line on stderr); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
TensorFlow is imported only by commands that dream, so ``--help`` and ``presets`` are instant.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from fractions import Fraction

from . import __version__
from .errors import Interrupted, Terminated, ZoomdreamError
from .settings import DEFAULT_MODEL

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


# ---------------------------------------------------------------- argument parsing
def _layers_arg(text: str) -> dict:
    from .presets import parse_layers  # noqa: PLC0415

    try:
        return parse_layers(text)
    except ZoomdreamError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _pair_arg(text: str) -> tuple[float, float]:
    try:
        x, y = (float(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 1,0 - got '{text}'") from None
    return (x, y)


def _size_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(p) for p in text.lower().split("x"))
        if w < 16 or h < 16:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 512x512 (each >= 16) - got '{text}'") from None
    return (w, h)


def _positive(kind):
    def check(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__} - got '{text}'") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__} - got '{text}'")
        return v

    return check


def _fraction_arg(text: str) -> Fraction:
    try:
        v = Fraction(text).limit_denominator(1001000)
        if v <= 0:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a frame rate like 24, 29.97 or 30000/1001 - got '{text}'") from None
    return v


def _unit(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1 - got '{text}'") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1 - got '{text}'")
    return v


def _add_dream_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dream settings (override the preset)")
    g.add_argument("--preset", default="default", help="bundled preset name or a .yaml file (default: default)")
    g.add_argument("--model", help="backbone: efficientnet-lite0 (the default), vgg16-hed (bundled, offline), efficientnet-lite1, "
                                   "efficientnet-lite2 (offline once installed), inception_v3, vgg16, vgg19, "
                                   "resnet50, inception_resnet_v2, mobilenet_v2, xception")
    g.add_argument("--weights", metavar="FILE", help="weights file for the backbone: Keras .h5 / .weights.h5, or a "
                                                     "PyTorch .pth state dict for efficientnet-lite*")
    g.add_argument("--layers", type=_layers_arg, metavar="L=W,...", help="layers and weights, e.g. mixed3=0.5,mixed4=1.5")
    g.add_argument("--octaves", type=_positive(int), help="number of octaves (scales)")
    g.add_argument("--octave-scale", type=_positive(float), help="size ratio between octaves (e.g. 1.4)")
    g.add_argument("--iterations", type=_positive(int), help="gradient steps per octave")
    g.add_argument("--step", type=_positive(float), help="step size (in [-1, 1] image units)")
    g.add_argument("--max-loss", type=_positive(float), help="stop an octave early above this loss")
    g.add_argument("--grad-levels", type=int, metavar="N",
                   help="Laplacian-pyramid bands of the gradient scaled to unit spread (0 = off; against hatching)")
    g.add_argument("--grad-blur", type=float, metavar="SIGMA", help="Gaussian blur of the gradient in px (0 = off)")
    g.add_argument("--jitter", type=int, help="max random roll in px per step (0 = off)")
    g.add_argument("--tile", type=_positive(int), help="tile size in px for large images")
    g.add_argument("--guide", metavar="IMAGE", help="guide image: dream toward its features")
    g.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="compute precision (default auto)")
    g.add_argument("--seed", type=int, help="random seed (same seed + settings = same output)")
    g.add_argument("--max-size", type=_positive(int), help="downscale inputs so the longer side is at most this")


def _add_common(p: argparse.ArgumentParser, output: bool = True) -> None:
    if output:
        p.add_argument("-o", "--output", required=True, help="output file")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.add_argument("-v", "--verbose", action="store_true", help="print each preset override and the resolved settings")
    p.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")


def _add_render_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--crf", type=int, default=18, help="H.264 quality for MP4 (lower is better; default 18)")
    g.add_argument("--keep-frames", action="store_true", help="keep the work folder of dreamed frames after success")
    g.add_argument("--restart", action="store_true", help="discard an earlier interrupted run's frames and start over")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoomdream",
        description="DeepDream for photos and videos: stills, flow-coherent video dreams and infinite zooms.",
        epilog="Run `zoomdream COMMAND --help` for a command's options. Presets: `zoomdream presets`.",
    )
    parser.add_argument("--version", action="version", version=f"zoomdream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("image", help="dream one photo", description="Dream one photo (the classic DeepDream still).")
    p.add_argument("input", help="photo (JPEG, PNG, WebP, TIFF)")
    _add_common(p)
    _add_dream_options(p)

    p = sub.add_parser("video", help="dream every frame of a video, coherently",
                       description="Dream a video frame by frame; optical flow carries each frame's dream onto the next. "
                                   "Audio is kept. Interrupted runs continue where they stopped when run again.")
    p.add_argument("input", help="video file, or a folder of numbered images")
    _add_common(p)
    _add_dream_options(p)
    g = p.add_argument_group("video")
    g.add_argument("--blend", type=_unit, help="0..1: how much of the previous frame's dream is carried (0 = independent)")
    g.add_argument("--flow", choices=("dis", "farneback"), help="optical flow method (default dis)")
    g.add_argument("--iterations-per-frame", type=_positive(int), help="steps per octave on frames that carry a dream")
    g.add_argument("--start", type=float, default=0.0, help="start time in seconds")
    g.add_argument("--end", type=float, help="end time in seconds")
    g.add_argument("--preview", type=_positive(int), metavar="N", help="render only the first N frames")
    g.add_argument("--fps", type=_fraction_arg, help="frame rate for a folder of images (default 24)")
    g.add_argument("--mask", metavar="FILE", help="image or video: dream only where it is bright")
    _add_render_options(p)
    g = p.add_argument_group("scale-out")
    g.add_argument("--workers", type=_positive(int), help="render chunks in N Ray worker processes")
    g.add_argument("--ray-address", help="connect to an existing Ray cluster (e.g. auto)")
    g.add_argument("--chunk", type=_positive(int), metavar="N",
                   help="most frames a worker dreams in one go (default 48; fewer = more parallel, more overhead)")
    g.add_argument("--warmup", type=int, metavar="N",
                   help="frames dreamed and dropped before a chunk that starts mid-shot (default 2)")
    g.add_argument("--fade", type=int, metavar="N",
                   help="frames over which one chunk's dream cross-fades into the next one's (default 6)")

    p = sub.add_parser("zoom", help="infinite zoom animation from one photo",
                       description="Dream a photo, zoom/rotate/pan a little, dream again, feeding each frame back in.")
    p.add_argument("input", help="photo")
    _add_common(p)
    _add_dream_options(p)
    g = p.add_argument_group("motion and output")
    g.add_argument("--frames", type=_positive(int), help="number of frames")
    g.add_argument("--seconds", type=_positive(float), help="length in seconds (instead of --frames)")
    g.add_argument("--fps", type=_positive(float), help="frames per second (motion per second stays the same)")
    g.add_argument("--zoom", type=_positive(float), help="zoom factor per frame at 24 fps (>1 moves in)")
    g.add_argument("--rotate", type=float, help="degrees per frame at 24 fps (positive = counter-clockwise)")
    g.add_argument("--pan", type=_pair_arg, metavar="X,Y", help="camera movement in px per frame at 24 fps")
    g.add_argument("--center", type=_pair_arg, metavar="X,Y", help="zoom centre as fractions of width,height")
    g.add_argument("--size", type=_size_arg, metavar="WxH", help="output size (the photo is cropped to fill it)")
    g.add_argument("--colour-lock", "--color-lock", type=_unit, dest="colour_lock",
                   help="0..1: hold colours to the photo's statistics (default from preset)")
    g.add_argument("--dream-every", type=_positive(int), metavar="N", help="dream every Nth frame; zoom only between")
    g.add_argument("--iterations-per-frame", type=_positive(int), dest="zoom_iterations",
                   help="steps per octave on frames after the first")
    g.add_argument("--octaves-per-frame", type=_positive(int), help="octaves on frames after the first (default 1)")
    g.add_argument("--pingpong", action="store_true", default=None, help="append the frames reversed (seamless loop)")
    g.add_argument("--audio", metavar="FILE", help="audio track for the animation (trimmed to its length)")
    _add_render_options(p)

    p = sub.add_parser("sheet", help="one dream per layer, as a labelled grid",
                       description="Dream one photo on several layers of a backbone and write a labelled grid, "
                                   "to pick layers for a preset by looking.")
    p.add_argument("input", help="photo")
    _add_common(p)
    _add_dream_options(p)
    p.add_argument("--cell", type=_positive(int), default=256, help="longer side of each cell in px (default 256)")
    p.add_argument("--sheet-layers", metavar="A,B,...", help="layers to show (default: the backbone's interesting ones)")

    p = sub.add_parser("presets", help="list the bundled presets", description="List the bundled presets.")
    p.add_argument("--show", metavar="NAME", help="print one preset's fully resolved settings as YAML")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("layers", help="list a backbone's layers", description="List the layers you can dream on.")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"backbone name (default {DEFAULT_MODEL})")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


# ---------------------------------------------------------------- settings
OVERRIDES = {  # argparse dest -> settings key
    "model": "model", "weights": "weights", "layers": "layers", "octaves": "octaves", "octave_scale": "octave_scale",
    "iterations": "iterations", "step": "step", "max_loss": "max_loss", "jitter": "jitter", "tile": "tile",
    "grad_levels": "grad_levels", "grad_blur": "grad_blur",
    "guide": "guide", "precision": "precision", "seed": "seed", "max_size": "max_size",
    "blend": "video.blend", "flow": "video.flow", "iterations_per_frame": "video.iterations_per_frame",
    "zoom": "zoom.zoom", "rotate": "zoom.rotate", "pan": "zoom.pan", "center": "zoom.center", "size": "zoom.size",
    "colour_lock": "zoom.colour_lock", "dream_every": "zoom.dream_every", "pingpong": "zoom.pingpong",
    "frames": "zoom.frames", "zoom_iterations": "zoom.iterations_per_frame",
    "octaves_per_frame": "zoom.octaves_per_frame",
}


def resolve_settings(args: argparse.Namespace):
    """defaults -> preset -> flags; with -v each override is printed."""
    from . import presets, settings  # noqa: PLC0415

    base = presets.load_preset(args.preset)
    given = {}
    for dest, key in OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            given[key] = value
    for key in ("grad_levels", "grad_blur"):  # range-checked by the preset schema, so both say the same
        if key in given:
            try:
                given[key] = presets.DREAM_SCHEMA[key](given[key])
            except presets.ValueProblem as e:
                raise ZoomdreamError(f"--{key.replace('_', '-')}: {e}") from None
    if args.command == "zoom":
        given.pop("zoom.fps", None)
        if args.fps is not None:
            given["zoom.fps"] = float(args.fps)
        if args.seconds is not None:
            fps = given.get("zoom.fps", base.zoom.fps)
            given["zoom.frames"] = max(1, round(args.seconds * fps))
    if given.get("model") and given["model"] != base.dream.model and "layers" not in given:
        from .backbones import get_spec  # noqa: PLC0415

        spec = get_spec(given["model"])  # another backbone: the preset's layers don't exist there
        given["layers"] = {spec.interesting[len(spec.interesting) // 2]: 1.0}
        logging.getLogger("zoomdream").info("model %s: dreaming on layer %s (choose with --layers)",
                                            spec.name, next(iter(given["layers"])))
    if args.verbose:
        for key, value in given.items():
            print(f"zoomdream: override {key} = {value!r}", file=sys.stderr)
    resolved = settings.merge(base, given)
    presets.check_layers(resolved, lambda key, msg: _raise(f"--{key.replace('_', '-')}: {msg}"))
    return resolved


def _raise(message: str):
    raise ZoomdreamError(message)


# ---------------------------------------------------------------- commands
def cmd_presets(args) -> int:
    from . import presets  # noqa: PLC0415

    if args.show:
        print(presets.dump(presets.load_preset(args.show)), end="")
        return 0
    bundled = presets.bundled_presets()
    width = max(map(len, bundled), default=0)
    for name, path in bundled.items():
        print(f"{name:<{width}}  {presets.describe(path)}")
    return 0


def cmd_layers(args) -> int:
    from .backbones import get_spec, list_layers  # noqa: PLC0415

    spec = get_spec(args.model)
    print(f"# {spec.name}: {spec.description}")
    print(f"# interesting: {', '.join(spec.interesting)}")
    for name, kind, channels in list_layers(args.model):
        print(f"{name:<28} {kind:<22} {channels:>5} channels")
    return 0


def cmd_image(args) -> int:
    from .render import render_image  # noqa: PLC0415

    settings = resolve_settings(args)
    render_image(args.input, args.output, settings=settings, overwrite=args.overwrite, quiet=args.quiet)
    return 0


def cmd_sheet(args) -> int:
    from .render import render_sheet  # noqa: PLC0415

    settings = resolve_settings(args)
    layers = [s.strip() for s in args.sheet_layers.split(",") if s.strip()] if args.sheet_layers else None
    render_sheet(args.input, args.output, settings=settings, layers=layers, cell=args.cell,
                 overwrite=args.overwrite, quiet=args.quiet)
    return 0


def cmd_video(args) -> int:
    from .render import render_video  # noqa: PLC0415

    settings = resolve_settings(args)
    chunking = {k: getattr(args, k) for k in ("chunk", "warmup", "fade") if getattr(args, k) is not None}
    if args.workers is not None or args.ray_address is not None:
        from .scale import render_video_ray  # noqa: PLC0415

        render_video_ray(args.input, args.output, settings=settings, workers=args.workers,
                         address=args.ray_address, start=args.start, end=args.end, preview=args.preview,
                         fps=args.fps, crf=args.crf, keep_frames=args.keep_frames, restart=args.restart,
                         overwrite=args.overwrite, mask=args.mask, quiet=args.quiet, **chunking)
        return 0
    if chunking:
        raise ZoomdreamError(f"--{next(iter(chunking))} applies to chunked renders: add --workers N or --ray-address")
    render_video(args.input, args.output, settings=settings, start=args.start, end=args.end, preview=args.preview,
                 fps=args.fps, crf=args.crf, keep_frames=args.keep_frames, restart=args.restart,
                 overwrite=args.overwrite, mask=args.mask, quiet=args.quiet)
    return 0


def cmd_zoom(args) -> int:
    from .render import render_zoom  # noqa: PLC0415

    settings = resolve_settings(args)
    render_zoom(args.input, args.output, settings=settings, crf=args.crf, keep_frames=args.keep_frames,
                restart=args.restart, overwrite=args.overwrite, audio=args.audio, quiet=args.quiet)
    return 0


COMMANDS = {"image": cmd_image, "video": cmd_video, "zoom": cmd_zoom, "sheet": cmd_sheet,
            "presets": cmd_presets, "layers": cmd_layers}


class _NoteHandler(logging.Handler):
    def emit(self, record):
        try:
            from tqdm import tqdm  # noqa: PLC0415

            tqdm.write(f"zoomdream: note: {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log = logging.getLogger("zoomdream")
    log.handlers[:] = [_NoteHandler()]
    log.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    log.propagate = False
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except ZoomdreamError as e:
        print(f"zoomdream: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as e:
        print(f"zoomdream: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("zoomdream: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("zoomdream: terminated; nothing was written", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        return 0  # `zoomdream presets | head`
    except Exception as e:  # noqa: BLE001
        if getattr(args, "debug", False):
            raise
        print(f"zoomdream: internal error: {type(e).__name__}: {e} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
        sys.stderr.flush()


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
