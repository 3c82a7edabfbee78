"""The backend server as a real process, for the protocol tests: JSON lines in and out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


class Server:
    def __init__(self, jobs_root: Path, *options: str) -> None:
        """`options`: more command-line options (default: warm up on the CPU, where the tests' requests run)."""
        command = [sys.executable, "-m", "gtr_backend.server", "--jobs-root", str(jobs_root)]
        self.process = subprocess.Popen(
            [*command, *(options or ("--device", "cpu"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def line(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def send(self, message: dict) -> None:
        self.line(json.dumps(message))

    def reply(self) -> dict:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())

    def replies(self, rid) -> list[dict]:
        """Every reply to request `rid` up to and including its result or error."""
        assert self.process.stdout is not None
        out = []
        for line in self.process.stdout:
            message = json.loads(line)
            if message.get("id") == rid:
                out.append(message)
                if message["type"] in ("result", "error"):
                    return out
        raise AssertionError(f"the server closed before answering {rid}")

    def final(self, rid) -> dict:
        """The result or error of request `rid` (its progress skipped)."""
        return self.replies(rid)[-1]
