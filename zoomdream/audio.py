"""Audio features per output frame, for schedules: rms, onset, beat, bass, mid, treble.

The soundtrack is decoded by the bundled ffmpeg (mono float32 at ANALYSIS_RATE) and analysed
at a fine hop (HOP samples, 5.8 ms), then gathered onto the output frames: frame i stands for
the audio from ``offset + (i - 1/2) / fps`` to ``offset + (i + 1/2) / fps`` (centred on its
time, so a click exactly on a frame's time falls on that frame even when the detector is a
few milliseconds early or late). Loudness and band energies are the mean over that window,
onset strength its maximum. Every feature is normalised to 0..1 over the WHOLE track (not
only the rendered part), so ``--start``/``--end``/``--preview`` and render chunks see the
same values at the same moment of the music. Frames after the track ends are silence (0).

Why librosa: onset strength (log-mel spectral flux with the lag and framing compensation
done right) and beat tracking (Ellis' dynamic programming with a tempo prior) are the field's
reference implementations, used by Parseq-style tools and MIR research alike; a numpy copy
would be a weaker re-implementation to maintain. Its cost is numba's JIT on first use, paid once
per process and small beside a dream render (``benchmarks/bench_audio.py``: 9.1 s for the first
60 s track, 2.0 s for the next, on a shared 2-core machine). It is imported lazily (never by
``zoomdream --help``) and is the optional extra ``zoomdream[audio]``: without it, using an
audio feature is an error that says how to install it. The band energies and loudness are
plain numpy on one STFT.

Convention: features are float64 (n,) arrays in [0, 1], one value per output frame.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np

from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import check_readable, write_text_atomic
from zoomdream.settings.schedule import FEATURES

__all__ = ["FEATURES", "ANALYSIS_RATE", "ANALYSIS_VERSION", "Analysis", "analyse", "frame_features",
           "analysis_library_version", "write_csv", "plot_features"]

ANALYSIS_RATE = 22050  # Hz: the decode rate; enough for treble up to 11 kHz
HOP = 128  # samples between analysis frames (5.8 ms at 22050 Hz): onsets land within ~10 ms
N_FFT = 1024  # STFT window (46 ms) for loudness, band energies and onset strength
BASS_HZ = 250.0  # bass: below this
TREBLE_HZ = 4000.0  # treble: above this; mid: in between
ONSET_LAG_HOPS = 1  # onset-strength peaks trail the hit by about one hop (measured); shifted back
EDGE_BEAT_FRACTION = 0.5  # leading/trailing beats weaker than this share of the median beat's onset are dropped
ANALYSIS_VERSION = 1  # part of the resume manifest: bump whenever a feature's definition changes


@dataclass(frozen=True)
class Analysis:
    """A track's features on the fine hop grid (not yet per output frame).

    Convention: ``times`` (k,) seconds into the file (centre of each analysis frame); each of
    ``rms``, ``onset``, ``bass``, ``mid``, ``treble`` (k,) float64 >= 0, unnormalised;
    ``beats`` the beat times in seconds, ascending; ``duration`` the track length in seconds.
    """

    times: np.ndarray
    rms: np.ndarray
    onset: np.ndarray
    bass: np.ndarray
    mid: np.ndarray
    treble: np.ndarray
    beats: np.ndarray
    tempo: float  # beats per minute (librosa's estimate; 0 without beats)
    duration: float


def _librosa():
    try:
        import librosa  # noqa: PLC0415  (slow to import and JIT-compiles on first use)
    except ImportError:
        raise ZoomdreamError("audio features need librosa: pip install 'zoomdream[audio]' (or pip install librosa)") \
            from None
    return librosa


def analysis_library_version() -> str:
    """The librosa version the features come from (part of the resume manifest)."""
    return _librosa().__version__


def _analyse_samples(y: np.ndarray) -> Analysis:
    """Features of mono float32 samples at ANALYSIS_RATE."""
    librosa = _librosa()
    sr = ANALYSIS_RATE
    duration = len(y) / sr
    if len(y) < N_FFT:  # shorter than one window: pad with silence so every step has a frame
        y = np.pad(y, (0, N_FFT - len(y)))
    y = np.ascontiguousarray(y, dtype=np.float32)
    # 1) one STFT for loudness and band energies
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True)) ** 2  # (1 + N_FFT/2, k)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)  # (1 + N_FFT/2,)
    k = power.shape[1]

    def band(lo, hi):
        rows = (freqs >= lo) & (freqs < hi)
        return np.sqrt(power[rows].sum(axis=0))  # (k,) amplitude in the band

    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP, center=True)[0][:k]  # (k,)
    # 2) onset strength (librosa's log-mel flux; a 1024 window times hits more tightly than 2048) and beats on the same hop grid
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP, n_fft=N_FFT)  # (k',) aligned to frame times
    onset = np.pad(onset, (0, max(0, k - len(onset))))[:k]
    # Measured on click tracks: the flux peaks 3-8 ms after the hit (one hop on average), so move it one hop
    # earlier; clicks then land on their frame at 24-30 fps wherever they fall inside it.
    onset = np.concatenate([onset[ONSET_LAG_HOPS:], np.zeros(ONSET_LAG_HOPS, onset.dtype)])
    if np.any(onset > 0):
        tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP, units="time",
                                                 trim=False)  # trim drops a first beat right at a track's start
        tempo = float(np.atleast_1d(tempo)[0])
    else:
        tempo, beats = 0.0, np.zeros(0)
    times = librosa.frames_to_time(np.arange(k), sr=sr, hop_length=HOP)  # (k,)
    return Analysis(times=times, rms=rms.astype(np.float64), onset=onset.astype(np.float64),
                    bass=band(0.0, BASS_HZ), mid=band(BASS_HZ, TREBLE_HZ), treble=band(TREBLE_HZ, sr),
                    beats=np.asarray(beats, np.float64), tempo=tempo, duration=duration)


@functools.lru_cache(maxsize=4)
def _analyse_cached(path: str, size: int, mtime_ns: int) -> Analysis:
    from zoomdream.media.read import decode_audio  # noqa: PLC0415

    return _analyse_samples(decode_audio(path, rate=ANALYSIS_RATE))


def analyse(path) -> Analysis:
    """Decode and analyse the first audio stream of ``path`` (a video or audio file); cached per process."""
    st = check_readable(path, "audio file")
    return _analyse_cached(os.path.abspath(os.fspath(path)), st.st_size, st.st_mtime_ns)


def _gather(a: Analysis, centres: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Per output frame (centred at ``centres`` seconds): means of rms/bands, max of onset; (m,) each."""
    edges = np.concatenate([centres - 0.5 / fps, centres[-1:] + 0.5 / fps])  # (m + 1,)
    idx = np.searchsorted(a.times, edges)  # (m + 1,) first hop at or after each edge
    lo, hi = idx[:-1], idx[1:]
    k = len(a.times)
    inside = (hi > lo) & (lo < k)  # frames with at least one hop inside their window
    nearest = np.clip(np.searchsorted(a.times, centres), 0, k - 1)  # (m,) for windows narrower than a hop
    start = np.where(inside, np.minimum(lo, k - 1), nearest)
    count = np.where(inside, hi - lo, 1)
    out = {}
    for name in ("rms", "bass", "mid", "treble", "onset"):
        x = getattr(a, name)
        if name == "onset":
            vals = np.array([x[s:s + c].max() for s, c in zip(start, count)])
        else:
            csum = np.concatenate([[0.0], np.cumsum(x)])  # (k + 1,)
            vals = (csum[start + count] - csum[start]) / count
        out[name] = vals
    silent = centres > a.duration + 0.5 / fps  # after the track: silence
    for v in out.values():
        v[silent] = 0.0
    return out


