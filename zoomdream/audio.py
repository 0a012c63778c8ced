"""Audio features per output frame, for schedules: rms, onset, beat, bass, mid, treble.

The soundtrack is decoded by the bundled ffmpeg (mono float32 at ANALYSIS_RATE) and analysed
at a fine hop (HOP samples, 5.8 ms), then gathered onto the output frames: frame i stands for
the audio from ``offset + (i - 1/2) / fps`` to ``offset + (i + 1/2) / fps`` (centred on its
time, so a click exactly on a frame's time falls on that frame even when the detector is a
few milliseconds early or late). Loudness and band energies are the mean over that window,
onset strength its maximum. Every feature is normalised to 0..1 over the WHOLE track (not
only the rendered part), so ``--start``/``--end``/``--preview`` and render chunks see the
same values at the same moment of the music. Frames after the track ends are silence (0).
Time zero is the container's start, as for the encoder that muxes the track (``decode_audio``
pads a track that starts late with silence), so a sound and the frame it drives line up.

Memory is bounded: the track is decoded and analysed in blocks of BLOCK_SECONDS with overlap
(``_analyse_blocks``), and a track longer than one block is analysed in a child process, so
librosa's and numba's memory never adds to TensorFlow's; ``check_analysis_budget`` refuses a
track whose analysis would not fit, before decoding it.

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
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from zoomdream.errors import ZoomdreamError, check_interrupt
from zoomdream.fileio import check_readable, write_text_atomic
from zoomdream.settings.schedule import FEATURES

__all__ = ["FEATURES", "ANALYSIS_RATE", "ANALYSIS_VERSION", "BLOCK_SECONDS", "Analysis", "analyse", "frame_features",
           "analysis_library_version", "analysis_memory", "check_analysis_budget", "write_csv", "plot_features"]

ANALYSIS_RATE = 22050  # Hz: the decode rate; enough for treble up to 11 kHz
HOP = 128  # samples between analysis frames (5.8 ms at 22050 Hz): onsets land within ~10 ms
N_FFT = 1024  # STFT window (46 ms) for loudness, band energies and onset strength
BASS_HZ = 250.0  # bass: below this
TREBLE_HZ = 4000.0  # treble: above this; mid: in between
ONSET_LAG_HOPS = 1  # onset-strength peaks trail the hit by about one hop (measured); shifted back
EDGE_BEAT_FRACTION = 0.5  # leading/trailing beats weaker than this share of the median beat's onset are dropped
ANALYSIS_VERSION = 2  # part of the resume manifest: bump whenever a feature's definition changes
# Long tracks are analysed in blocks (memory stays bounded); one block is exactly the whole-track analysis.
BLOCK_SECONDS = 20.0  # samples decoded and analysed at a time (the working set of a block: about 60 MB)
BLOCK_PAD = 2 * N_FFT  # samples of each neighbour analysed with a block, so its windows see their context
TEMPOGRAM_HOPS = 384  # librosa's tempogram window (its default), in hops
# Memory of the analysis, measured with benchmarks/bench_audio_memory.py and rounded up: librosa and numba
# once compiled (about 400 MB) with the working set of one block, and the per-hop features kept for the track.
ANALYSIS_BASE_BYTES = 512 << 20
ANALYSIS_BYTES_PER_HOP = 160


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


def _block_features(y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-hop rms, onset (unshifted) and band amplitudes of mono float32 samples at ANALYSIS_RATE; (k,) each."""
    librosa = _librosa()
    sr = ANALYSIS_RATE
    if len(y) < N_FFT:  # shorter than one window: pad with silence so every step has a frame
        y = np.pad(y, (0, N_FFT - len(y)))
    y = np.ascontiguousarray(y, dtype=np.float32)
    # 1) one STFT for loudness and band energies
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True)) ** 2  # (1 + N_FFT/2, k)
    check_interrupt()
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)  # (1 + N_FFT/2,)
    k = power.shape[1]

    out = {}
    for name, lo, hi in (("bass", 0.0, BASS_HZ), ("mid", BASS_HZ, TREBLE_HZ), ("treble", TREBLE_HZ, sr)):
        rows = (freqs >= lo) & (freqs < hi)
        out[name] = np.sqrt(power[rows].sum(axis=0)).astype(np.float64)  # (k,) amplitude in the band
    del power  # the spectra of a block go before the onset's are made
    out["rms"] = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP, center=True)[0][:k].astype(np.float64)
    check_interrupt()
    # 2) onset strength (librosa's log-mel flux; a 1024 window times hits more tightly than 2048) on the same hop grid
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP, n_fft=N_FFT)  # (k',) aligned to frame times
    check_interrupt()
    out["onset"] = np.pad(onset, (0, max(0, k - len(onset))))[:k].astype(np.float64)
    return out


