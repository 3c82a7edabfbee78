"""Create the backend's own Python environment and install its requirements (no bpy: runs in a thread)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

# The backend's runtime requirements (pyproject.toml's [project] dependencies; a test keeps them equal).
REQUIREMENTS = (
    "torch>=2.4",
    "numpy>=1.26",
    "pillow>=10",
    "safetensors>=0.4",
    "trimesh>=4",
    "xatlas>=0.0.9",
    "fast-simplification>=0.1.7",
    "tqdm>=4.60",
)


def base_python() -> Path:
    """The Python to make the environment with: Blender's own (sys.executable is its interpreter)."""
    return Path(sys.executable)


def setup_commands(folder: Path, python: Path, wheels: Path | None) -> list[list[str]]:
    env_python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    pip = [str(env_python), "-m", "pip", "install", "--disable-pip-version-check"]
    if wheels is not None:
        pip += ["--no-index", "--find-links", str(wheels)]
    return [[str(python), "-m", "venv", str(folder)], pip + list(REQUIREMENTS)]


class SetupRun:
    """Runs the setup commands in a thread; `lines` receives their output, `result` the outcome."""

    def __init__(self, commands: list[list[str]]) -> None:
        self.commands = commands
        self.lines: queue.Queue[str] = queue.Queue()
        self.result: str | None = None  # "" on success, else the error text
        self.process: subprocess.Popen[str] | None = None
        self.stopped = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        tail: list[str] = []
        for command in self.commands:
            try:
                self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            except OSError as error:
                self.result = f"could not run {command[0]}: {error}"
                return
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.put(line.rstrip())
                tail = [*tail, line.rstrip()][-5:]
            if self.process.wait() != 0:
                self.result = (
                    "cancelled"
                    if self.stopped
                    else (f"'{' '.join(command[:4])} ...' failed: " + " | ".join(t for t in tail if t))
                )
                return
        self.result = ""

    def stop(self) -> None:
        self.stopped = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
