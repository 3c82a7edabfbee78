"""The backend warms up when it starts: the handshake does not wait for it, a request that needs the model does
(and gets a correct result), a cancel ends that wait, and a warm-up that fails leaves the requests working."""

from __future__ import annotations

import io
import json
import os
import queue
import threading
from pathlib import Path

import pytest
import torch

from gtr_backend import server
from gtr_backend.weights import find_default_weights
from gtr_backend.weights import load_model as real_load_model

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "toy"
VIEWS = {"path": str(EXAMPLE), "orbit": None, "zero123pp": False}
OPTIONS = {"refine_steps": 3, "texture_size": 256, "mesh_resolution": 48, "geometry_steps": 5}

pytestmark = pytest.mark.skipif(find_default_weights() is None, reason="this copy has no bundled weights")


class Running:
    """`server.serve` in a thread of this process, spoken to through pipes as the add-on speaks to it."""

    def __init__(self, jobs_root: Path, warm_up: tuple[str | None, str] | None) -> None:
        read_in, write_in = os.pipe()
        read_out, write_out = os.pipe()
        self.to_server = os.fdopen(write_in, "w")
        self.replies: queue.Queue[dict] = queue.Queue()
        stdin, stdout = os.fdopen(read_in, "r"), os.fdopen(write_out, "w")
        self.thread = threading.Thread(target=self._serve, args=(stdin, stdout, jobs_root, warm_up), daemon=True)
        self.thread.start()
        threading.Thread(target=self._read, args=(os.fdopen(read_out, "r"),), daemon=True).start()

    @staticmethod
    def _serve(stdin: io.TextIOBase, stdout: io.TextIOBase, jobs_root: Path, warm_up: object) -> None:
        try:
            server.serve(stdin, stdout, jobs_root, warm_up)  # type: ignore[arg-type]
        finally:
            stdout.close()

    def _read(self, pipe: io.TextIOBase) -> None:
        for line in pipe:
            self.replies.put(json.loads(line))

    def send(self, message: dict) -> None:
        self.to_server.write(json.dumps(message) + "\n")
        self.to_server.flush()

    def next(self, rid: object) -> dict:
        """The next reply to `rid` (others are dropped)."""
        while True:
            message = self.replies.get(timeout=300)
            if message.get("id") == rid:
                return message

    def final(self, rid: object) -> dict:
        while (message := self.next(rid))["type"] == "progress":
            pass
        return message

    def close(self) -> None:
        self.to_server.close()
        self.thread.join(timeout=300)


@pytest.fixture
def held_loader(monkeypatch):
    """Model loading that waits until the test releases it (entered is set when a load starts)."""
    entered, release, calls = threading.Event(), threading.Event(), []

    def load_model(path, device="cpu", config=None, timings=None):
        calls.append(str(device))
        entered.set()
        assert release.wait(300)
        return real_load_model(path, device, config, timings)

    monkeypatch.setattr("gtr_backend.weights.load_model", load_model)
    return entered, release, calls


def test_the_handshake_does_not_wait_for_the_warm_up_and_a_request_does(tmp_path, held_loader):
    entered, release, calls = held_loader
    backend = Running(tmp_path, (None, "cpu"))
    try:
        assert entered.wait(300)  # the warm-up is loading the model, and stays there until released
        backend.send({"id": 1, "op": "hello"})
        hello = backend.next(1)
        assert hello["type"] == "result" and hello["protocol"] == server.PROTOCOL
        assert not release.is_set() and calls == ["cpu"]  # answered while the model was still loading
        job = {"op": "reconstruct", "views": VIEWS, "device": "cpu", "options": OPTIONS}
        backend.send({"id": 2, **job, "job": str(tmp_path / "cancelled")})
        assert backend.next(2)["stage"] == "warming up: loading the model"  # it waits, and says for what
        backend.send({"op": "cancel", "target": 2})
        cancelled = backend.next(2)
        assert cancelled["type"] == "error" and cancelled["cancelled"] is True
        backend.send({"id": 3, **job, "job": str(tmp_path / "job")})
        assert backend.next(3)["stage"] == "warming up: loading the model"
        release.set()
        result = backend.final(3)
        assert result["type"] == "result", result
        assert result["loaded_model"] is False and calls == ["cpu"]  # the warm-up's model, loaded once
        assert min(result["fidelity"]["mask_iou_per_view"]) > 0.9
        assert (tmp_path / "job" / "mesh.glb").stat().st_size > 1000
        backend.send({"id": 4, "op": "load", "device": "cpu"})
        record = backend.final(4)["warm_up"]
        assert record["device"] == "cpu"
        assert {"import torch", "import backend", "read", "construct", "to device"} <= set(record["seconds"])
    finally:
        release.set()
        backend.close()


def test_a_failed_warm_up_is_one_line_and_requests_still_work(tmp_path, capsys):
    backend = Running(tmp_path, (str(tmp_path / "missing.safetensors"), "cpu"))
    try:
        backend.send({"id": 1, "op": "load", "device": "cpu"})  # the bundled weights: waits, then loads them
        reply = backend.final(1)
        assert reply["type"] == "result" and reply["loaded_model"] is True and reply["warm_up"] is None
    finally:
        backend.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if "warm-up" in line]
    assert len(lines) == 1 and "missing.safetensors" in lines[0] and "requests load the model themselves" in lines[0]


def test_the_kernel_warm_up_runs_what_a_reconstruction_runs():
    """On a GPU the warm-up also runs every kind of kernel once (on the CPU it is skipped: little to gain)."""
    model = real_load_model(find_default_weights(), "cpu")
    kernels = server.warm_kernels(model, torch.device("cpu"))
    assert kernels == {"rasterizer": "torch", "marching_cubes": "torch"}
