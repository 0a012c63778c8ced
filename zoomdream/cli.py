"""The command line: parse, merge preset and flags, call the library, map errors to exit codes.

Exit codes: 0 ok; 1 internal error (traceback with --debug); 2 bad input, preset or
output (one line on stderr); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
TensorFlow is imported only by commands that dream, so ``--help`` and ``presets`` are instant:
each command imports the library modules it needs inside its function (most of the library
pulls in TensorFlow, numpy or OpenCV), which is why the imports below the settings are local.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from zoomdream import __version__
from zoomdream import settings as S
from zoomdream.errors import (
    Interrupted,
    Terminated,
    ZoomdreamError,
    clear_interrupt,
    note_interrupt,
    signals_to_exceptions,
)
from zoomdream.settings.values import Invalid, is_schedule, is_schedule_text

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "build_parser", "OVERRIDES", "SCHEDULE_FLAGS",
           "resolve_settings", "cmd_presets", "cmd_layers", "cmd_image", "cmd_sheet", "cmd_video", "cmd_zoom",
           "cmd_audio", "COMMANDS", "main"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


# ---------------------------------------------------------------- argument parsing
# Every settings flag, its type, range and help come from the declarations in zoomdream.settings;
# the render options (--crf, --start, ...) from settings.OPTIONS. argparse reports a bad value
# as its usage line plus "argument --step: expected ...", exit 2, before anything is read or written.
def _arg_type(spec: S.Spec):
    def convert(text: str):
        try:
            value = spec.parse(text)
            if spec.schedulable and is_schedule(value, pair=False):
                return value  # a schedule: `resolve_settings` checks it, in one line naming the flag
            return spec.validate(value)
        except S.Invalid as e:  # a flag cannot be null: the preset wording's "or null" does not apply
            raise argparse.ArgumentTypeError(str(e).replace(" or null", "")) from None

    convert.__name__ = "value"
    return convert


def _add_flag(g, spec: S.Spec, dest: str, **kwargs) -> None:
    """One flag from a declaration: booleans get --x/--no-x, choices are listed, everything else is typed."""
    if isinstance(spec.check, S.Boolean):
        g.add_argument(*spec.flags, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                       help=spec.help, **kwargs)
    elif isinstance(spec.check, S.Choice):
        g.add_argument(*spec.flags, dest=dest, choices=spec.check.choices, help=spec.help, **kwargs)
    else:
        check = spec.check.base if isinstance(spec.check, S.Keyframed) else spec.check  # a flag gives one value
        what = f" ({check.what})" if isinstance(check, (S.Number, S.Pair, S.FrameRate)) else ""
        g.add_argument(*spec.flags, dest=dest, type=_arg_type(spec), metavar=spec.metavar or spec.check.metavar,
                       help=spec.help + what, **kwargs)


def _add_setting_flags(g, prefix: str) -> None:
    """The flags of one section's settings (prefix "" for the dream, "video." or "zoom."); dest = the settings key."""
    for key, spec in S.declarations().items():
        name = key[len(prefix):]
        if key.startswith(prefix) and "." not in name and spec.flags:
            _add_flag(g, spec, key)


def _add_option(g, name: str, **kwargs) -> None:
    _add_flag(g, S.OPTIONS[name], name, **kwargs)


def _add_dream_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dream settings (override the preset)")
    g.add_argument("--preset", default="default", help="bundled preset name or a .yaml file (default: default)")
    _add_setting_flags(g, "")


def _add_common(p: argparse.ArgumentParser, output: bool = True) -> None:
    if output:
        p.add_argument("-o", "--output", required=True, help="output file")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.add_argument("-v", "--verbose", action="store_true", help="print each preset override and the resolved settings")
    p.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    p.add_argument("--progress", choices=("bar", "json"), default="bar",
                   help="bar (default), or json: one JSON line per step or frame on stdout, for other programs")


