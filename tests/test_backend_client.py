"""The add-on's backend client (no Blender needed: it never calls bpy) against backends that misbehave."""

import sys
import textwrap
import time
from pathlib import Path

from blender_addon.backend.client import SubprocessBackend

# A fake backend answers the handshake, then does what `otherwise` says with every other request.
ANSWERS_HELLO = """
import json, sys, time
for line in sys.stdin:
    message = json.loads(line)
    if message.get("op") == "hello":
        print(json.dumps({"id": message["id"], "type": "result", "protocol": 1}), flush=True)
        continue
"""
SILENT = ANSWERS_HELLO + "    time.sleep(3600)  # wedged: answers nothing more, not even pings\n"
PROGRESS = '{"id": message["id"], "type": "progress", "stage": "triplane", "fraction": 0.1}'
DYING = ANSWERS_HELLO + f"    print(json.dumps({PROGRESS}), flush=True)\n    sys.exit(3)\n"


def fake_backend(tmp_path, code: str) -> SubprocessBackend:
    package = tmp_path / "source" / "gtr_backend"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "server.py").write_text(textwrap.dedent(code))
    backend = SubprocessBackend(__import__("pathlib").Path(sys.executable), tmp_path / "source", tmp_path / "log.txt")
    backend.PING_SECONDS, backend.SILENCE_SECONDS = 0.3, 2.0
    return backend


def test_a_silent_backend_fails_the_job_within_seconds(tmp_path):
    backend = fake_backend(tmp_path, SILENT)
    start = time.perf_counter()
    job = backend.submit("reconstruct", views={"path": "x"}, job="y")
    reply = job.wait(timeout=30)
    assert reply["type"] == "error" and "stopped answering" in reply["message"]
    assert time.perf_counter() - start < 10
    stopped = backend.process
    assert stopped is not None and stopped.wait(timeout=5) != 0  # stopped
    assert backend.submit("hello").wait(timeout=30)["type"] == "result"  # the next request starts a new one
    assert backend.process is not stopped and backend.process.poll() is None
    backend.stop()


def test_a_backend_that_dies_fails_the_job_with_its_exit_code(tmp_path):
    backend = fake_backend(tmp_path, DYING)
    job = backend.submit("reconstruct", views={"path": "x"}, job="y")
    replies = [job.messages.get(timeout=30) for _ in range(2)]
    assert replies[0]["type"] == "progress"
    assert replies[1]["type"] == "error" and "exit code 3" in replies[1]["message"]
    backend.stop()


ECHOES_ARGUMENTS = """
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    print(json.dumps({"id": message["id"], "type": "result", "protocol": 1, "argv": sys.argv[1:]}), flush=True)
    if message["op"] == "shutdown":
        break
"""


def test_the_backend_is_told_what_to_warm_up_when_it_starts(tmp_path):
    """The preferences' weights and device: the backend loads them (and warms its kernels) as it starts, so the
    first click does not wait for them."""
    from blender_addon.backend.client import backend_for, shutdown_all

    fake_backend(tmp_path, ECHOES_ARGUMENTS)
    source, log = tmp_path / "source", tmp_path / "log.txt"
    backend = backend_for("SUBPROCESS", Path(sys.executable), source, log, None, ("/w/my.safetensors", "cpu"))
    try:
        argv = backend.submit("hello").wait(timeout=30)["argv"]
        assert argv[argv.index("--device") + 1] == "cpu" and argv[argv.index("--weights") + 1] == "/w/my.safetensors"
        backend.stop()
        assert backend_for("SUBPROCESS", Path(sys.executable), source, log, None, (None, "auto")) is backend
        argv = backend.submit("hello").wait(timeout=30)["argv"]  # a restart warms up what is chosen now
        assert argv[argv.index("--device") + 1] == "auto" and "--weights" not in argv
    finally:
        shutdown_all()
