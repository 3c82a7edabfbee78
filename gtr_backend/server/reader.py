"""The backend process's loop: a reader thread takes request lines from stdin (answering `ping` at once, taking
`cancel`, refusing what is not a valid request in one line), and the main thread runs the queued requests one at
a time (`session.run_request`). `main` is `python -m gtr_backend.server`."""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, TextIO

from ..contract import check_reply, check_request
from .session import Session, run_request

MAX_LINE = 1 << 20  # characters: a request is small; anything longer is refused, not parsed


def serve(
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    jobs_root: Path | None = None,
    warm_up: tuple[str | None, str] | None = None,
) -> int:
    """Answer requests from `stdin` until it closes or `shutdown`; one request runs at a time, while a reader
    thread keeps listening: it answers `ping` at once (the add-on's liveness check, also during a long job),
    takes `cancel` for the running or a queued request, and answers any line that is not a valid request with
    a one-line error, so no input can silence it. When stdin closes, the server exits after the running job.
    `warm_up` (weights or None, device): start the warm-up (module docstring) at once."""
    from ..errors import GTRError

    lock = threading.Lock()
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    pending: set[Any] = set()  # ids queued or running: the only ones a cancel applies to
    cancelled_ids: set[Any] = set()
    running: list[Any] = [None]

    def send(message: dict[str, Any]) -> None:
        with lock:
            stdout.write(json.dumps(message) + "\n")
            stdout.flush()

    def reply(rid: Any, message: dict[str, Any]) -> None:
        """Send a running request's reply; before its last one (result or error) its id is free again, so a
        client may reuse it as soon as it has the answer."""
        if message.get("type") in ("result", "error"):
            with lock:
                pending.discard(rid)
                cancelled_ids.discard(rid)
        send(message)

    def take(line: str) -> None:
        if len(line) > MAX_LINE:
            raise GTRError(f"a request line of {len(line)} characters is too long (at most {MAX_LINE})")
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise GTRError(f"not a JSON line: {line[:80]!r}") from None
        request = check_request(message)
        op, rid = request["op"], request.get("id")
        if op == "cancel":
            with lock:
                if request["target"] in pending:
                    cancelled_ids.add(request["target"])
            return
        with lock:
            duplicate = rid is not None and rid in pending
            if not duplicate and op != "ping":
                pending.add(rid)
        if duplicate:  # its replies would be taken for the first one's: refused, and the error names no id
            taken = f"request {op!r}: the id {rid!r} is already taken by a request still running or queued; "
            send({"id": None, "type": "error", "message": taken + "give every request an id of its own"})
        elif op == "ping":
            send({"id": rid, "type": "result", **check_reply("ping", {"busy": running[0] is not None})})
        else:
            requests.put(request)

    def read() -> None:
        try:
            for line in stdin:
                if not line.strip():
                    continue
                try:
                    take(line)
                except GTRError as error:
                    rid = None
                    with contextlib.suppress(Exception):
                        candidate = json.loads(line).get("id") if len(line) <= MAX_LINE else None
                        rid = candidate if isinstance(candidate, int | str) else None
                    send({"id": rid, "type": "error", "message": str(error)})
                except Exception as error:  # never let one line stop the reader
                    traceback.print_exc(file=sys.stderr)
                    send({"id": None, "type": "error", "message": f"internal error reading a request: {error!r}"})
        finally:
            requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    session = Session(jobs_root)
    if warm_up is not None:
        session.start_warm_up(*warm_up, sys.stderr)
    while (request := requests.get()) is not None:
        rid = request.get("id")
        if request.get("op") == "shutdown":
            send({"id": rid, "type": "result", **check_reply("shutdown", {})})
            break
        running[0] = rid
        run_request(
            session,
            request,
            functools.partial(reply, rid),
            functools.partial(cancelled_ids.__contains__, rid),
            sys.stderr,
        )
        running[0] = None
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gtr_backend.server",
        description="The GTR backend for the Blender add-on: JSON requests on stdin, replies on stdout",
    )
    parser.add_argument("--jobs-root", type=Path, help="job folders must lie inside this folder")
    parser.add_argument("--device", default="auto", help="the device to warm up (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument("--weights", help="the weights to warm up (default: the bundled ones)")
    parser.add_argument("--no-warm-up", action="store_true", help="load the model on the first request instead")
    args = parser.parse_args(argv)
    warm_up = None if args.no_warm_up else (args.weights, args.device)
    return serve(jobs_root=args.jobs_root, warm_up=warm_up)
