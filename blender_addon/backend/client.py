"""Backends the add-on sends requests to, speaking `gtr_backend.server`'s protocol (see its docstring).

A request becomes a `Job`: its replies (progress, then one result or error) arrive on the job's queue from a
reader thread, and the modal operator drains it on a timer in Blender's main thread. Nothing here calls `bpy`,
so it runs safely off the main thread.

- `SubprocessBackend`: `python -m gtr_backend.server` in the interpreter the user chose, told the weights and
  device to warm up as it starts (`warm_up`: the preferences'); restarted on the next request when it has died;
  the model stays loaded between requests. While requests are open a watchdog pings
  it every `PING_SECONDS`: a backend that says nothing for `SILENCE_SECONDS` (hung, or wedged) is stopped and
  every open request fails with a plain message, so no operator ever waits forever.
- `InProcessBackend`: the same `Session` in a worker thread of Blender's own Python (torch must import there).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import backend_module, contract

PROTOCOL = contract.PROTOCOL  # the bundled backend's, never a copy


class BackendError(Exception):
    """The backend cannot run (missing interpreter, wrong protocol, ...): a message for the user."""


@dataclass
class Job:
    id: int
    op: str
    messages: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float = 600.0) -> dict[str, Any]:
        """Block until the final reply (for tests and scripts; operators use `drain`)."""
        while True:
            message = self.messages.get(timeout=timeout)
            if message.get("type") in ("result", "error"):
                return message


class Backend:
    def running(self) -> bool:
        """Whether the backend has been started (and may hold a loaded model)."""
        return True

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def submit(self, op: str, **arguments: Any) -> Job:
        job = Job(next(self._ids), op)
        with self._lock:
            self._jobs[job.id] = job
        self._send({"id": job.id, "op": op, "protocol": PROTOCOL, **arguments})
        return job

    def cancel(self, job: Job) -> None:
        self._cancel(job.id)

    def _deliver(self, message: dict[str, Any]) -> None:
        with self._lock:
            job = self._jobs.get(message.get("id", -1))
            if job is not None and message.get("type") in ("result", "error"):
                del self._jobs[job.id]
        if job is not None:
            job.messages.put(message)

    def _fail_all(self, text: str) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.messages.put({"id": job.id, "type": "error", "message": text})

    def _send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def _cancel(self, job_id: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class SubprocessBackend(Backend):
    PING_SECONDS = 2.0
    SILENCE_SECONDS = 30.0  # xatlas, for one, holds the GIL for seconds: pings wait for it

    def __init__(self, python: Path, source: Path, log: Path, jobs_root: Path | None = None) -> None:
        super().__init__()
        self.python, self.source, self.log, self.jobs_root = python, source, log, jobs_root
        self.process: subprocess.Popen[str] | None = None
        self.warm_up: tuple[str | None, str] = (None, "auto")  # (weights or None: the bundled ones, device)
        self.last_heard = time.monotonic()
        self._write_lock = threading.Lock()  # the watchdog's pings and the requests share the pipe
        self._silenced: subprocess.Popen[str] | None = None  # a process the watchdog stopped
        self._stopped: subprocess.Popen[str] | None = None  # a process `stop` ended

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def running(self) -> bool:
        return self.alive()

    def start(self) -> None:
        if not self.python.is_file():
            raise BackendError(
                f"the backend's Python was not found at {self.python}: press 'Set Up Backend' in the add-on's "
                "preferences, or set the path of a Python that has torch installed"
            )
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.source) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            roots = ["--jobs-root", str(self.jobs_root)] if self.jobs_root is not None else []
            self.process = subprocess.Popen(
                [str(self.python), "-m", "gtr_backend.server", *roots, *self.warm_up_options()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
                env=env,
                cwd=str(self.source),  # `-m` looks in the working folder first: run where the backend is
            )
        self.last_heard = time.monotonic()
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        threading.Thread(target=self._watch, args=(self.process,), daemon=True).start()
        self._handshake = Job(next(self._ids), "hello")  # checks the protocol; its reply goes nowhere
        self._write({"id": self._handshake.id, "op": "hello", "protocol": PROTOCOL})

    def warm_up_options(self) -> list[str]:
        """The server's options that say what to load and warm up as it starts."""
        weights, device = self.warm_up
        return ["--device", device, *(["--weights", weights] if weights else [])]

    def _watch(self, process: subprocess.Popen[str]) -> None:
        """Ping while requests are open; stop a backend that stays silent for `SILENCE_SECONDS`."""
        last_ping = 0.0
        while process.poll() is None:
            time.sleep(min(0.5, self.PING_SECONDS))
            with self._lock:
                waiting = bool(self._jobs)
            now = time.monotonic()
            if not waiting:
                self.last_heard = max(self.last_heard, now - self.PING_SECONDS)  # idle: silence is fine
                continue
            if now - last_ping >= self.PING_SECONDS:
                last_ping = now
                with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                    self._write({"id": "ping", "op": "ping"})
            if now - self.last_heard > self.SILENCE_SECONDS:
                self._silenced = process  # the reader, seeing it end, reports why
                process.kill()
                return

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.last_heard = time.monotonic()
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue  # a stray print in the backend; its log has the details
            if not isinstance(message, dict):
                continue
            handshake = message.get("id") == self._handshake.id and message.get("type") == "result"
            if handshake and message.get("protocol") != PROTOCOL:
                self._fail_all(
                    f"the backend speaks protocol {message.get('protocol')}, this add-on {PROTOCOL}: "
                    "press 'Set Up Backend' to update it"
                )
                process.kill()
                return
            self._deliver(message)
        code = process.wait()
        if process is self._stopped:
            return  # stopped on purpose: its end is no news, and the jobs open now are its successor's
        if self._silenced is process:
            self._fail_all(
                f"the backend stopped answering (nothing for {self.SILENCE_SECONDS:.0f} s) and was stopped; "
                f"the next request starts it again. Details are in {self.log}"
            )
        else:
            self._fail_all(f"the backend process stopped unexpectedly (exit code {code}); details are in {self.log}")

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        with self._write_lock:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()

    def _send(self, message: dict[str, Any]) -> None:
        for _ in range(2):  # first use, or it died since: start it (again), once
            try:
                if not self.alive():
                    self.start()
                self._write(message)
                return
            except (BrokenPipeError, OSError):
                continue
        code = self.process.poll() if self.process is not None else None
        raise BackendError(f"the backend process stopped unexpectedly (exit code {code}); details are in {self.log}")

    def _cancel(self, job_id: int) -> None:
        if self.alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._write({"op": "cancel", "target": job_id})

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self._stopped = self.process
            try:
                self._write({"id": 0, "op": "shutdown"})
                self.process.wait(timeout=5)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
            self._fail_all("the backend was stopped before this request finished; run it again")
        self.process = None