def _beat_frames(beats: np.ndarray, frames: np.ndarray, onset: np.ndarray, offset: float, fps: float) -> np.ndarray:
    """The output frame of each beat: the nearest frame, moved by at most one frame to the strongest onset.

    The tracker reports beats on its hop grid, up to a hop late or early; snapping to the onset peak
    puts the beat on the frame where the hit is, the frame an ``onset`` schedule reacts on.
    """
    nearest = np.rint((beats - offset) * fps).astype(np.int64) - frames[0]  # (b,) positions in the grid
    out = []
    for p in nearest:
        if not 0 <= p < len(frames):
            continue
        lo, hi = max(p - 1, 0), min(p + 2, len(frames))
        window = onset[lo:hi]
        best = lo + int(np.argmax(window))
        out.append(best if window.max() > onset[p] else p)  # ties keep the nearest frame
    out = np.unique(np.asarray(out, np.int64))
    # The tracker (run untrimmed, so a hit right at the start counts) may pad the ends with beats on
    # silence: drop leading and trailing beats with less than half the typical beat's onset strength.
    if out.size:
        strong = onset[out] >= EDGE_BEAT_FRACTION * np.median(onset[out])
        keep = np.flatnonzero(strong)
        out = out[keep[0]:keep[-1] + 1] if keep.size else out[:0]
    return out


