"""nvdiffrast's CUDA plugin build, on the CPU: a fake nvdiffrast that builds like diffrp-nvdiffrast does (PyTorch's
lock file in its build folder, waiting on it while it exists), in a fake extension folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from torch.utils import cpp_extension
from torch.utils.file_baton import FileBaton

from gtr_backend.cli import main
from gtr_backend.render import nvdiffrast_build as build
from gtr_backend.render import raster
from gtr_backend.render.raster import TorchRasterizer, get_rasterizer

BUILT = b"a built plugin"


class FakeNvdiffrast:
    """nvdiffrast.torch.ops as diffrp-nvdiffrast has it: `_get_plugin` imports a finished build, else builds under
    PyTorch's lock (and, like PyTorch, waits while another holds it; here for 3 s, not for ever)."""

    def __init__(self) -> None:
        self.compiles = 0
        self.failure: Exception | None = None  # what the compiler raises, if anything
        self.ops = types.ModuleType("nvdiffrast.torch.ops")
        self.ops._cached_plugin = {}  # type: ignore[attr-defined]
        self.ops.sanitize_name = lambda name: name.replace(".", "_").replace("+", "_")  # type: ignore[attr-defined]
        self.ops._get_plugin = self.get_plugin  # type: ignore[attr-defined]

    def name(self) -> str:
        return self.ops.sanitize_name(f"nvdiffrast_plugin_0.3.3.1_torch{torch.__version__}")  # type: ignore[attr-defined]

    def get_plugin(self, gl: bool = False) -> object:
        cached = self.ops._cached_plugin  # type: ignore[attr-defined]
        if cached.get(False) is not None:
            return cached[False]
        name = self.name()
        folder = Path(cpp_extension._get_build_directory(name, False))
        try:
            module = cpp_extension._import_module_from_library(name, str(folder), True)
        except ImportError:
            baton = FileBaton(str(folder / "lock"))
            if baton.try_acquire():
                try:
                    self.compiles += 1
                    if self.failure is not None:
                        raise self.failure
                    build.library_file(folder, name).write_bytes(BUILT)
                finally:
                    baton.release()
            else:
                start = time.monotonic()
                while (folder / "lock").exists():
                    if time.monotonic() - start > 3:
                        raise RuntimeError(f"still waiting on {folder / 'lock'}") from None
                    time.sleep(0.05)
            module = cpp_extension._import_module_from_library(name, str(folder), True)
        cached[False] = module
        return module


def fake_import(name: str, path: str, is_python_module: bool) -> types.ModuleType:
    """PyTorch's loader of a built extension, for the fake plugin file."""
    library = build.library_file(Path(path), name)
    if not library.is_file() or library.read_bytes() != BUILT:
        raise ImportError(f"no built plugin at {library}")
    return types.ModuleType(name)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """CUDA present, the fake nvdiffrast installed, the extension folder in tmp_path, the tools there."""
    nv = FakeNvdiffrast()
    package = types.ModuleType("nvdiffrast")
    package.__version__ = "0.3.3.1"  # type: ignore[attr-defined]
    torch_module = types.ModuleType("nvdiffrast.torch")

    class Context:
        def __init__(self, device: object = None) -> None:
            self.plugin = nv.get_plugin()

    torch_module.RasterizeCudaContext = Context  # type: ignore[attr-defined]
    torch_module.ops = nv.ops  # type: ignore[attr-defined]
    package.torch = torch_module  # type: ignore[attr-defined]
    for name, module in (("nvdiffrast", package), ("nvdiffrast.torch", torch_module), ("nvdiffrast.torch.ops", nv.ops)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cpp_extension, "_import_module_from_library", fake_import)
    monkeypatch.setattr(build, "missing_tools", lambda: None)
    monkeypatch.setattr(raster, "_FAILED", [None])
    monkeypatch.setattr(raster, "_SAID", set())
    raster._nvdiffrast.cache_clear()
    yield nv
    raster._nvdiffrast.cache_clear()


def folder_of(nv: FakeNvdiffrast, tmp_path: Path) -> Path:
    folder = tmp_path / "extensions" / nv.name()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def owner_record(folder: Path, pid: int) -> None:
    started = build._start_ticks(pid)
    (folder / build.OWNER).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": started}))


def test_a_lock_left_by_a_killed_build_is_removed_and_the_build_goes_on(fake, tmp_path, capsys):
    folder = folder_of(fake, tmp_path)
    (folder / "lock").write_text("")  # PyTorch's lock of a build whose process was killed
    owner_record(folder, dead_pid())
    rasterizer = get_rasterizer("cuda")
    assert rasterizer.name == "nvdiffrast" and fake.compiles == 1
    err = capsys.readouterr().err
    assert "removed a stale build lock" in err and "no longer runs" in err
    assert "usually 1-3 minutes, once per machine" in err and "built nvdiffrast's CUDA rasterizer in" in err
    assert not (folder / "lock").exists() and not (folder / build.OWNER).exists()


