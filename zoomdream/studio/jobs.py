"""The render queue: each job runs the command line itself, in a subprocess.

A job is ``zoomdream COMMAND INPUT -o OUTPUT --preset P --progress json [options]`` run in the
studio's folder, with ``P`` the job's resolved settings written as a preset file under
``FOLDER/.zoomdream-studio/jobs/ID/``. So every render obeys the command line's output rules
(nothing replaced that it did not create), cancel is SIGTERM (the render stops resumably after
the frame in hand), and resume is the same command again, byte-identical by construction. One
job runs at a time unless ``--jobs N``. The queue is saved in ``FOLDER/.zoomdream-studio/jobs.json``
after every change; renders that were running when the studio stopped are queued again when it
starts (they continue from their last frame).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import write_text_atomic
from zoomdream.settings import presets
from zoomdream.studio.security import NotFound

__all__ = ["COMMANDS", "Job", "JobQueue", "command_line"]

COMMANDS = ("image", "video", "zoom", "sheet")
FINAL = ("done", "failed", "cancelled")
STOP_GRACE = 20.0  # seconds a render gets to stop after SIGTERM before it is killed
EXTENSIONS = {"image": ".png", "sheet": ".png", "video": ".mp4", "zoom": ".mp4"}


@dataclass
class Job:
    id: str
    command: str
    input: str  # relative to the root
    output: str  # relative to the root
    settings: dict  # resolved settings (the preset format)
    options: dict
    argv: list[str]
    state: str = "queued"  # queued, running, done, failed, cancelled
    done: int = 0
    total: int = 0
    unit: str = "frame"
    left: float | None = None
    latest: str | None = None  # a copy of the latest finished frame (jobs/ID/latest.png), relative to the root
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    runs: int = 0

    def public(self) -> dict:
        out = asdict(self)
        out.pop("settings")
        out["command_line"] = command_line(self.argv)
        return out


def command_line(argv: list[str]) -> str:
    import shlex  # noqa: PLC0415

    return "zoomdream " + " ".join(shlex.quote(a) for a in argv)


def _arg_path(rel: str) -> str:
    return f"./{rel}" if rel.startswith("-") else rel


class JobQueue:
    """Jobs by id, the runner threads and the saved queue (see the module docstring)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.jobs: dict[str, Job] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.cancelling: set[str] = set()
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.running = False
        self.stopping = False
        self.file = ctx.state_dir / "jobs.json"
        self._load()

    # ------------------------------------------------------------ persistence
    def _load(self) -> None:
        if not self.file.is_file():
            return
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
            for item in data.get("jobs", []):
                job = Job(**item)
                if job.state == "running":  # the studio stopped while it ran: continue it
                    job.state = "queued"
                self.jobs[job.id] = job
        except (OSError, ValueError, TypeError) as e:
            raise ZoomdreamError(f"{self.file}: unreadable job queue ({e}); move it away to start afresh") from None

    def _save(self) -> None:
        self.ctx.folder(self.ctx.state_dir.name)
        data = {"jobs": [asdict(j) for j in self.jobs.values()]}
        write_text_atomic(self.file, json.dumps(data, indent=1))

    # ------------------------------------------------------------ requests
    def create(self, data: dict) -> Job:
        ctx = self.ctx
        command = data.get("command")
        if command not in COMMANDS:
            raise ZoomdreamError(f"command: expected one of {', '.join(COMMANDS)}, got {S.quote(command)}")
        rel_in = data.get("input")
        if not isinstance(rel_in, str) or not rel_in:
            raise ZoomdreamError("input: expected a media path relative to the studio's folder")
        src = ctx.path(rel_in)
        if not src.is_file():
            raise NotFound(rel_in)
        from zoomdream.studio.api import media_kind  # noqa: PLC0415

        kind = "video" if command == "video" else "image"
        if media_kind(src) != kind:
            raise ZoomdreamError(f"input: {S.quote(rel_in)} is not {'a video' if kind == 'video' else 'an image'} file")
        rel_in = ctx.relative(src)
        settings = ctx.settings_from_json(data.get("settings"))
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise ZoomdreamError(f"options: expected a mapping of render options, got {S.quote(options)}")
        flags = self._option_flags(command, options)
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        output = data.get("output")
        if output in (None, ""):
            output = f"renders/{Path(rel_in).stem}-{command}-{job_id}{EXTENSIONS[command]}"
        if not isinstance(output, str):
            raise ZoomdreamError(f"output: expected a path relative to the studio's folder, got {S.quote(output)}")
        try:
            out = ctx.output_path(output)
        except NotFound:
            raise ZoomdreamError(f"output: {S.quote(output)} is not a path inside the studio's folder") from None
        rel_out = ctx.relative(out)
        with self.lock:
            taken = {j.output for j in self.jobs.values() if j.state not in FINAL}
            if rel_out in taken:
                raise ZoomdreamError(f"output: {rel_out} is the output of another job in the queue")
        try:
            for taken in (out, out.with_name(out.name + ".yaml")):  # the output and its settings sidecar
                if taken.exists() or taken.is_symlink():
                    raise ZoomdreamError(f"{taken.relative_to(ctx.root).as_posix()}: exists; the studio never "
                                         f"replaces a file (choose another output)")
            folder = next(p for p in out.parents if p.exists())  # the root at the latest
            if not folder.is_dir():
                raise ZoomdreamError(f"output: {ctx.relative(folder)} is a file, not a folder")
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. a name too long for the file system
            raise ZoomdreamError(f"output: {S.quote(output)}: {e.strerror or e}") from None
        job_dir = ctx.folder(f"{ctx.state_dir.name}/jobs/{job_id}")
        preset_file = job_dir / "preset.yaml"
        write_text_atomic(preset_file, presets.dump(settings))
        argv = [command, _arg_path(rel_in), "-o", _arg_path(rel_out), "--preset", ctx.relative(preset_file),
                *flags]
        job = Job(id=job_id, command=command, input=rel_in, output=rel_out, settings=S.to_dict(settings),
                  options=options, argv=argv, unit="frame" if command in ("zoom", "video") else "step")
        with self.lock:
            self.jobs[job.id] = job
            self._save()
            self.wake.notify_all()
        return job

    def _option_flags(self, command: str, options: dict) -> list[str]:
        from zoomdream.studio.api import COMMAND_OPTIONS  # noqa: PLC0415

        allowed = COMMAND_OPTIONS[command]
        flags = []
        for name, value in options.items():
            if name not in allowed:
                raise ZoomdreamError(f"options: {S.quote(name)} is not an option of {command}"
                                     f"{'; allowed: ' + ', '.join(allowed) if allowed else ''}")
            spec = allowed[name]
            if value is None:
                continue
            if spec == "flag":
                if value is True:
                    flags.append(f"--{name}")
                elif value is not False:
                    raise ZoomdreamError(f"--{name}: expected true or false, got {S.quote(value)}")
            elif spec == "path":
                if not isinstance(value, str):
                    raise ZoomdreamError(f"--{name}: expected a path, got {S.quote(value)}")
                try:
                    path = self.ctx.path(value)
                    if not path.is_file():  # a folder or a FIFO (reading one would hang the render)
                        raise NotFound(value)
                except NotFound:
                    raise ZoomdreamError(f"--{name}: {S.quote(value)} is not a file in the studio's folder") from None
                flags.append(f"--{name}={self.ctx.relative(path)}")
            elif spec is None:
                if not isinstance(value, str) or not re.fullmatch(r"[\w.,/-]{1,2000}", value):
                    raise ZoomdreamError(f"--{name}: expected names separated by commas, got {S.quote(value)}")
                flags.append(f"--{name}={value}")
            else:
                try:
                    checked = spec.validate(spec.parse(value) if isinstance(value, str) else value)
                except S.Invalid as e:
                    raise ZoomdreamError(f"--{name}: {e}") from None
                flags.append(f"--{name}={checked}")
        return flags

    def all(self) -> list[Job]:
        with self.lock:
            return sorted(self.jobs.values(), key=lambda j: j.created)

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(job_id)
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self.lock:
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
                self._save()
                return job
            if job.state != "running":
                raise ZoomdreamError(f"job {job_id} is {job.state}: nothing to cancel")
            self.cancelling.add(job_id)
            proc = self.procs.get(job_id)
        if proc is not None:
            _terminate(proc)
        return job

    def resume(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self.lock:
            if job.state not in ("cancelled", "failed"):
                raise ZoomdreamError(f"job {job_id} is {job.state}: only a cancelled or failed job resumes")
            if self.ctx.path(job.output, must_exist=False).exists():
                raise ZoomdreamError(f"{job.output}: exists already")
            job.state, job.error, job.finished, job.left = "queued", None, None, None
            self._save()
            self.wake.notify_all()
        return job

    # ------------------------------------------------------------ running
    def start(self) -> None:
        with self.lock:
            if self.running:
                return
            self.running, self.stopping = True, False
        threading.Thread(target=self._schedule, daemon=True, name="studio-jobs").start()

    def _schedule(self) -> None:
        with self.lock:
            while not self.stopping:
                busy = sum(1 for j in self.jobs.values() if j.state == "running")
                queued = [j for j in sorted(self.jobs.values(), key=lambda j: j.created) if j.state == "queued"]
                if queued and busy < self.ctx.max_jobs:
                    self._launch(queued[0])
                    continue
                self.wake.wait(1.0)

    def _launch(self, job: Job) -> None:
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        job.state, job.started, job.runs, job.error, job.left = "running", time.time(), job.runs + 1, None, None
        try:
            proc = subprocess.Popen([sys.executable, "-m", "zoomdream", *job.argv, "--progress", "json"],
                                    cwd=self.ctx.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True, text=True,
                                    encoding="utf-8", errors="replace")
        except OSError as e:
            job.state, job.error, job.finished = "failed", f"cannot start the render: {e}", time.time()
            self._save()
            return
        self.procs[job.id] = proc
        self._save()
        threading.Thread(target=self._watch, args=(job, proc), daemon=True, name=f"job-{job.id}").start()

    def _watch(self, job: Job, proc: subprocess.Popen) -> None:
        tail: list[str] = []

        def read_err():
            for line in proc.stderr:
                tail.append(line.rstrip("\n"))
                del tail[:-40]

        t = threading.Thread(target=read_err, daemon=True)
        t.start()
        for line in proc.stdout:
            try:
                p = json.loads(line)
            except ValueError:
                continue
            if not isinstance(p, dict) or "done" not in p:
                continue
            with self.lock:
                if p.get("unit") == job.unit or job.total == 0:
                    job.done, job.total, job.left = int(p["done"]), int(p["total"]), p.get("left")
            if p.get("file"):
                latest = self._keep_latest(job, Path(p["file"]))
                with self.lock:
                    job.latest = latest or job.latest
        rc = proc.wait()
        t.join(5)
        proc.stdout.close()
        proc.stderr.close()
        with self.lock:
            self.procs.pop(job.id, None)
            job.finished, job.left = time.time(), None
            cancelled = job.id in self.cancelling
            self.cancelling.discard(job.id)
            if rc == 0:
                job.state, job.done = "done", max(job.done, job.total)
            elif self.stopping and not cancelled:
                job.state = "queued"  # the studio is stopping: the render continues next time
            elif cancelled or rc in (130, 143, -signal.SIGTERM, -signal.SIGKILL):
                job.state = "cancelled"
            else:
                job.state = "failed"
                errors = [x for x in tail if x.startswith("zoomdream: error:") or "internal error" in x]
                job.error = (errors[-1] if errors else (tail[-1] if tail else f"exit code {rc}")).removeprefix(
                    "zoomdream: error: ").removeprefix("zoomdream: ")
            self._save()
            self.wake.notify_all()

    def _keep_latest(self, job: Job, frame: Path) -> str | None:
        """The latest frame, hard-linked (or copied) to ``jobs/ID/latest.png``: it outlives the work folder."""
        try:
            frame = self.ctx.path(self.ctx.relative(frame))
            folder = self.ctx.state_dir / "jobs" / job.id
            tmp, dst = folder / ".latest.png.tmp", folder / "latest.png"
            tmp.unlink(missing_ok=True)
            try:
                os.link(frame, tmp)
            except OSError:
                shutil.copyfile(frame, tmp)
            os.replace(tmp, dst)
            return self.ctx.relative(dst)
        except (OSError, ValueError, NotFound):
            return None

    def stop(self) -> None:
        """Stop every running render resumably (they are queued again for the next start)."""
        with self.lock:
            self.stopping = True
            procs = list(self.procs.values())
            self.wake.notify_all()
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        time.sleep(0.1)
        with self.lock:
            self.running = False
            for job in self.jobs.values():
                if job.state == "running":
                    job.state = "queued"
            if self.jobs:
                with contextlib.suppress(OSError, ZoomdreamError):
                    self._save()


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM (the render stops after the frame in hand and keeps its frames); SIGKILL if it lingers."""
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGTERM)

    def reap():
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                proc.kill()

    threading.Thread(target=reap, daemon=True).start()