def _beat_curve(beat_pos: np.ndarray, m: int, fps: float) -> np.ndarray:
    """1 on each beat position, falling linearly to 0 at the next beat; (m,) over grid positions 0..m-1."""
    out = np.zeros(m)
    if beat_pos.size == 0:
        return out
    period = float(np.median(np.diff(beat_pos))) if len(beat_pos) > 1 else fps  # decay after the last beat
    pos = np.arange(m)
    j = np.searchsorted(beat_pos, pos, side="right") - 1  # (m,) last beat at or before each position
    has = j >= 0
    prev = beat_pos[np.clip(j, 0, None)]
    nxt = np.where(j + 1 < len(beat_pos), beat_pos[np.clip(j + 1, 0, len(beat_pos) - 1)], prev + period)
    span = np.maximum(nxt - prev, 1)
    out[has] = np.clip(1.0 - (pos[has] - prev[has]) / span[has], 0.0, 1.0)
    return out


def frame_features(path, *, fps: float, n: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    """The features of ``path`` for output frames 0..n-1, frame i at ``offset + i / fps`` seconds of the file.

    Normalised over the whole track: the frame grid is extended over the full file (same phase),
    each feature divided by its maximum there (a silent track gives zeros). ``beat`` needs no
    scaling: 1 on beat frames. Returns {name: float64 (n,)} for every name in FEATURES.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ZoomdreamError(f"fps must be a finite number > 0; got {fps!r}")
    a = analyse(path)
    first = -math.floor(offset * fps + 1e-6)  # the grid's first frame at or after the file's start
    last = max(n, math.ceil((a.duration - offset) * fps) + 1)
    frames = np.arange(first, last)  # (m,) output frame indices covering the whole file and the render
    raw = _gather(a, offset + frames / fps, fps)
    out = {}
    for name, v in raw.items():
        top = v.max(initial=0.0)
        out[name] = v / top if top > 0 else np.zeros_like(v)
    out["beat"] = _beat_curve(_beat_frames(a.beats, frames, raw["onset"], offset, fps), len(frames), fps)
    sel = slice(-first, -first + n)
    return {name: np.ascontiguousarray(out[name][sel], dtype=np.float64) for name in FEATURES}


# ---------------------------------------------------------------- the `audio` command's outputs
def write_csv(path, features: dict[str, np.ndarray], *, fps: float) -> None:
    """One row per frame: frame, seconds, then each feature (6 decimals)."""
    n = len(next(iter(features.values())))
    lines = [",".join(["frame", "seconds", *FEATURES])]
    for i in range(n):
        lines.append(",".join([str(i), f"{i / fps:.6f}", *(f"{features[k][i]:.6f}" for k in FEATURES)]))
    write_text_atomic(path, "\n".join(lines) + "\n")


PLOT_COLOURS = {  # RGB, one per feature
    "rms": (235, 235, 235), "onset": (255, 170, 60), "beat": (255, 80, 80),
    "bass": (90, 160, 255), "mid": (110, 220, 120), "treble": (220, 120, 255),
}
ROW_HEIGHT = 90  # px per feature strip
LEFT = 70  # px of labels left of the strips
AXIS = 44  # px below the strips for the time axis


def plot_features(features: dict[str, np.ndarray], *, fps: float, width: int = 1200, title: str = "") -> np.ndarray:
    """A picture of the features over time: one strip each, seconds and frame numbers on the axis.

    Convention: returns (H, W, 3) uint8 RGB; x is the frame index, linear from frame 0 at the left edge
    of the strips to frame n-1 at the right.
    """
    import cv2  # noqa: PLC0415

    n = len(next(iter(features.values())))
    plot_w = max(100, width - LEFT - 10)
    top = 26 if title else 6
    h = top + ROW_HEIGHT * len(FEATURES) + AXIS
    img = np.full((h, LEFT + plot_w + 10, 3), 18, np.uint8)  # (h, w, 3) dark background
    font = cv2.FONT_HERSHEY_SIMPLEX
    if title:
        cv2.putText(img, title, (LEFT, 18), font, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
    xs = LEFT + (np.arange(n) * (plot_w - 1) / max(n - 1, 1))  # (n,) x pixel of each frame
    ticks = _ticks(n / fps)
    for row, name in enumerate(FEATURES):
        y0 = top + row * ROW_HEIGHT
        y1 = y0 + ROW_HEIGHT - 8
        cv2.rectangle(img, (LEFT, y0), (LEFT + plot_w - 1, y1), (40, 40, 40), -1)
        for sec in ticks:
            x = int(round(LEFT + sec * fps * (plot_w - 1) / max(n - 1, 1)))
            cv2.line(img, (x, y0), (x, y1), (60, 60, 60), 1)
        ys = y1 - features[name] * (y1 - y0 - 2)  # (n,) 1.0 at the top of the strip
        pts = np.stack([xs, ys], axis=1).round().astype(np.int32).reshape(-1, 1, 2)  # (n, 1, 2)
        cv2.polylines(img, [pts], False, PLOT_COLOURS[name], 1, cv2.LINE_AA)
        cv2.putText(img, name, (6, y0 + 20), font, 0.5, PLOT_COLOURS[name], 1, cv2.LINE_AA)
        cv2.putText(img, "1", (LEFT - 14, y0 + 10), font, 0.35, (150, 150, 150), 1, cv2.LINE_AA)
        cv2.putText(img, "0", (LEFT - 14, y1), font, 0.35, (150, 150, 150), 1, cv2.LINE_AA)
    ya = top + ROW_HEIGHT * len(FEATURES)
    cv2.putText(img, "s", (6, ya + 14), font, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(img, "frame", (6, ya + 32), font, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    for sec in ticks:
        x = int(round(LEFT + sec * fps * (plot_w - 1) / max(n - 1, 1)))
        cv2.line(img, (x, ya - 8), (x, ya - 2), (200, 200, 200), 1)
        label, frame = f"{sec:g}", str(int(round(sec * fps)))
        for text, y, grey in ((label, ya + 14, 200), (frame, ya + 32, 150)):
            tx = min(x - 4 * len(text), img.shape[1] - 8 * len(text) - 2)  # the last label stays inside
            cv2.putText(img, text, (tx, y), font, 0.4, (grey, grey, grey), 1, cv2.LINE_AA)
    return img


def _ticks(seconds: float) -> list[float]:
    """Round tick positions in seconds, about 6-12 of them over ``seconds``."""
    for step in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if seconds / step <= 12:
            break
    k = int(seconds / step + 1e-9)
    return [round(i * step, 6) for i in range(k + 1)]
