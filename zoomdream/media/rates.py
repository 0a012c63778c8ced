"""Frame rates: measured from packet timestamps, snapped to the standard rates, checked when given.

A CFR rate measured from rounded timestamps snaps to a standard rate (23.976, 24, 25, 29.97,
30, 48, 50, 59.94, 60) when within ``CFR_SNAP``; a variable-frame-rate stream is resampled to
the rate of its short intervals, snapped within ``VFR_SNAP`` and capped at ``VFR_MAX_FPS``.
"""

from __future__ import annotations

from fractions import Fraction

from zoomdream.errors import ZoomdreamError

__all__ = ["measure_rate", "as_rate", "fps_text", "snap", "STANDARD_RATES", "VFR_MAX_FPS"]

VFR_MAX_FPS = Fraction(60)  # a VFR source is never resampled above this rate (each frame costs a dream)
STANDARD_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                             "60000/1001", "60"))
CFR_SNAP = Fraction(3, 1000)  # a CFR rate measured from rounded timestamps snaps to a standard rate within 0.3 %
VFR_SNAP = Fraction(5, 100)  # a VFR base rate snaps to a standard rate within 5 %
VFR_JITTER = 4  # an interval off the median by more than median/4 (and > 1 tick) marks the stream VFR


def snap(rate: Fraction, tolerance: Fraction) -> Fraction:
    """The nearest standard (or whole) rate within ``tolerance`` (relative), else a tidy fraction."""
    candidates = list(STANDARD_RATES)
    if round(rate) >= 1:
        candidates.append(Fraction(round(rate)))
    best = min(candidates, key=lambda c: abs(c - rate) / c)
    if abs(best - rate) / best <= tolerance:
        return best
    return rate.limit_denominator(1001) or Fraction(1)


def fps_text(fps: Fraction) -> str:
    """``fps`` for a message: ``24``, ``29.97``."""
    return f"{float(fps):.4g}"


def measure_rate(pts: list[int], tb: Fraction | None, fallback: float | None) -> tuple[Fraction, bool]:
    """(rate, is_vfr) from packet timestamps (``tb`` seconds per tick).

    CFR: the exact rate when all intervals are equal, else the mean rate snapped to a standard
    one. VFR (intervals off the median by more than a quarter): the rate of the short intervals
    (10th percentile), snapped to a standard rate and capped at VFR_MAX_FPS, so no source frame
    is lost and the timing is kept.
    """
    ts = sorted(set(p for p in pts if p is not None))
    if tb is None or len(ts) < 2:
        return snap(Fraction(fallback or 25).limit_denominator(1001), CFR_SNAP), False
    steps = [b - a for a, b in zip(ts, ts[1:])]
    median = sorted(steps)[len(steps) // 2]
    vfr = any(abs(s - median) > max(1, median / VFR_JITTER) for s in steps)
    if not vfr:
        if len(set(steps)) == 1:
            return 1 / (steps[0] * tb), False
        return snap(len(steps) / ((ts[-1] - ts[0]) * tb), CFR_SNAP), False
    short = sorted(steps)[int(0.1 * (len(steps) - 1))]
    rate = min(snap(1 / (short * tb), VFR_SNAP), VFR_MAX_FPS)
    return max(rate, Fraction(1)), True


def as_rate(fps, where) -> Fraction:
    """``fps`` (a number, a Fraction or ``"30000/1001"``) as an exact positive rate; ``where`` names it in errors."""
    try:
        rate = Fraction(fps).limit_denominator(100000) if isinstance(fps, float) else Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ZoomdreamError(f"{where}: frame rate must be a positive number (got {fps!r})") from None
    if rate <= 0:
        raise ZoomdreamError(f"{where}: frame rate must be a positive number (got {fps!r})")
    return rate