def _add_render_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rendering")
    _add_option(g, "crf", default=S.DEFAULT_CRF)
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
    _add_setting_flags(g, "video.")
    _add_option(g, "start", default=0.0)
    _add_option(g, "end")
    _add_option(g, "preview")
    _add_option(g, "fps")
    g.add_argument("--mask", metavar="FILE", help="image or video: dream only where it is bright")
    g.add_argument("--audio", metavar="FILE",
                   help="soundtrack for the output and for audio features in schedules (default: the clip's own)")
    _add_render_options(p)
    g = p.add_argument_group("scale-out")
    _add_option(g, "workers")
    g.add_argument("--ray-address", help="connect to an existing Ray cluster (e.g. auto)")
    _add_option(g, "chunk")
    _add_option(g, "warmup")
    _add_option(g, "fade")

    p = sub.add_parser("zoom", help="infinite zoom animation from one photo",
                       description="Dream a photo, zoom/rotate/pan a little, dream again, feeding each frame back in.")
    p.add_argument("input", help="photo")
    _add_common(p)
    _add_dream_options(p)
    g = p.add_argument_group("motion and output")
    _add_option(g, "seconds")
    _add_setting_flags(g, "zoom.")
    g.add_argument("--audio", metavar="FILE",
                   help="audio track for the animation (trimmed to its length), also for audio features in schedules")
    _add_render_options(p)

    p = sub.add_parser("sheet", help="one dream per layer, as a labelled grid",
                       description="Dream one photo on several layers of a backbone and write a labelled grid, "
                                   "to pick layers for a preset by looking.")
    p.add_argument("input", help="photo")
    _add_common(p)
    _add_dream_options(p)
    _add_option(p, "cell", default=S.DEFAULT_CELL)
    p.add_argument("--sheet-layers", metavar="A,B,...", help="layers to show (default: the backbone's interesting ones)")

    p = sub.add_parser("audio", help="plot a soundtrack's features for writing schedules",
                       description="Draw the audio features a schedule can use (rms, onset, beat, bass, mid, treble), "
                                   "0..1 per output frame, with seconds and frame numbers on the axis.")
    p.add_argument("input", help="audio or video file")
    _add_common(p)
    p.add_argument("--fps", type=_arg_type(S.Spec(S.Number(S.MIN_FPS, S.MAX_FPS), "")), default=24.0,
                   help="output frame rate the features are for (default 24)")
    _add_option(p, "start", default=0.0)
    _add_option(p, "end")
    p.add_argument("--csv", metavar="FILE", help="also write the numbers: frame, seconds, one column per feature")
    p.add_argument("--width", type=_arg_type(S.Spec(S.Number(200, 8192, integer=True), "")), default=1200,
                   help="picture width in px (default 1200)")

    p = sub.add_parser("studio", help="open the studio: a local web page to tune, preview and render",
                       description="Serve the studio, a web page on this computer to tune a look by seeing it: "
                                   "previews, schedule graphs, a render queue and a gallery. FOLDER's photos, clips "
                                   "and sounds are offered; uploads go to FOLDER/uploads, renders to "
                                   "FOLDER/renders, saved presets to FOLDER/presets. Ctrl-C stops it.")
    p.add_argument("folder", nargs="?", default=".", metavar="FOLDER", help="the studio's folder (default: here)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other address requires a token)")
    p.add_argument("--port", type=_arg_type(S.Spec(S.Number(0, 65535, integer=True), "")), default=8765,
                   help="port (default 8765; 0 = any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--max-upload", type=_arg_type(S.Spec(S.Number(1, 1 << 50, integer=True), "")), default=2 << 30,
                   metavar="BYTES", help="largest upload in bytes (default 2 GiB)")
    p.add_argument("--token", help="the token every request must carry (default: none on 127.0.0.1, "
                                   "a random one printed in the URL on any other address)")
    p.add_argument("--jobs", type=_arg_type(S.Spec(S.Number(1, 64, integer=True), "")), default=1,
                   help="renders that run at the same time (default 1)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("presets", help="list the bundled presets", description="List the bundled presets.")
    p.add_argument("--show", metavar="NAME", help="print one preset's fully resolved settings as YAML")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("layers", help="list a backbone's layers", description="List the layers you can dream on.")
    p.add_argument("--model", default=S.DEFAULT_MODEL, help=f"backbone name (default {S.DEFAULT_MODEL})")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


# ---------------------------------------------------------------- settings
OVERRIDES = {key: key for key, spec in S.declarations().items() if spec.flags}  # argparse dest -> settings key
SCHEDULE_FLAGS = {key: spec.flags[0] for key, spec in S.declarations().items()  # key -> flag, for schedule errors
                  if spec.schedulable and spec.flags}


def resolve_settings(args: argparse.Namespace):
    """defaults -> preset -> flags; with -v each override is printed."""
    from zoomdream.settings import presets  # noqa: PLC0415

    base = presets.load_preset(args.preset)
    given = {key: getattr(args, dest) for dest, key in OVERRIDES.items() if getattr(args, dest, None) is not None}
    if getattr(args, "seconds", None) is not None:
        fps = given.get("zoom.fps", base.zoom.fps)
        frames = max(1, round(args.seconds * fps))
        try:
            given["zoom.frames"] = S.check_value("zoom.frames", frames)
        except S.Invalid as e:
            raise ZoomdreamError(f"--seconds {args.seconds:g}: {frames} frames at {fps:g} fps; {e}") from None
    if given.get("model") and given["model"] != base.dream.model and "layers" not in given:
        from zoomdream.backbones import get_spec  # noqa: PLC0415

        spec = get_spec(given["model"])  # another backbone: the preset's layers don't exist there
        given["layers"] = {spec.interesting[len(spec.interesting) // 2]: 1.0}
        logging.getLogger("zoomdream").info("model %s: dreaming on layer %s (choose with --layers)",
                                            spec.name, next(iter(given["layers"])))
    _check_schedules(given)
    if args.verbose:
        for key, value in given.items():
            print(f"zoomdream: override {key} = {value!r}", file=sys.stderr)
    resolved = S.merge(base, given)
    presets.check_layers(resolved, lambda key, msg: _raise(f"--{key.rpartition('.')[2].replace('_', '-')}: {msg}"))
    from zoomdream.settings.animation import check_settings  # noqa: PLC0415

    check_settings(resolved, flags={k: SCHEDULE_FLAGS[k] for k in given if k in SCHEDULE_FLAGS})
    return resolved


def _check_schedules(given: dict) -> None:
    """Every schedule given as a flag, before anything else, by its declaration (errors name the flag):
    its syntax, and the range of one made of constants only (others are checked over every frame
    when the render starts, see ``animation``)."""
    for key, value in given.items():
        if key in SCHEDULE_FLAGS and is_schedule_text(value):
            try:
                S.check_value(key, value)
            except Invalid as e:
                raise ZoomdreamError(f"{SCHEDULE_FLAGS[key]}: {e}") from None


def _raise(message: str):
    raise ZoomdreamError(message)


def _guard_preset(args) -> None:
    """The preset file is an input too: neither the output nor its sidecar may be (or hold) it."""
    from zoomdream import fileio  # noqa: PLC0415
    from zoomdream.settings import presets  # noqa: PLC0415

    path = presets.preset_path(args.preset)
    if path.is_file() and os.fspath(args.output).strip():
        fileio.refuse_overlap(Path(os.path.abspath(args.output)), "output", [path])
        fileio.refuse_overlap(fileio.sidecar_path(args.output), "settings sidecar", [path])


# ---------------------------------------------------------------- commands
def cmd_presets(args) -> int:
    from zoomdream.settings import presets  # noqa: PLC0415

    if args.show:
        print(presets.dump(presets.load_preset(args.show), comments=True), end="")
        return 0
    bundled = presets.bundled_presets()
    width = max(map(len, bundled), default=0)
    for name, path in bundled.items():
        print(f"{name:<{width}}  {presets.describe(path)}")
    return 0


def cmd_layers(args) -> int:
    from zoomdream.backbones import get_spec, list_layers  # noqa: PLC0415

    spec = get_spec(args.model)
    print(f"# {spec.name}: {spec.description}")
    print(f"# interesting: {', '.join(spec.interesting)}")
    for name, kind, channels in list_layers(args.model):
        print(f"{name:<28} {kind:<22} {channels:>5} channels")
    return 0


def cmd_image(args) -> int:
    from zoomdream.render.stills import render_image  # noqa: PLC0415

    _guard_preset(args)
    settings = resolve_settings(args)
    render_image(args.input, args.output, settings=settings, overwrite=args.overwrite, quiet=args.quiet)
    return 0


def cmd_sheet(args) -> int:
    from zoomdream.render.stills import render_sheet  # noqa: PLC0415

    _guard_preset(args)
    settings = resolve_settings(args)
    layers = [s.strip() for s in args.sheet_layers.split(",") if s.strip()] if args.sheet_layers else None
    render_sheet(args.input, args.output, settings=settings, layers=layers, cell=args.cell,
                 overwrite=args.overwrite, quiet=args.quiet)
    return 0


def cmd_video(args) -> int:
    from zoomdream.render.video import render_video  # noqa: PLC0415

    _guard_preset(args)
    settings = resolve_settings(args)
    chunking = {k: getattr(args, k) for k in ("chunk", "warmup", "fade") if getattr(args, k) is not None}
    if args.workers is not None or args.ray_address is not None:
        from zoomdream.scale import render_video_ray  # noqa: PLC0415

        render_video_ray(args.input, args.output, settings=settings, workers=args.workers,
                         address=args.ray_address, start=args.start, end=args.end, preview=args.preview,
                         fps=args.fps, crf=args.crf, keep_frames=args.keep_frames, restart=args.restart,
                         overwrite=args.overwrite, mask=args.mask, audio=args.audio, quiet=args.quiet, **chunking)
        return 0
    if chunking:
        raise ZoomdreamError(f"--{next(iter(chunking))} applies to chunked renders: add --workers N or --ray-address")
    render_video(args.input, args.output, settings=settings, start=args.start, end=args.end, preview=args.preview,
                 fps=args.fps, crf=args.crf, keep_frames=args.keep_frames, restart=args.restart,
                 overwrite=args.overwrite, mask=args.mask, audio=args.audio, quiet=args.quiet)
    return 0


def cmd_zoom(args) -> int:
    from zoomdream.render.zoom import render_zoom  # noqa: PLC0415

    _guard_preset(args)
    settings = resolve_settings(args)
    render_zoom(args.input, args.output, settings=settings, crf=args.crf, keep_frames=args.keep_frames,
                restart=args.restart, overwrite=args.overwrite, audio=args.audio, quiet=args.quiet)
    return 0


def cmd_audio(args) -> int:
    from zoomdream.render.stills import render_audio_features  # noqa: PLC0415

    summary = render_audio_features(args.input, args.output, fps=args.fps, start=args.start, end=args.end,
                                    csv=args.csv, width=args.width, overwrite=args.overwrite)
    if not args.quiet:
        print(f"zoomdream: {summary['frames']} frames at {args.fps:g} fps, {summary['beats']} beats "
              f"(about {summary['tempo']:.0f} bpm) -> {args.output}", file=sys.stderr)
    return 0


def cmd_studio(args) -> int:
    from zoomdream.studio.security import Security  # noqa: PLC0415
    from zoomdream.studio.server import serve  # noqa: PLC0415  (Starlette and uvicorn; never TensorFlow)

    if args.token is not None and not args.token.strip():
        raise ZoomdreamError("--token: must not be empty")
    security = Security(host=args.host, port=args.port, token=args.token, max_upload=args.max_upload)
    return serve(args.folder, security, open_browser=not args.no_browser, jobs=args.jobs)


COMMANDS = {"image": cmd_image, "video": cmd_video, "zoom": cmd_zoom, "sheet": cmd_sheet, "audio": cmd_audio,
            "studio": cmd_studio, "presets": cmd_presets, "layers": cmd_layers}


class _NoteHandler(logging.Handler):
    def emit(self, record):
        try:
            from tqdm import tqdm  # noqa: PLC0415

            tqdm.write(f"zoomdream: note: {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


def _on_sigint(signum, frame):
    note_interrupt()  # checked again at the next safe point, in case a foreign callback swallows what follows
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log = logging.getLogger("zoomdream")
    log.handlers[:] = [_NoteHandler()]
    log.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    log.propagate = False
    old_int = signal.signal(signal.SIGINT, _on_sigint)
    clear_interrupt()
    with signals_to_exceptions():  # SIGTERM -> Terminated: cleanup runs, exit 143
        try:
            if getattr(args, "progress", "bar") == "json":
                from zoomdream.render import frameloop  # noqa: PLC0415

                frameloop.PROGRESS["format"] = "json"
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
        except Exception as e:  # a bug: one line, or the traceback with --debug
            if getattr(args, "debug", False):
                raise
            print(f"zoomdream: internal error: {type(e).__name__}: {e} (run again with --debug for the traceback)",
                  file=sys.stderr)
            return 1
        finally:
            if "zoomdream.render.frameloop" in sys.modules:  # in-process callers (tests) get the bar back
                sys.modules["zoomdream.render.frameloop"].PROGRESS["format"] = "bar"
            if "zoomdream.media.process" in sys.modules:  # whatever happened, no ffmpeg outlives the command
                sys.modules["zoomdream.media.process"].stop_children()
            signal.signal(signal.SIGINT, old_int)
            clear_interrupt()
            sys.stderr.flush()

