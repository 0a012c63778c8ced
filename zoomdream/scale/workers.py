"""The Ray side of scale-out: the worker actors, starting and connecting to Ray, retries, notices.

Ray actors (one per worker process, each keeping the backbone and the compiled gradient step
for its lifetime) dream chunks with ``video.dream_frames`` and stream the frames back through
Ray's object store, one at a time. A worker that dies is restarted by Ray and its chunk retried
(``MAX_RETRIES`` times). Every worker runs TensorFlow on ``WORKER_CPUS`` threads, so frames do not
depend on the worker count. Ray itself is imported inside the functions that use it (it is optional,
and slow to import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
from typing import Callable

from zoomdream.backbones import RANDOM
from zoomdream.backbones.tf import tf
from zoomdream.errors import ZoomdreamError
from zoomdream.render.job import Clip
from zoomdream.render.video import dream_frames
from zoomdream.scale.plan import Chunk
from zoomdream.settings import Settings

__all__ = ["MAX_RETRIES", "WORKER_CPUS", "DreamWorker", "RayNotices", "Workers", "absolute", "check_reachable",
           "import_ray", "ray_session", "result"]

log = logging.getLogger("zoomdream")

WORKER_CPUS = 1  # CPUs Ray reserves per worker = TensorFlow threads per worker; fixed so frames don't depend on it
MAX_RETRIES = 3  # a worker that dies is restarted, and its chunk retried, this many times before the run fails
CONNECT_SECONDS = 5.0  # how long a --ray-address host:port may take to accept a TCP connection
ENV_PREFIX = "ZOOMDREAM_"  # driver environment variables forwarded to the workers (ZOOMDREAM_CACHE: the flow cache)
RAY_INSTALL = "pip install 'zoomdream[ray]'"
RAY_NOTE_CHARS = 200  # a Ray notice (worker died, task retried) is cut to this length in our log


# ---------------------------------------------------------------- the worker (runs inside Ray)
class DreamWorker:
    """The body of a Ray actor: one per worker process, so the backbone and the compiled step
    (cached per process by ``backbones`` and ``dream.GradientStep``) are built once, not per chunk."""

    def __init__(self, threads: int):
        t = tf()
        # The env vars set by the driver already did this; set it again in case they are not read.
        with contextlib.suppress(RuntimeError):  # raised once TensorFlow has run an op: too late, harmless
            t.config.threading.set_intra_op_parallelism_threads(threads)
            t.config.threading.set_inter_op_parallelism_threads(threads)

    def dream(self, clip: Clip, settings: Settings, chunk: Chunk, fault: Callable[[int], None] | None = None):
        """Yield ``(i, frame, added_flicker)`` for ``chunk.fade_from <= i < chunk.stop`` (a Ray streaming generator).

        Convention: frame is (H, W, 3) uint8 RGB at the render size; added flicker is in 0..255
        levels against the frame before it in this chunk (nan for the first). ``fault(i)`` is
        called before frame i is handed back (a test's way to make a worker fail there).
        ``clip``: the probed clip, its paths absolute (``Clip.absolute``).
        """
        check_reachable(clip.info.path, clip.mask, settings.dream.guide, settings.dream.weights, clip.audio)
        # Flows are shared through the per-clip flow cache: fresh and cached flows are rounded alike
        # (video.frame_flows), so a frame never depends on which worker cached a flow first.
        for i, frame, flicker in dream_frames(clip, settings, first=chunk.fade_from, stop=chunk.stop,
                                              warmup=chunk.warmup):
            if fault is not None:
                fault(i)
            yield i, frame, flicker


def check_reachable(*paths) -> None:
    """Every file a worker reads is there on its node (the same path as on the driver)."""
    for p in paths:
        if p and p != RANDOM and not os.path.exists(p):
            raise ZoomdreamError(f"{p}: not found on Ray node {socket.gethostname()}; every node needs the input, "
                                 f"mask, guide and weights at the same path (a shared filesystem)")


def absolute(settings: Settings) -> Settings:
    """Settings with file paths made absolute: workers may run in another folder (or on another node)."""
    d = settings.dream
    guide = d.guide and os.path.abspath(d.guide)
    weights = d.weights if d.weights in (None, RANDOM) else os.path.abspath(d.weights)
    return dataclasses.replace(settings, dream=dataclasses.replace(d, guide=guide, weights=weights))


# ---------------------------------------------------------------- the driver side
def import_ray():
    """The ``ray`` module, or a ZoomdreamError that says how to install it."""
    try:
        import ray  # noqa: PLC0415  (an optional dependency, and slow to import: only for a Ray render)
    except ImportError:
        raise ZoomdreamError(f"--workers and --ray-address need Ray: {RAY_INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_session(ray, *, workers: int | None, address: str | None):
    """Connect to Ray and yield; start a quiet local Ray if none is running and no address is given.

    A Ray that was already initialised (by the caller) is used as is and left running; one
    started or connected here is shut down on the way out, which stops every worker process.
    """
    if ray.is_initialized():
        yield
        return
    if address:
        _check_listening(address)
    in_main = _in_main_thread()
    term = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=(workers or os.cpu_count() or 1) * WORKER_CPUS, include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError) as e:  # no cluster there, or one of another Ray version
        where = f"--ray-address {address}" if address else "local Ray"
        raise ZoomdreamError(f"{where}: cannot start or connect to Ray ({' '.join(str(e).split())}); start a "
                             f"cluster with `ray start --head`, or check the address") from None
    finally:
        if in_main and term is not None:  # ray.init installs its own SIGTERM handler; ours stops cleanly
            signal.signal(signal.SIGTERM, term)
    try:
        yield
    finally:
        ray.shutdown()


def _check_listening(address: str) -> None:
    """Fail fast on a ``host:port`` where nothing listens: Ray itself would retry for minutes, logging each try."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():  # "auto", "ray://...": Ray resolves those itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise ZoomdreamError(f"--ray-address {address}: nothing answers there ({e.strerror or e}); start a cluster "
                             f"with `ray start --head` on that machine, or check the address") from None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class RayNotices:
    """Route Ray's driver-side notices (a worker died, a task is retried) to our logger.

    Ray prints them to stdout from a background thread, several lines each and with no switch
    to turn them off; we log each as one short note instead, and drop them once ``muted`` (set
    when we kill our own workers, which Ray would report as failures). This swaps a private Ray
    function while the context is open; on a Ray without it, Ray's own printing stays.
    """

    def __init__(self):
        self.muted = False
        self._module = self._original = None

    def __enter__(self):
        try:
            from ray._private import worker as ray_worker  # noqa: PLC0415

            self._module, self._original = ray_worker, ray_worker.print_to_stdstream
        except (ImportError, AttributeError):
            return self
        self._module.print_to_stdstream = self._to_log
        return self

    def __exit__(self, *exc):
        if self._module is not None:
            self._module.print_to_stdstream = self._original

    def _to_log(self, data, *args, **kwargs):
        if data.get("pid") != "raylet":
            return self._original(data, *args, **kwargs)
        for line in data.get("lines", ()) if not self.muted else ():
            text = " ".join(str(line).split())
            log.warning("ray: %s", text if len(text) <= RAY_NOTE_CHARS else text[:RAY_NOTE_CHARS - 3] + "...")
        return None


