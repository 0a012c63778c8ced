"""Video in and out through the bundled ffmpeg: probe, streaming decode, atomic encode.

Everything here drives the ffmpeg binary of imageio-ffmpeg directly (ffmpeg 9 as shipped; no
system ffmpeg, no ffprobe). The behaviours this package defends against are recorded in
RELIABILITY.md. One module a job, each importing only from those above it:

* ``process``: find ffmpeg, start it signal-safely in its own session (a terminal Ctrl-C
  reaches only Python, which then kills ffmpeg), run it, collect its output, stop it.
* ``ffmpeg_log``: parse what ffmpeg prints about its input (streams, rotation) and packets.
* ``rates``: frame rates measured from timestamps and snapped to the standard ones.
* ``probe``: ``probe`` counts frames for real (packets, and a decode when anything looks off),
  never from fps x duration; it detects truncation, variable frame rate, rotation and
  non-square pixels, and turns every unreadable input into a one-line ``ZoomdreamError``.
  Image folders are probed here too; ``probe_output`` verifies what ``encode`` wrote.
* ``read``: ``iter_frames`` streams upright RGB uint8 frames one at a time from one ffmpeg
  that is always killed and reaped in ``finally``; VFR input is resampled to a declared CFR
  rate. Image files are read through ``zoomdream.images``. ``decode_audio`` gives samples.
* ``write``: ``encode`` writes .mp4 / .gif / a PNG folder to a temporary name beside the
  target, checks ffmpeg's exit code, re-probes the result, fsyncs and renames. It muxes audio
  with an optional map and an input-side trim, so a silent or short source never shortens
  the video.

Every path handed to ffmpeg is absolute and prefixed ``file:``, so names like ``-dash.mp4`` or
``file:odd.mp4`` are never read as options or protocols.
"""

from ..images import ALPHA_BACKGROUND, IMAGE_EXTENSIONS
from .probe import NO_SAMPLES_NOTE, AudioInfo, OutputProbe, VideoInfo, has_audio, probe, probe_audio, probe_output
from .process import ffmpeg_version, stop_children
from .read import decode_audio, frame_count, iter_frames, stream_audio
from .write import AudioSource, audio_source, encode, output_kind

__all__ = [
    "VideoInfo",
    "AudioInfo",
    "AudioSource",
    "OutputProbe",
    "probe",
    "iter_frames",
    "frame_count",
    "encode",
    "output_kind",
    "has_audio",
    "probe_audio",
    "NO_SAMPLES_NOTE",
    "audio_source",
    "decode_audio",
    "stream_audio",
    "probe_output",
    "ffmpeg_version",
    "stop_children",
    "IMAGE_EXTENSIONS",
    "ALPHA_BACKGROUND",
]
