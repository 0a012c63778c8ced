"""The one user-facing error type.

A ``ZoomdreamError`` carries a single line that says what went wrong, where (the file,
the key), what was expected and what to do. The CLI prints it as
``zoomdream: error: <message>`` and exits with code 2. Bugs are not ZoomdreamErrors:
they raise normally and show a traceback with ``--debug``.

Ctrl-C is noticed at the next safe point wherever it lands: the CLI's SIGINT handler notes it
(:func:`note_interrupt`) before raising KeyboardInterrupt, and :func:`check_interrupt`, called
after each library call (ffmpeg, librosa, a dream step, a frame), raises it again if nobody
acted on it: a foreign callback (a ctypes callback inside numba or TensorFlow) may swallow the
KeyboardInterrupt, never the note.
"""

import contextlib
import signal
import threading

__all__ = ["ZoomdreamError", "Interrupted", "Terminated", "signals_to_exceptions", "note_interrupt", "clear_interrupt",
           "check_interrupt"]

_INTERRUPT = threading.Event()


def note_interrupt() -> None:
    """Remember a Ctrl-C until :func:`check_interrupt` or :func:`clear_interrupt` takes it."""
    _INTERRUPT.set()


def clear_interrupt() -> None:
    """Forget a noted Ctrl-C (it has been acted on)."""
    _INTERRUPT.clear()


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was noted and nobody acted on it yet; else nothing (cheap)."""
    if _INTERRUPT.is_set():
        _INTERRUPT.clear()
        raise KeyboardInterrupt


class ZoomdreamError(Exception):
    """A problem with the user's input, preset, weights or output location (exit code 2)."""

    exit_code = 2
    max_chars = 1000  # a backstop: messages quote bounded values, but one line never grows without limit

    def __init__(self, message: str):
        # One line, always: a multi-line message from a subprocess is folded.
        text = " ".join(str(message).split())
        if len(text) > self.max_chars:
            text = text[:self.max_chars - 3] + "..."
        super().__init__(text)


class Interrupted(BaseException):
    """The run was stopped by Ctrl-C (code 130) or SIGTERM (code 143) after cleaning up.

    A BaseException, like KeyboardInterrupt, so ordinary ``except Exception`` blocks
    don't swallow it; the message says how far the run got and how to continue.
    """

    def __init__(self, message: str, code: int = 130):
        super().__init__(message)
        self.code = code


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every ``finally`` (ffmpeg, temp files) runs."""


@contextlib.contextmanager
def signals_to_exceptions():
    """Inside, SIGTERM raises :class:`Terminated` in the main thread, so cleanup runs (CLI or library).

    Outside the main thread signals cannot be handled, and are left alone. The previous handler
    comes back on the way out, so the command line and a render inside it nest.
    """
    def on_term(signum, frame):
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