class InProcessBackend(Backend):
    """Requests run one at a time in a worker thread of this (Blender's) Python process."""

    def __init__(self, log: Path, jobs_root: Path | None = None) -> None:
        super().__init__()
        self.session: Any = None
        self.log, self.jobs_root = log, jobs_root
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancelled: set[int] = set()
        self.thread: threading.Thread | None = None

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        try:
            server = backend_module("server")
        except ImportError as error:
            self._fail_all(
                f"torch or the backend's requirements do not import inside Blender ({error}); "
                "choose the 'Separate Python' backend"
            )
            return
        self.session = server.Session(self.jobs_root)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a", encoding="utf-8") as log:
            while (request := self.requests.get()) is not None:
                rid = request["id"]
                # The backend process's own request runner: the same replies (timings included) and the
                # same log entries (tracebacks) as with the separate Python.
                server.run_request(self.session, request, self._deliver, lambda rid=rid: rid in self.cancelled, log)
                self.cancelled.discard(rid)

    def _send(self, message: dict[str, Any]) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        self.requests.put(message)

    def _cancel(self, job_id: int) -> None:
        self.cancelled.add(job_id)

    def stop(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.requests.put(None)
        self.thread = None


_BACKENDS: dict[tuple[str, str], Backend] = {}  # the running backends of this Blender session


def backend_for(
    mode: str,
    python: Path,
    source: Path,
    log: Path,
    jobs_root: Path | None = None,
    warm_up: tuple[str | None, str] | None = None,
) -> Backend:
    """The running backend for these settings, started on first use; others are stopped. Job folders must
    lie inside `jobs_root`; `warm_up` (weights or None, device): what a separate-Python backend loads and warms
    up when it (next) starts."""
    key = (mode, str(python) if mode == "SUBPROCESS" else "")
    if key not in _BACKENDS:
        shutdown_all()
        if mode == "SUBPROCESS":
            _BACKENDS[key] = SubprocessBackend(python, source, log, jobs_root)
        else:
            _BACKENDS[key] = InProcessBackend(log, jobs_root)
    backend = _BACKENDS[key]
    if warm_up is not None and isinstance(backend, SubprocessBackend):
        backend.warm_up = warm_up
    return backend


def shutdown_all() -> None:
    for backend in _BACKENDS.values():
        backend.stop()
    _BACKENDS.clear()
