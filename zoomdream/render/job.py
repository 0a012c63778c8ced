"""What one render is about: its :class:`Clip` (the source and the part of it rendered) and its
:class:`Output` (where the result goes and how it is written).

Each public render (``render_video``, ``render_zoom``, ``render_video_ray``) builds one of each from
its keyword arguments and hands them inward, so the functions below take two objects instead of a
train of ``start=, end=, audio=, crf=, quiet=...``. They live in a module of their own, apart from
the frame loop, because the Ray workers take a ``Clip`` too and need none of the loop.

Convention: frame i of a clip is source time ``start + i / fps``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from zoomdream.media.probe import VideoInfo
from zoomdream.media.read import frame_count
from zoomdream.settings import DEFAULT_CRF

__all__ = ["Clip", "Output"]


@dataclass(frozen=True)
class Clip:
    """The source of a render and the part of it rendered, as the caller asked for it.

    ``source``: the video, folder of images, or photo. ``start``/``end``: seconds into it (end None:
    to its end). ``preview``: render at most this many frames (schedules still see the whole range).
    ``fps``: the rate of a folder of images. ``mask``: where the dream may change the frames.
    ``audio``: a soundtrack file that replaces the clip's own. Once probed (:meth:`probed`), the
    clip also holds the probe and its frame counts, computed there once.
    """

    source: str | os.PathLike
    start: float = 0.0
    end: float | None = None
    preview: int | None = None
    fps: Fraction | None = None
    mask: str | os.PathLike | None = None
    audio: str | os.PathLike | None = None
    info: VideoInfo | None = None  # the probed source (None until probed)
    frames: int = 0  # frames rendered (after preview)
    frames_all: int = 0  # frames of the whole range: what schedules see, with a preview or not

    def probed(self, info: VideoInfo) -> "Clip":
        """This clip with its probe and both frame counts."""
        return dataclasses.replace(self, info=info, frames_all=frame_count(info, start=self.start, end=self.end),
                                   frames=frame_count(info, start=self.start, end=self.end, max_frames=self.preview))

    def absolute(self) -> "Clip":
        """The same clip with its mask and audio paths made absolute (for workers in another folder)."""
        return dataclasses.replace(self, mask=self.mask and os.path.abspath(self.mask),
                                   audio=self.audio and os.path.abspath(self.audio))


@dataclass(frozen=True)
class Output:
    """Where a render's result goes and how it is written.

    ``path``: the output as given, or once checked the absolute path (``checked``). ``crf``: the
    H.264 quality. ``keep_frames``: keep the work folder's frames after encoding. ``restart``:
    ignore frames of an earlier run. ``overwrite``: replace an existing output. ``quiet``: no
    progress bar or summary line.
    """

    path: str | os.PathLike
    crf: int = DEFAULT_CRF
    keep_frames: bool = False
    restart: bool = False
    overwrite: bool = False
    quiet: bool = False

    def checked(self, path: Path) -> "Output":
        """This output at its checked, absolute ``path``."""
        return dataclasses.replace(self, path=path)
