"""The backend process under hostile input: no line silences it, every bad request gets a one-line error that
names the field, job folders stay inside the jobs root, and a job is written all or nothing."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_process import Server

from gtr_backend.contract import BAKE_TARGET, PROTOCOL
from gtr_backend.errors import GTRError, WriteError
from gtr_backend.mesh import Mesh
from gtr_backend.server import MAX_LINE, Session, read_bake_target, write_job

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "toy"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def server(jobs):
    s = Server(jobs)
    yield s
    s.process.kill()


@pytest.mark.parametrize(
    "line",
    ["[1, 2]", '"hello"', "null", "{", "\x00\xff garbage", "[" * 100_000, "[" * (MAX_LINE + 10), '{"op": 5}'],
    ids=["list", "string", "null", "broken", "bytes", "deep", "huge", "op-not-text"],
)
def test_no_line_silences_the_backend(server, line):
    server.line(line)
    error = server.reply()
    assert error["type"] == "error" and "\n" not in error["message"] and "Traceback" not in error["message"]
    server.send({"id": 1, "op": "hello"})
    assert server.final(1)["protocol"] == PROTOCOL  # still answering


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        ({"op": "reconstruct", "job": "x"}, "'views' is missing"),
        ({"op": "reconstruct", "views": {"path": "v"}}, "'job' is missing"),
        ({"op": "reconstruct", "views": {"path": 3}, "job": "x"}, "'path' must be a string"),
        ({"op": "reconstruct", "views": {"path": "v"}, "job": "x", "options": {"refine_steps": "9"}}, "refine_steps"),
        ({"op": "reconstruct", "views": {"path": "v"}, "job": "x", "colour": 1}, "unknown field 'colour'"),
        ({"op": "refine", "job": "x", "steps": -3}, "'steps' must be at least 1"),
        ({"op": "hello", "protocol": PROTOCOL + 1}, "speaks protocol"),
        ({"op": "dance"}, "unknown request 'dance'"),
        ({"op": "load", "weights": "w\x00.safetensors"}, "'weights' contains a NUL character"),
        ({"op": "cameras", "views": {"path": "v\x00"}, "folder": "x"}, "'path' contains a NUL character"),
        ({"op": "refine", "job": "jobs/\x00a"}, "'job' contains a NUL character"),
    ],
)
def test_bad_requests_name_the_field(server, request_, named):
    server.send({"id": 7, **request_})
    error = server.final(7)
    assert error["type"] == "error" and named in error["message"], error


def test_jobs_stay_inside_the_jobs_root(server, jobs, tmp_path):
    views = {"path": str(EXAMPLE)}
    for where in (str(tmp_path / "elsewhere"), str(jobs / ".." / "escaped"), str(jobs)):
        start = time.perf_counter()
        server.send({"id": 8, "op": "reconstruct", "views": views, "job": where, "device": "cpu"})
        error = server.final(8)
        assert error["type"] == "error" and "not inside the jobs folder" in error["message"]
        assert time.perf_counter() - start < 5  # refused before any work
    assert not (tmp_path / "elsewhere").exists() and not (jobs.parent / "escaped").exists()


def test_ping_answers_during_a_job_and_a_stray_cancel_is_ignored(server, jobs):
    server.send({"op": "cancel", "target": 21})  # nothing with id 21 runs: must not cancel a later request 21
    options = {"refine_steps": 200, "mesh_resolution": 48, "texture_size": 128}
    request = {"op": "reconstruct", "views": {"path": str(EXAMPLE)}, "job": str(jobs / "a"), "device": "cpu"}
    server.send({"id": 21, **request, "options": {**options, "refine_steps": 2}})
    assert server.final(21)["type"] == "result"
    server.send({"id": 22, **request, "options": options})
    time.sleep(1.0)
    sent = time.perf_counter()
    server.send({"id": 23, "op": "ping"})
    pong = server.final(23)
    assert pong["busy"] is True and time.perf_counter() - sent < 3
    server.send({"op": "cancel", "target": 22})
    assert server.final(22).get("cancelled") is True


def test_a_request_with_a_string_id_can_be_cancelled(server, jobs):
    """Ids may be strings; a cancel names any id the protocol allows."""
    options = {"refine_steps": 200, "mesh_resolution": 48, "texture_size": 128}
    request = {"op": "reconstruct", "views": {"path": str(EXAMPLE)}, "job": str(jobs / "s"), "device": "cpu"}
    server.send({"id": "job-s", **request, "options": options})
    time.sleep(1.0)
    server.send({"op": "cancel", "target": "job-s"})
    assert server.final("job-s").get("cancelled") is True
    for target in (True, 1.5, None, [1]):  # not an id: refused in words, as every bad field is
        server.send({"id": 41, "op": "cancel", "target": target})
        error = server.final(41)
        assert error["type"] == "error" and "'target' must be an integer or a string" in error["message"]


def test_an_id_already_running_is_refused_and_free_again_once_answered(server, jobs):
    options = {"refine_steps": 200, "mesh_resolution": 48, "texture_size": 128}
    request = {"op": "reconstruct", "views": {"path": str(EXAMPLE)}, "job": str(jobs / "d"), "device": "cpu"}
    server.send({"id": 31, **request, "options": options})
    server.send({"id": 31, "op": "hello"})  # the same id while the first runs (or waits): refused
    server.send({"id": 31, "op": "ping"})
    replies = []
    while len([r for r in replies if r.get("id") is None]) < 2:
        replies.append(server.reply())
    refused = [r for r in replies if r.get("id") is None]
    for error in refused:
        assert error["type"] == "error" and "the id 31 is already taken" in error["message"], error
    assert all(r["type"] == "progress" for r in replies if r.get("id") == 31)  # nothing else answered as 31
    server.send({"op": "cancel", "target": 31})  # the first request is still the one with that id
    assert server.final(31).get("cancelled") is True
    server.send({"id": 31, "op": "hello"})  # answered: the id is free again at once
    assert server.final(31)["protocol"] == PROTOCOL


def test_the_server_exits_when_stdin_closes(jobs):
    s = Server(jobs)
    s.line("[1, 2]")
    assert s.reply()["type"] == "error"
    assert s.process.stdin is not None
    s.process.stdin.close()
    assert s.process.wait(timeout=30) == 0


def textured_square() -> Mesh:
    vertices = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = vertices[:, :2].clone()
    return Mesh(vertices, faces, uv=uv, texture=torch.rand(8, 8, 3))


class Colors:
    def __init__(self) -> None:
        self.triplane = torch.zeros(3, 2, 4, 4)
        self.field = torch.nn.Linear(2, 2)


def test_a_job_is_written_all_or_nothing(tmp_path, monkeypatch):
    job = tmp_path / "job"
    write_job(job, textured_square(), Colors(), {"views": "first"})
    before = {p.name: p.read_bytes() for p in job.iterdir()}
    assert set(before) == {"mesh.glb", "mesh.npz", "texture.png", "state.safetensors", "job.json"}

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gtr_backend.export.write_mesh", fail)  # fails after the texture and state were written
    with pytest.raises(WriteError, match=rf"^cannot write {job}: No space left on device; .*the old one is kept$"):
        write_job(job, textured_square(), Colors(), {"views": "second"})  # one line for the reply, no traceback
    assert {p.name: p.read_bytes() for p in job.iterdir()} == before  # the old job, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]  # nothing half-written beside it


def test_a_rewritten_job_keeps_what_else_lives_in_it(tmp_path):
    job = tmp_path / "job"
    (job / "views").mkdir(parents=True)  # Render Selected captures its views into the job folder
    (job / "views" / "view_000.png").write_bytes(b"captured")
    write_job(job, textured_square(), Colors(), {"views": "first"})
    mesh = (job / "mesh.glb").read_bytes()
    write_job(job, textured_square(), Colors(), {"views": "refined"}, mesh_files=False)  # a refine
    assert (job / "views" / "view_000.png").read_bytes() == b"captured"
    assert (job / "mesh.glb").read_bytes() == mesh
    assert json.loads((job / "job.json").read_text()) == {"views": "refined"}


@pytest.mark.parametrize(
    ("arrays", "named"),
    [
        ({"faces": np.array([[0, 1, 1.5]])}, "its faces are float64 values, not integers"),
        ({"faces": np.array([[0, 1, 2]], dtype=np.float32)}, "its faces are float32 values, not integers"),
        ({"faces": np.array([[0, 1, 2j]])}, "its faces are complex128 values"),
        ({"faces": np.array([["0", "1", "2"]])}, "its faces are <U1 values"),
        ({"faces": np.array([[True, False, True]])}, "its faces are bool values"),
        ({"vertices": np.zeros((3, 3), dtype=np.complex64)}, "its vertices are complex64 values, not real numbers"),
        ({"uv": np.array([["a", "b"]] * 3)}, "its uv are <U1 values, not real numbers"),
    ],
    ids=["fractions", "whole-floats", "complex", "text", "bool", "complex-vertices", "text-uv"],
)
def test_a_bake_target_of_the_wrong_types_is_refused_not_rounded(tmp_path, arrays, named):
    """Faces must be vertex indices (integers), never floats with their fractions dropped; coordinates real."""
    target = {"vertices": np.zeros((3, 3), np.float32), "faces": np.array([[0, 1, 2]]), "uv": np.zeros((3, 2))}
    np.savez(tmp_path / BAKE_TARGET, **{**target, **arrays})
    with pytest.raises(GTRError, match=named) as caught:
        read_bake_target(tmp_path / BAKE_TARGET)
    assert "\n" not in str(caught.value)
    np.savez(tmp_path / BAKE_TARGET, **target)
    assert read_bake_target(tmp_path / BAKE_TARGET).faces.tolist() == [[0, 1, 2]]


def test_a_session_refuses_a_job_path_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GTRError, match="is a file"):
        Session(tmp_path).job_folder(str(tmp_path / "file"))