def test_a_finished_build_loads_without_a_compiler(fake, tmp_path, monkeypatch, capsys):
    folder = folder_of(fake, tmp_path)
    build.library_file(folder, fake.name()).write_bytes(BUILT)
    monkeypatch.setattr(build, "missing_tools", lambda: "nvcc, the CUDA compiler, was not found")
    assert get_rasterizer("cuda").name == "nvdiffrast" and fake.compiles == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("problem", "words"),
    [
        ("nvcc, the CUDA compiler, was not found: install the CUDA toolkit 13.0", "nvcc"),
        ("ninja was not found: install it into this Python", "ninja"),
    ],
)
def test_a_build_that_cannot_run_falls_back_in_one_line(fake, tmp_path, monkeypatch, capsys, problem, words):
    monkeypatch.setattr(build, "missing_tools", lambda: problem)
    fake.failure = OSError("CUDA_HOME environment variable is not set. Please set it to your CUDA install root.")
    assert isinstance(get_rasterizer("cuda"), TorchRasterizer)
    assert isinstance(get_rasterizer("cuda"), TorchRasterizer)  # said once, not tried again
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].endswith("; using the PyTorch rasterizer")
    assert fake.compiles == 0 and not (folder_of(fake, tmp_path) / "lock").exists()


def test_a_failed_build_falls_back_in_one_line_and_keeps_the_compiler_output(fake, tmp_path, capsys):
    output = '[1/15] nvcc -c rasterize.cu\nrasterize.cu(12): error: identifier "foo" is undefined\nninja: build stopped'
    fake.failure = RuntimeError(f"Error building extension '{fake.name()}': {output}")
    assert isinstance(get_rasterizer("cuda"), TorchRasterizer)
    err = capsys.readouterr().err
    fallback = [line for line in err.splitlines() if "using the PyTorch rasterizer" in line]
    assert len(fallback) == 1 and 'identifier "foo" is undefined' in fallback[0]
    log = tmp_path / "extensions" / build.LOG
    assert str(log) in fallback[0] and "ninja: build stopped" in log.read_text()
    assert not (folder_of(fake, tmp_path) / "lock").exists()  # the next process is not stuck on it
    with pytest.raises(build.BuildError, match="failed"):  # asking for nvdiffrast itself: the error, no fallback
        get_rasterizer("cuda", "nvdiffrast")


def test_a_build_in_another_process_is_not_waited_on_unless_asked(fake, tmp_path, capsys):
    """Our builds hold an OS lock that the system releases when the process ends, however it ends."""
    root = tmp_path / "extensions"
    root.mkdir()
    code = (
        "import fcntl, sys, time\n"
        f"handle = open({str(root / build.GUARD)!r}, 'a+b')\n"
        "fcntl.flock(handle.fileno(), fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    if sys.platform == "win32":
        pytest.skip("the holder below uses fcntl")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert isinstance(get_rasterizer("cuda"), TorchRasterizer)
        line = capsys.readouterr().err.strip()
        assert "being built by another process" in line and line.endswith("using the PyTorch rasterizer")
        assert fake.compiles == 0
    finally:
        holder.kill()  # like a closed Blender or a GPU job out of time
        holder.wait()
    assert get_rasterizer("cuda").name == "nvdiffrast" and fake.compiles == 1  # nothing left to wait on


def test_which_locks_are_stale(tmp_path):
    folder = tmp_path / "nvdiffrast_plugin_x"
    folder.mkdir()
    lock = folder / "lock"
    lock.write_text("")
    assert not build.inspect_lock(lock).stale  # just made, by a program that left no record: it may be building
    old = time.time() - build.STALE_AFTER_S - 60
    os.utime(lock, (old, old))
    assert build.inspect_lock(lock).stale  # old, and nothing compiles in its folder
    compiler = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], cwd=folder)
    builder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], cwd=tmp_path)
    try:
        if Path("/proc").is_dir():
            working = build.inspect_lock(lock)
            assert not working.stale and str(compiler.pid) in working.why  # a compiler still works there
        compiler.kill()
        compiler.wait()
        os.utime(lock, None)
        owner_record(folder, builder.pid)
        live = build.inspect_lock(lock)
        assert not live.stale and f"process {builder.pid} is building it" in live.why  # our record, a live builder
    finally:
        for process in (compiler, builder):
            process.kill()
            process.wait()
    owner_record(folder, dead_pid())
    dead = build.inspect_lock(lock)
    assert dead.stale and "no longer runs" in dead.why  # our record names a process that is gone
    (folder / build.OWNER).write_text(json.dumps({"pid": 1, "host": "another-machine", "started": None}))
    assert not build.inspect_lock(lock).stale  # another machine's build: only its age tells
    assert build.clear_stale_locks(tmp_path, lambda message: None) == []
    os.utime(lock, (old, old))
    assert build.clear_stale_locks(tmp_path, lambda message: None) == [lock]
    assert not lock.exists() and not (folder / build.OWNER).exists()


def test_build_rasterizer_builds_once_and_says_so(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("gtr_backend.cli.build_rasterizer.draws", lambda: True)  # a triangle, on the GPU
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *device: "NVIDIA H200")
    folder = folder_of(fake, tmp_path)
    (folder / "lock").write_text("")
    owner_record(folder, dead_pid())
    assert main(["build-rasterizer"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.startswith("rasterizer: ") for line in out)
    assert any("removed a stale build lock" in line for line in out)
    assert any("usually 1-3 minutes" in line for line in out) and "built now" in out[-1]
    fake.ops._cached_plugin.clear()  # type: ignore[attr-defined]  # a new process
    assert main(["build-rasterizer"]) == 0 and fake.compiles == 1
    assert "already built" in capsys.readouterr().out


def test_build_rasterizer_says_in_one_line_why_it_cannot(fake, monkeypatch, capsys):
    monkeypatch.setattr(build, "missing_tools", lambda: "ninja was not found: install it into this Python")
    assert main(["build-rasterizer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gtr: error: ") and "ninja was not found" in err and "\n" not in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["build-rasterizer"]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
