"""Video in and out through the bundled ffmpeg: probe, streaming decode, atomic encode.

Everything here drives the ffmpeg binary of imageio-ffmpeg directly (ffmpeg 9 as shipped; no
system ffmpeg, no ffprobe). The behaviours this package defends against are tested in
tests/media. One module a job, each importing only from those above it:

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
  rate. Image files are read through ``zoomdream.media.images``. ``decode_audio`` gives samples.
* ``write``: ``encode`` writes .mp4 / .gif / a PNG folder to a temporary name beside the
  target, checks ffmpeg's exit code, re-probes the result, fsyncs and renames. It muxes audio
  with an optional map and an input-side trim, so a silent or short source never shortens
  the video.

Every path handed to ffmpeg is absolute and prefixed ``file:``, so names like ``-dash.mp4`` or
``file:odd.mp4`` are never read as options or protocols.

This package may import, from the rest of zoomdream, only ``errors``, ``fileio`` and the settings
declarations (for the defaults of render options such as ``crf``); never TensorFlow. ``images`` (photos in and out) lives here because video frames and image folders
are read through it.
"""

__all__: list[str] = []
