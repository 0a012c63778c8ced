"""Running the bundled ffmpeg: find it, start it signal-safely, collect its output, stop it.

Every ffmpeg runs with ``-nostdin`` in its own session (a terminal Ctrl-C reaches only Python,
which then kills ffmpeg), and every path handed to ffmpeg goes through ``url`` (absolute,
prefixed ``file:``) so names like ``-dash.mp4`` or ``file:odd.mp4`` are never read as options
or protocols. Every child this process started and has not reaped is in one registry, so
``stop_children`` can end them all whatever happened.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import threading

import imageio_ffmpeg

from zoomdream.errors import ZoomdreamError, check_interrupt

__all__ = ["ffmpeg_exe", "url", "popen", "stop", "stop_children", "capture", "capture_bytes", "run", "tail",
           "ffmpeg_version", "STDERR_TAIL_CHARS"]

STDERR_TAIL_CHARS = 400  # how much of ffmpeg's stderr a ZoomdreamError carries


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (IMAGEIO_FFMPEG_EXE, else the one bundled with imageio-ffmpeg)."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise ZoomdreamError("ffmpeg: not found; reinstall imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE") from None


def url(path: str) -> str:
    """``path`` as ffmpeg must be given it: absolute, with an explicit ``file:`` protocol."""
    # Absolute + explicit protocol: "-x.mp4" is not an option, "file:odd.mp4" not a protocol.
    return "file:" + os.path.abspath(path)


# Every ffmpeg this process started and has not reaped yet: stop_children() ends them all.
_LIVE: set[subprocess.Popen] = set()
_SPAWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def popen(cmd: list[str], **kwargs) -> subprocess.Popen:
    """Start ffmpeg; a Ctrl-C or SIGTERM at any moment, even mid-fork, still gets it stopped.

    Its stdin is /dev/null unless ``kwargs`` says otherwise (``stdin=PIPE`` for frames fed to it).

    While the child is created, SIGINT and SIGTERM only take note: were their handlers to
    raise between the fork and our holding the Popen object, the ffmpeg would be orphaned
    and go on writing after we exit. Once the child is registered (see ``stop_children``),
    the old handlers are back and a noted signal is handed to its handler, whose exception
    stops the new child before propagating. (Blocking the signals with pthread_sigmask is
    not enough: another thread may take the signal, and the handler still runs in ours.)
    """
    swap = threading.current_thread() is threading.main_thread()
    noted: list[int] = []
    old = {}
    if swap:
        for sig in _SPAWN_SIGNALS:
            old[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    proc, error = None, None
    try:
        # Own session: a terminal ^C hits only Python, which then kills ffmpeg itself.
        proc = subprocess.Popen(cmd, **{"stdin": subprocess.DEVNULL, **kwargs}, start_new_session=True)
    except OSError as e:
        error = ZoomdreamError(f"{cmd[0]}: cannot run ffmpeg ({e.strerror or e})")
    finally:
        _LIVE.difference_update([p for p in _LIVE if p.returncode is not None])  # reaped elsewhere
        if proc is not None:
            _LIVE.add(proc)
        try:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            for sig in noted[:1]:  # deliver what arrived meanwhile, as the kernel would have
                handler = old[sig]
                if callable(handler):
                    handler(sig, None)
                elif handler == signal.SIG_DFL:
                    if proc is not None:
                        stop(proc)
                    signal.raise_signal(sig)
        except BaseException:
            if proc is not None:  # nobody else holds it: stop it and close its pipes
                stop(proc)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
            raise
    if error is not None:
        raise error
    return proc


def stop_children() -> None:
    """Kill and reap every ffmpeg still running (the CLI's last word, whatever happened)."""
    for proc in list(_LIVE):
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Kill ``proc`` (and its process group) if still running, then reap it. Never raises.

    Pipes are left open: a thread may still be draining one (it sees EOF once ffmpeg is dead).
    """
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
        except OSError:
            with contextlib.suppress(OSError):
                proc.kill()
    with contextlib.suppress(Exception):
        proc.wait()
    _LIVE.discard(proc)


def capture(cmd: list[str]) -> tuple[int, str, str]:
    """Run a short ffmpeg command to completion; return (rc, stdout, stderr) as text."""
    rc, out, err = capture_bytes(cmd)
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def capture_bytes(cmd: list[str], **popen_args) -> tuple[int, bytes, bytes]:
    """Run an ffmpeg command (or another child, ``popen_args`` like ``env``) to completion, holding all its
    output; return (rc, stdout, stderr)."""
    proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen_args)
    try:
        out, err = proc.communicate()
    except BaseException:
        stop(proc)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        raise
    check_interrupt()  # a Ctrl-C that arrived meanwhile and was lost on its way
    return proc.returncode, out, err


def run(cmd: list[str]) -> tuple[int, str]:
    """Run a long ffmpeg command; return (rc, tail of stderr).

    stderr is drained by a thread (a full pipe would stall ffmpeg); on any exception, including
    KeyboardInterrupt while waiting, ffmpeg is killed before the exception propagates.
    """
    proc = popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := proc.stderr.read1(65536):
                last.extend(chunk)
                del last[:-8192]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        rc = proc.wait()
        reader.join()
    except BaseException:
        stop(proc)
        reader.join(timeout=5)
        raise
    finally:
        if not reader.is_alive():
            proc.stderr.close()
    check_interrupt()
    return rc, last.decode("utf-8", "replace")


def tail(stderr: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last few meaningful stderr lines as one line (progress/stats noise dropped)."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", stderr) if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("frame=", "size=", "Press [q]"))]
    text = " | ".join(lines[-3:])
    return text[-limit:] if text else "(no message)"


def ffmpeg_version() -> str:
    """Version string of the ffmpeg in use, e.g. ``"n9.0.2-17-g2a571b6068-20260930"``."""
    return _version_of(ffmpeg_exe())


@functools.lru_cache(maxsize=4)
def _version_of(exe: str) -> str:
    rc, out, err = capture([exe, "-hide_banner", "-version"])
    m = re.match(r"ffmpeg version (\S+)", out)
    if rc != 0 or not m:
        raise ZoomdreamError(f"{exe}: not a working ffmpeg (exit {rc}): {tail(err or out)}")
    return m.group(1)
