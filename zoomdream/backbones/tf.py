"""Import TensorFlow quietly, once.

TensorFlow's C++ start-up lines (oneDNN notice, "Could not find cuda drivers", the absl
pre-init warning) are written straight to file descriptor 2 before any Python logging
exists, and ``TF_CPP_MIN_LOG_LEVEL`` no longer silences all of them. So the import runs
with fd 2 pointed at /dev/null, then stderr is restored; a failed import still raises
normally after the restore, with its traceback intact.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["tf"]

_tf = None


@contextlib.contextmanager
def _stderr_silenced():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tf():
    """Return the ``tensorflow`` module, imported without log spam (cached)."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        with _stderr_silenced():
            import keras  # noqa: F401, PLC0415
            import tensorflow  # noqa: PLC0415  (deliberately lazy: --help must not pay for it)

            tensorflow.get_logger().setLevel("ERROR")
            with contextlib.suppress(Exception):
                import absl.logging  # noqa: PLC0415

                absl.logging.set_verbosity(absl.logging.ERROR)
            # Take GPU memory as needed instead of all of it up front.
            for gpu in tensorflow.config.list_physical_devices("GPU"):
                with contextlib.suppress(RuntimeError):
                    tensorflow.config.experimental.set_memory_growth(gpu, True)
        _tf = tensorflow
    return _tf