def _tempo(onset: np.ndarray, block_hops: int) -> float:
    """librosa's tempo estimate from the mean tempogram, built block by block over the onset envelope."""
    librosa = _librosa()
    step = max(block_hops, 4 * TEMPOGRAM_HOPS)
    total, count = np.zeros(TEMPOGRAM_HOPS), 0
    for lo in range(0, len(onset), step):
        before = min(lo, TEMPOGRAM_HOPS)  # overlap: the windows of the kept columns see their context
        chunk = onset[lo - before:lo + step + TEMPOGRAM_HOPS]
        tg = librosa.feature.tempogram(onset_envelope=chunk, sr=ANALYSIS_RATE, hop_length=HOP,
                                       win_length=TEMPOGRAM_HOPS)  # (TEMPOGRAM_HOPS, len(chunk))
        inner = tg[:, before:before + min(step, len(onset) - lo)]
        total += inner.sum(axis=1)
        count += inner.shape[1]
        check_interrupt()
    tempo = librosa.feature.tempo(tg=(total / max(count, 1))[:, None], sr=ANALYSIS_RATE, hop_length=HOP)
    return float(np.atleast_1d(tempo)[0])


def _finish(feats: dict[str, np.ndarray], duration: float, tempo_hops: int | None = None) -> Analysis:
    """The Analysis from per-hop features of the whole track; ``tempo_hops``: estimate the tempo in blocks of
    that many hops (None: at once, as librosa's beat tracker does)."""
    librosa = _librosa()
    sr = ANALYSIS_RATE
    onset = feats["onset"]
    k = len(onset)
    # Measured on click tracks: the flux peaks 3-8 ms after the hit (one hop on average), so move it one hop
    # earlier; clicks then land on their frame at 24-30 fps wherever they fall inside it.
    onset = np.concatenate([onset[ONSET_LAG_HOPS:], np.zeros(ONSET_LAG_HOPS, onset.dtype)])
    if np.any(onset > 0):
        # A long track estimates its tempo block by block (the tempogram of an hour would take gigabytes).
        bpm = None if tempo_hops is None else _tempo(onset, tempo_hops)
        tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP, units="time",
                                                 trim=False, bpm=bpm)  # trim drops a first beat at a track's start
        tempo = float(np.atleast_1d(tempo)[0])
        check_interrupt()
    else:
        tempo, beats = 0.0, np.zeros(0)
    times = librosa.frames_to_time(np.arange(k), sr=sr, hop_length=HOP)  # (k,)
    return Analysis(times=times, rms=feats["rms"], onset=onset, bass=feats["bass"], mid=feats["mid"],
                    treble=feats["treble"], beats=np.asarray(beats, np.float64), tempo=tempo, duration=duration)


def _analyse_samples(y: np.ndarray) -> Analysis:
    """Features of mono float32 samples at ANALYSIS_RATE, in one block."""
    return _finish(_block_features(y), len(y) / ANALYSIS_RATE)


