"""Work beside the dream: a bounded look-ahead and a background writer, each on one thread.

The dream is the critical path of a frame loop; everything that does not depend on the
dreamed pixels (decoding the next source frames, their grey forms and optical flows) can be
done ahead, and everything that only consumes them (the frame cache's PNG writes, the
encoder) can be done behind. Threads suffice: OpenCV, zlib, ffmpeg pipes and TensorFlow release the GIL in
their heavy parts (benchmarks/bench_pipeline.py measures it).

Both helpers keep order (one worker thread each) and a small bound, so memory stays a few
frames, and both pass a worker's exception to the thread that consumes the results. Nothing
here changes what is computed, only when: a pipelined loop gives the same bytes as a
sequential one.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

__all__ = ["FEED_HELD", "LOOKAHEAD", "WRITE_BEHIND", "InOrder", "Lookahead", "WriteBehind"]

LOOKAHEAD = 2  # source frames prepared ahead of the dream: one in hand, one being made
WRITE_BEHIND = 2  # frames waiting to be written at most
FEED_HELD = 4  # finished frames an InOrder consumer keeps in memory; later ones are read back when their turn comes
_POLL_S = 0.1  # how often a blocked worker checks whether it was stopped

_END = object()


class Lookahead:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead of the consumer.

    ``next()`` returns the items in order; an exception raised by ``items`` is raised there,
    in the consumer's thread. ``close()`` stops the worker, closes ``items`` (a generator's
    ``finally`` runs, e.g. an ffmpeg process is reaped) and waits for the thread to end.
    """

    def __init__(self, items: Iterator, depth: int = LOOKAHEAD, name: str = "zoomdream-lookahead"):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put((_END, e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        return self

    def __next__(self):
        item, error = self._queue.get()
        if item is _END:
            self._queue.put((_END, error))  # later calls see the same end
            if error is not None:
                raise error
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a worker waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


class WriteBehind:
    """Run ``fn(*args)`` jobs in order on one background thread, at most ``depth`` waiting.

    ``submit`` blocks while ``depth`` jobs wait (so a slow disk slows the loop rather than
    filling memory) and raises the first error a job raised. ``flush()`` waits until every
    submitted job has run and raises that error too; ``close()`` flushes and ends the thread.
    """

    def __init__(self, depth: int = WRITE_BEHIND, name: str = "zoomdream-writer"):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after a failure, later jobs are dropped (they would fail alike)
                    fn, args = job
                    fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the submitting thread
                self._error = e
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable, *args) -> None:
        self._raise()
        self._queue.put((fn, args))

    def flush(self) -> None:
        self._queue.join()
        self._raise()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._queue.put(None)
            self._thread.join()


class InOrder:
    """Hand frames 0..n-1 to ``consume(frame)`` on one background thread, in order, as they become ready.

    ``ready(i, frame)`` tells it frame i is finished and saved (frames become ready in order);
    up to ``held`` ready frames wait in memory, and a frame beyond that is dropped and read
    back with ``load(i)`` when its turn comes, so a slow consumer neither holds up the frame
    loop nor fills memory. Frames below ``first`` (saved by an earlier run) are read back with
    ``load`` first. A consumer's error is raised by the next ``ready`` and by ``wait()``, which
    returns once all n frames are consumed; ``close()`` stops the thread (frames not yet
    consumed never are).
    """

    def __init__(self, n: int, consume: Callable, load: Callable, *, first: int = 0, held: int = FEED_HELD,
                 name: str = "zoomdream-feed"):
        self._n, self._consume, self._load, self._held_max = n, consume, load, max(0, held)
        self._cond = threading.Condition()
        self._ready, self._next = first, 0  # frames [0, _ready) are saved; [0, _next) consumed
        self._held: dict = {}
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for i in range(self._n):
                with self._cond:
                    while not self._stop and self._ready <= i:
                        self._cond.wait()
                    if self._stop:
                        return
                    frame = self._held.pop(i, None)
                self._consume(self._load(i) if frame is None else frame)
                with self._cond:
                    self._next = i + 1
                    self._cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def ready(self, i: int, frame) -> None:
        with self._cond:
            self._raise()
            self._ready = i + 1
            if len(self._held) < self._held_max:
                self._held[i] = frame
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while self._next < self._n and self._error is None and self._thread.is_alive():
                self._cond.wait(timeout=_POLL_S)  # a Ctrl-C gets through between waits
            self._raise()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
