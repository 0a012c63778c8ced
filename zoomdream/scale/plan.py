"""The scale-out plan (pure): a clip split into chunks that workers can dream independently.

1) scene cuts split the clip into shots (the carried dream is reset at a cut anyway);
2) each shot is split into the fewest chunks of at most ``chunk`` frames, of near-equal size;
3) a chunk that starts mid-shot starts dreaming ``warmup + fade`` frames early: the first
   ``warmup`` are dropped, so the dream has settled; the next ``fade`` are dreamed by both this
   chunk and the one before, and the output cross-fades from the earlier chunk's frames to this
   one's, so the seam is a short dissolve instead of a jump.

The plan depends on the clip, the settings, ``chunk``, ``warmup`` and ``fade`` only, never on
the worker count. ``scale`` runs it on Ray.

Convention: frame indices start at 0 (frame i is source time ``start + i / fps``); ranges are
half-open, ``first <= i < stop``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zoomdream import flow
from zoomdream.media.read import iter_frames
from zoomdream.settings import Settings
from zoomdream.settings.animation import carries

__all__ = ["DEFAULT_CHUNK", "DEFAULT_FADE", "DEFAULT_WARMUP", "Chunk", "find_cuts", "plan_chunks", "plan_segments"]

DEFAULT_CHUNK = 48  # most frames one worker dreams in one go (2 s at 24 fps); smaller = more parallel, more overhead
DEFAULT_WARMUP = 2  # frames dreamed and dropped before a mid-shot chunk, so its fresh start settles
DEFAULT_FADE = 6  # frames over which the output cross-fades from one chunk's dream into the next one's


@dataclass(frozen=True)
class Chunk:
    """Frames ``first <= i < stop`` of the output, dreamed by one worker in one pass.

    The worker dreams afresh from ``warmup_from``: frames before ``fade_from`` are dropped,
    frames ``fade_from <= i < first`` are cross-faded with the previous chunk's frames (which
    hold the output up to ``first``), and frames from ``first`` on are this chunk's alone.
    """

    first: int  # first frame that is this chunk's alone
    stop: int  # one past its last frame
    warmup_from: int  # first dreamed frame; == shot when dreaming from the shot start (exact, no seam)
    fade_from: int  # first frame handed back: first - fade, or first when there is no cross-fade
    shot: int  # first frame of the shot (0 or a scene cut); dreaming from there matches a sequential run exactly

    @property
    def warmup(self) -> int:
        """Frames dreamed and dropped."""
        return self.fade_from - self.warmup_from

    @property
    def fade(self) -> int:
        """Frames cross-faded with the previous chunk."""
        return self.first - self.fade_from

    @property
    def seam(self) -> bool:
        """True when the chunk starts from a fresh dream mid-shot, so it only approximates a sequential run."""
        return self.warmup_from > self.shot


def plan_segments(n_frames: int, cut_frames, *, chunk: int = DEFAULT_CHUNK, warmup: int = DEFAULT_WARMUP,
                  fade: int = DEFAULT_FADE) -> list[Chunk]:
    """Split frames ``0 <= i < n_frames`` into chunks that can be dreamed independently.

    Scene cuts (frame indices where a new shot starts) split the clip into shots; each shot
    becomes the fewest chunks of at most ``chunk`` frames, of near-equal size (sizes differ by
    at most one, so no tiny tail chunk pays a full warm-up). A chunk that starts mid-shot is
    dreamed from ``first - fade - warmup`` (the fade no longer than the previous chunk). When
    that reaches back to the shot start, it is dreamed from the shot start instead: before a cut
    the carried dream is reset anyway, so those frames come out exactly as in a sequential run,
    and there is no seam and no fade. The plan depends on nothing else (not on the worker count).

    Example: 10 frames, no cuts, chunk 4, warm-up 1, fade 1 -> [0, 3); [3, 6) dreamed from 1,
    frame 2 cross-faded; [6, 10) dreamed from 4, frame 5 cross-faded. With warm-up 2, [3, 6) is
    dreamed from 0 instead: exact, no seam.
    """
    if n_frames < 0 or chunk < 1 or warmup < 0 or fade < 0:
        raise ValueError(f"expected n_frames >= 0, chunk >= 1, warmup >= 0, fade >= 0. "
                         f"Got: {n_frames}, {chunk}, {warmup}, {fade}")
    cuts = sorted(set(int(c) for c in cut_frames))
    if cuts and not 0 <= cuts[0] <= cuts[-1] < n_frames:
        raise ValueError(f"cut frames must lie in 0..{n_frames - 1}. Got: {cuts}")
    starts = sorted({0, *cuts}) if n_frames else []
    plan = []
    for shot, end in zip(starts, starts[1:] + [n_frames]):
        pieces = -(-(end - shot) // chunk)  # ceil: the fewest chunks of <= chunk frames
        bounds = [shot + (end - shot) * k // pieces for k in range(pieces + 1)]
        for prev, a, b in zip([shot] + bounds, bounds, bounds[1:]):
            k = min(fade, a - prev)  # the cross-faded frames lie inside the previous chunk
            begin = a - k - warmup
            plan.append(Chunk(a, b, shot, a, shot) if begin <= shot else Chunk(a, b, begin, a - k, shot))
    return plan


def find_cuts(info, *, settings: Settings, start: float = 0.0, end: float | None = None,
              max_frames: int | None = None, progress=None) -> list[int]:
    """Frame indices where a sequential render would start the dream afresh (scene cuts).

    One decode pass at the render size, with the very test ``render_video`` applies
    (``flow.scene_cut_score(prev, cur) > settings.video.scene_cut``) to the very same
    frames, so both agree on every cut. None when nothing is carried (``blend`` 0) or cuts are
    off (``scene_cut`` >= 1). ``progress(1)`` is called per frame.
    """
    v = settings.video
    if not carries(settings) or v.scene_cut >= 1:
        return []
    cuts, prev = [], None
    frames = iter_frames(info, start=start, end=end, max_size=settings.dream.max_size, max_frames=max_frames)
    try:
        for i, src in enumerate(frames):
            if prev is not None and flow.scene_cut_score(prev, src) > v.scene_cut:
                cuts.append(i)
            prev = src
            if progress is not None:
                progress(1)
    finally:
        frames.close()
    return cuts


def plan_chunks(n_frames: int, cut_frames, *, settings: Settings, chunk: int, warmup: int, fade: int) -> list[Chunk]:
    """``plan_segments`` for a render with these settings: when nothing is carried from frame to frame
    (``blend`` 0), every chunk is exact from its first frame, so there is no warm-up, fade or seam."""
    if carries(settings):
        return plan_segments(n_frames, cut_frames, chunk=chunk, warmup=warmup, fade=fade)
    return [dataclasses.replace(c, warmup_from=c.first, fade_from=c.first, shot=c.first)
            for c in plan_segments(n_frames, cut_frames, chunk=chunk, warmup=0, fade=0)]