def _block_hops(block_seconds: float) -> int:
    return max(1, int(block_seconds * ANALYSIS_RATE) // HOP)


def _analyse_blocks(blocks: Iterator[np.ndarray], block_seconds: float) -> Analysis:
    """Features of a track given as consecutive sample blocks (all as long as the first, a multiple of HOP,
    but the last, which may be shorter).

    Each block is analysed with BLOCK_PAD samples of its neighbours on either side, and only the
    hops that belong to it are kept: every STFT window of a kept hop lies inside the samples
    analysed, so the features are those of the whole track (but for the onset's log floor, which
    librosa takes per block). A track of one block is analysed exactly as a whole. Memory: a few
    blocks of samples and their spectra, plus the per-hop features of the track.
    """
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("rms", "onset", "bass", "mid", "treble")}
    prev = np.zeros(0, np.float32)  # the last BLOCK_PAD samples before `cur`
    cur, start, total = None, 0, 0  # start: the track's sample index of cur[0]
    for nxt in _with_end(blocks):
        check_interrupt()
        if nxt is not None:
            total += len(nxt)
        if cur is not None:
            if nxt is None and start == 0:  # the whole track in one block
                return _analyse_samples(cur)
            ahead = nxt[:BLOCK_PAD] if nxt is not None else np.zeros(0, np.float32)
            feats = _block_features(np.concatenate([prev, cur, ahead]))
            first = len(prev) // HOP  # the hop of cur[0] in the analysed samples
            last = (start + len(cur)) // HOP if nxt is not None else total // HOP + 1  # track hops [start//HOP, last)
            for name, v in feats.items():
                parts[name].append(v[first:first + last - start // HOP])
            prev = np.concatenate([prev, cur])[-BLOCK_PAD:]
            start += len(cur)
        cur = nxt
    if cur is None and start == 0:  # no samples at all
        return _analyse_samples(np.zeros(0, np.float32))
    return _finish({name: np.concatenate(v) for name, v in parts.items()}, total / ANALYSIS_RATE,
                   tempo_hops=_block_hops(block_seconds))


def _with_end(blocks):
    yield from blocks
    yield None


def analysis_memory(seconds: float | None) -> int:
    """Bytes the analysis of a track of ``seconds`` needs at most: librosa, a block's working set, the per-hop features."""
    hops = (seconds or 0.0) * ANALYSIS_RATE / HOP
    return int(ANALYSIS_BASE_BYTES + hops * ANALYSIS_BYTES_PER_HOP)


def check_analysis_budget(path, seconds: float | None) -> None:
    """Refuse, before decoding, a track whose analysis would not fit in the memory available."""
    from zoomdream.checks import available_memory  # noqa: PLC0415

    need = analysis_memory(seconds)
    have = available_memory()
    if have is not None and need > have:
        length = f"{seconds / 60:.0f} minutes" if seconds else "the track"
        raise ZoomdreamError(f"{path}: analysing {length} of audio needs about {need / 1e6:.0f} MB of memory and "
                             f"{have / 1e6:.0f} MB is available; use a shorter track or free some memory")


@functools.lru_cache(maxsize=4)
def _analyse_cached(path: str, size: int, mtime_ns: int) -> Analysis:
    from zoomdream.media.probe import probe_audio  # noqa: PLC0415

    stream = probe_audio(path)
    if stream is None or stream.empty:
        raise ZoomdreamError(f"{path}: no audio stream found" if stream is None else
                             f"{path}: its audio track holds no samples")
    check_analysis_budget(path, stream.duration)
    if stream.duration is not None and stream.duration <= BLOCK_SECONDS:
        return _analyse_file(path, BLOCK_SECONDS)
    return _analyse_in_child(path)


def _analyse_file(path: str, block_seconds: float) -> Analysis:
    """Decode ``path`` block by block and analyse it, here."""
    from zoomdream.media.read import stream_audio  # noqa: PLC0415

    blocks = stream_audio(path, rate=ANALYSIS_RATE, block=_block_hops(block_seconds) * HOP)
    try:
        return _analyse_blocks(blocks, block_seconds)
    finally:
        blocks.close()


def _analyse_in_child(path: str) -> Analysis:
    """``_analyse_file`` in a fresh interpreter: librosa's and numba's memory (about 400 MB once compiled)
    then never adds to TensorFlow's in a render, and leaves with the child. A short track is analysed
    in-process instead: starting the child (importing librosa again) would cost more than the analysis.
    The child runs in its own session, like ffmpeg: Ctrl-C reaches this process, which kills it."""
    from zoomdream.media.process import capture_bytes  # noqa: PLC0415

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys; from zoomdream.audio import analysis_child; analysis_child(sys.argv[1], float(sys.argv[2]))"
    rc, out, err = capture_bytes([sys.executable, "-c", code, path, repr(BLOCK_SECONDS)],
                                 env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                     p for p in (package_root, os.environ.get("PYTHONPATH")) if p)})
    if rc == ZoomdreamError.exit_code:
        raise ZoomdreamError(err.decode("utf-8", "replace").strip().splitlines()[-1])
    if rc != 0:
        raise RuntimeError(f"audio analysis of {path} failed (exit {rc}): {err.decode('utf-8', 'replace')[-2000:]}")
    return pickle.loads(out)


def analysis_child(path: str, block_seconds: float) -> None:
    """The child's side of ``_analyse_in_child``: the pickled Analysis on stdout, or one error line on stderr."""
    try:
        result = _analyse_file(path, block_seconds)
    except ZoomdreamError as e:
        print(e, file=sys.stderr)
        sys.exit(ZoomdreamError.exit_code)
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


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