def _worker_env() -> dict:
    env = {"TF_NUM_INTRAOP_THREADS": str(WORKER_CPUS), "TF_NUM_INTEROP_THREADS": str(WORKER_CPUS),
           "OMP_NUM_THREADS": str(WORKER_CPUS), "TF_CPP_MIN_LOG_LEVEL": "3"}
    for key, value in os.environ.items():
        if key.startswith(ENV_PREFIX):
            env[key] = value
    return env


class Workers:
    """The Ray actors of one render; all of them are killed on exit, however the render ends."""

    def __init__(self, ray):
        self.ray = ray
        self.idle: list = []  # actors ready for a chunk
        self.busy: list = []  # actors dreaming one

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for actor in self.idle + self.busy:
            with contextlib.suppress(Exception):  # already gone: nothing to stop
                self.ray.kill(actor, no_restart=True)
        self.idle, self.busy = [], []

    def grow(self, count: int) -> None:
        """Start actors until there are ``count`` (they boot in the background)."""
        missing = count - len(self.idle) - len(self.busy)
        if missing > 0:
            actor = self.ray.remote(num_cpus=WORKER_CPUS, max_restarts=MAX_RETRIES,
                                    max_task_retries=MAX_RETRIES)(DreamWorker)
            env = {"env_vars": _worker_env()}
            self.idle += [actor.options(runtime_env=env).remote(WORKER_CPUS) for _ in range(missing)]

    def shrink(self, count: int) -> None:
        """Stop idle actors beyond ``count`` (a resume may need fewer than were started)."""
        while self.idle and len(self.idle) + len(self.busy) > count:
            self.ray.kill(self.idle.pop(), no_restart=True)

    def take(self):
        actor = self.idle.pop(0)
        self.busy.append(actor)
        return actor

    def give_back(self, actor) -> None:
        self.busy.remove(actor)
        self.idle.append(actor)


def result(ray, ref, chunk: Chunk):
    """The worker's ``(i, frame, flicker)``; a worker's ZoomdreamError comes back as one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, ZoomdreamError):
            raise ZoomdreamError(str(e.cause)) from None
        raise
    except ray.exceptions.RayActorError as e:
        first_line = " ".join(str(e).split())[:RAY_NOTE_CHARS]
        raise ZoomdreamError(f"a Ray worker died {MAX_RETRIES + 1} times on frames {chunk.first}-{chunk.stop - 1} "
                             f"(out of memory? zoomdream not installed on a node?): {first_line}; finished "
                             f"frames are kept: run the same command again to resume") from None
