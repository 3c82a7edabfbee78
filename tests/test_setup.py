"""Set Up Backend's hardware-aware install (no Blender, no GPU, no network): which PyTorch build a machine gets
from faked `nvidia-smi` answers and platforms, the pip commands (wheels only, PyTorch's index, offline), resuming
after a failure and a repair that swaps in a fresh environment only when it is complete (with a fake Python whose
pip fails on request), and the backend's `mps` device."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch

from blender_addon.backend import environment as env
from blender_addon.backend.hardware import (
    CUDA_BUILDS,
    PYTORCH_INDEX,
    choose_build,
    detect,
    parse_nvidia_smi,
    run_nvidia_smi,
)
from gtr_backend.devices import resolve_device
from gtr_backend.errors import GTRError

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the fake executables are shell-less POSIX scripts")


# --- the choice -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "smi", "variant"),
    [
        ("linux", "575.57.08, NVIDIA GeForce RTX 5090, 12.0", "cu128"),  # Blackwell on a new driver
        ("linux", "570.26, NVIDIA GeForce RTX 4090, 8.9", "cu128"),  # exactly CUDA 12.8's minimum
        ("linux", "560.35.03, NVIDIA GeForce RTX 4090, 8.9", "cu126"),
        ("linux", "560.28.03, NVIDIA RTX A6000, 8.6", "cu126"),
        ("linux", "560.28.02, NVIDIA RTX A6000, 8.6", "cu124"),  # one patch below 12.6's minimum
        ("linux", "550.54.15, Tesla T4, 7.5", "cu124"),
        ("linux", "550.40.07, Tesla T4, 7.5", "cu121"),  # 550 but below 550.54.14
        ("linux", "535.183.01, NVIDIA A100-SXM4-80GB, 8.0", "cu121"),
        ("linux", "525.147.05, NVIDIA GeForce RTX 3080, 8.6", "cu118"),
        ("win32", "572.83, NVIDIA GeForce RTX 5070 Ti, 12.0", "cu128"),
        ("win32", "560.76, NVIDIA GeForce RTX 3060, 8.6", "cu126"),
        ("win32", "551.61, NVIDIA GeForce RTX 3060, 8.6", "cu124"),
        ("win32", "551.23, NVIDIA GeForce RTX 3060, 8.6", "cu121"),  # Windows' 12.4 minimum is 551.61
        ("linux", "580.65.06, NVIDIA GeForce GTX 1080, 6.1", "cu126"),  # Pascal: newest build with its kernels
        ("linux", "555.42.02, Tesla V100-SXM2-16GB, 7.0", "cu124"),
        ("linux", "560.35.03, Quadro P4000, 6.1\n560.35.03, NVIDIA GeForce RTX 4090, 8.9", "cu126"),
        ("linux", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "cpu"),
        ("linux", "No devices were found", "cpu"),
        ("linux", "", "cpu"),
        ("linux", None, "cpu"),
        ("win32", None, "cpu"),
    ],
)
def test_the_build_follows_the_driver_and_the_gpu(system, smi, variant):
    build = choose_build(system, "AMD64" if system == "win32" else "x86_64", smi)
    assert build.variant == variant and build.supported
    assert build.index_url == f"{PYTORCH_INDEX}/{variant}"
    assert build.accelerator == ("cpu" if variant == "cpu" else "cuda")
    if variant != "cpu":
        cuda = next(row[1] for row in CUDA_BUILDS if row[0] == variant)
        assert build.label == f"CUDA {cuda}" and build.gpu is not None
        assert build.summary() == f"Detected: NVIDIA {build.gpu.name.removeprefix('NVIDIA ')}, driver " + (
            f"{build.gpu.driver} -> PyTorch CUDA {cuda} build"
        )


def test_the_reasons_say_what_was_found_and_what_to_do():
    rtx4090 = choose_build("linux", "x86_64", "560.35, NVIDIA GeForce RTX 4090, 8.9")
    assert rtx4090.summary() == "Detected: NVIDIA GeForce RTX 4090, driver 560.35 -> PyTorch CUDA 12.6 build"
    assert "driver 560.35 runs CUDA 12.6" in rtx4090.reason
    two = choose_build("linux", "x86_64", "560.35, Quadro P4000, 6.1\n560.35, NVIDIA GeForce RTX 4090, 8.9")
    assert two.gpu is not None and two.gpu.name == "NVIDIA GeForce RTX 4090" and "(and 1 more GPU)" in two.reason
    pascal = choose_build("linux", "x86_64", "580.65.06, NVIDIA GeForce GTX 1080, 6.1")
    assert "lack kernels for this GPU" in pascal.reason
    # An RTX 50-series GPU needs the CUDA 12.8 build, which an older driver cannot run: CPU, and why.
    for smi in ("565.57.01, NVIDIA GeForce RTX 5080, 12.0", "565.57.01, NVIDIA GeForce RTX 5080"):
        blackwell = choose_build("linux", "x86_64", smi)
        assert blackwell.variant == "cpu" and blackwell.supported
        assert "570.26 or newer" in blackwell.reason and "Repair Backend" in blackwell.reason
    old = choose_build("linux", "x86_64", "470.256.02, Tesla K80")  # an nvidia-smi without compute_cap
    assert old.variant == "cpu" and "470.256.02" in old.reason and "520.61.5" in old.reason
    assert old.summary() == "Detected: NVIDIA Tesla K80, driver 470.256.02 -> PyTorch CPU build"
    garbage = choose_build("linux", "x86_64", "Failed to initialize NVML: Driver/library version mismatch")
    assert "could not be read" in garbage.reason and "version mismatch" in garbage.reason
    assert "no NVIDIA GPU" in choose_build("linux", "aarch64", None).reason


def test_macs_get_metal_on_apple_silicon_and_a_clear_refusal_on_intel():
    mps = choose_build("darwin", "arm64", "560.35, NVIDIA GeForce RTX 4090, 8.9")  # nvidia-smi is never asked
    assert (mps.accelerator, mps.variant, mps.index_url, mps.supported) == ("mps", "pypi", None, True)
    assert mps.summary() == "Detected: Apple Silicon Mac -> PyTorch Apple Metal (MPS) build"
    intel = choose_build("darwin", "x86_64", None)
    assert not intel.supported and "Rosetta" in intel.reason and "Apple Silicon build of Blender" in intel.reason
    assert intel.summary().startswith("Detected: an Intel Mac")


def test_parse_keeps_only_lines_that_are_answers():
    text = "WARNING: infoROM is corrupted at gpu 0000:01:00.0\n560.35.03, NVIDIA RTX A4000, 8.6\n\n , , \n"
    (gpu,) = parse_nvidia_smi(text)
    assert (gpu.name, gpu.driver, gpu.compute_capability) == ("NVIDIA RTX A4000", "560.35.03", (8, 6))
    assert parse_nvidia_smi("[N/A], NVIDIA GeForce RTX 4090, 8.9") == []
    assert parse_nvidia_smi("560.35.03, NVIDIA GeForce RTX 4090, [N/A]")[0].compute_capability is None


# --- running nvidia-smi -----------------------------------------------------------------------------------------


def fake_program(path: Path, body: str) -> Path:
    """An executable Python script at `path` (runs with this test's interpreter)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@posix_only
def test_run_nvidia_smi_asks_for_driver_name_and_compute_capability(tmp_path):
    smi = fake_program(
        tmp_path / "nvidia-smi",
        f"""
        import sys
        open({str(tmp_path / "argv")!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
        print("560.35.03, NVIDIA GeForce RTX 4090, 8.9")
        """,
    )
    assert run_nvidia_smi(str(smi)) == "560.35.03, NVIDIA GeForce RTX 4090, 8.9\n"
    args = (tmp_path / "argv").read_text().split()
    assert args == ["--query-gpu=driver_version,name,compute_cap", "--format=csv,noheader"]
    if sys.platform == "linux":
        assert detect(str(smi)).variant == "cu126"


@posix_only
def test_an_old_nvidia_smi_without_compute_cap_is_asked_again_without_it(tmp_path):
    smi = fake_program(
        tmp_path / "nvidia-smi",
        """
        import sys
        if "compute_cap" in sys.argv[1]:
            print('Field "compute_cap" is not a valid field to query.')
            sys.exit(2)
        print("470.256.02, Tesla K80")
        """,
    )
    assert run_nvidia_smi(str(smi)) == "470.256.02, Tesla K80\n"


@posix_only
def test_a_failing_hanging_or_missing_nvidia_smi_means_no_gpu(tmp_path):
    failing = fake_program(tmp_path / "failing", "import sys; print('NVIDIA-SMI has failed'); sys.exit(9)")
    assert run_nvidia_smi(str(failing)) is None
    hanging = fake_program(tmp_path / "hanging", "import time; time.sleep(30)")
    start = time.monotonic()
    assert run_nvidia_smi(str(hanging), timeout=0.5) is None
    assert time.monotonic() - start < 10  # the timeout holds (two queries at most)
    assert run_nvidia_smi(str(tmp_path / "not-installed")) is None
    if sys.platform == "linux":
        assert detect(str(tmp_path / "not-installed")).variant == "cpu"


# --- the commands -----------------------------------------------------------------------------------------------


def test_the_commands_install_wheels_only_torch_from_its_build_index_and_the_rest_from_the_normal_one(tmp_path):
    build = choose_build("linux", "x86_64", "575.57.08, NVIDIA GeForce RTX 5090, 12.0")
    venv, torch_step, rest = env.setup_steps(tmp_path / "env", Path("/blender/python"), None, build)
    assert venv.command == ["/blender/python", "-m", "venv", str(tmp_path / "env")]
    env_python = str(env.python_in(tmp_path / "env"))
    assert torch_step.command[:3] == [env_python, "-m", "pip"] and torch_step.command[-1] == "torch>=2.4"
    assert "--only-binary=:all:" in torch_step.command and "--only-binary=:all:" in rest.command
    index = torch_step.command.index("--index-url")
    assert torch_step.command[index + 1] == "https://download.pytorch.org/whl/cu128"
    assert "--index-url" not in rest.command and "--no-index" not in rest.command + torch_step.command
    assert rest.command[-len(env.REQUIREMENTS) + 1 :] == list(env.REQUIREMENTS[1:])
    mac = env.setup_steps(tmp_path / "env", Path("/blender/python"), None, choose_build("darwin", "arm64", None))
    assert "--index-url" not in mac[1].command  # PyPI's own macOS wheel is the one with MPS


def test_offline_commands_use_only_the_wheels_folder(tmp_path):
    wheels = tmp_path / "wheels"
    steps = env.setup_steps(tmp_path / "env", Path("/blender/python"), wheels, choose_build("linux", "x86_64", None))
    for step in steps[1:]:
        assert step.command[step.command.index("--find-links") + 1] == str(wheels)
        assert "--no-index" in step.command and "--index-url" not in step.command
        assert "--only-binary=:all:" in step.command


def tiny_wheel(folder: Path, name: str) -> None:
    """A real, minimal pure-Python wheel of `name` 1.0 in `folder`."""
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{name}.py", "VALUE = 1\n")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


def test_real_pip_takes_wheels_from_the_folder_and_never_builds_a_source_package(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "gtrprobe")
    source = wheels / "gtrsourceonly-1.0.tar.gz"  # an sdist: pip would build it without --only-binary
    source.write_bytes(b"")
    target = tmp_path / "target"
    command = env.pip_install(Path(sys.executable), ["gtrprobe"], "http://127.0.0.1:9/unreachable", wheels)
    done = subprocess.run([*command, "--target", str(target)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "gtrprobe.py").is_file()
    command = env.pip_install(Path(sys.executable), ["gtrsourceonly"], None, wheels)
    done = subprocess.run([*command, "--target", str(target)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "from versions: none" in done.stdout + done.stderr
    assert not (target / "gtrsourceonly").exists()


# --- resuming and repairing, with a fake Python -----------------------------------------------------------------

FAKE_PYTHON = """
import os, shutil, sys, time
from pathlib import Path
control = Path(os.environ["GTR_FAKE_CONTROL"])
with open(control / "calls.log", "a") as log:
    log.write(" ".join(sys.argv[1:3] + sys.argv[-1:]) + "\\n")
if sys.argv[1:3] == ["-m", "gtr_backend.cli"]:  # gtr build-rasterizer, in the backend's source folder
    (control / "build-cwd").write_text(os.getcwd())
    print("rasterizer: building nvdiffrast's CUDA rasterizer (usually 1-3 minutes, once per machine)", flush=True)
    if (control / "no-nvcc").exists():
        print("gtr: error: the fast GPU rasterizer (nvdiffrast) cannot be built: nvcc was not found", flush=True)
        sys.exit(2)
    print("rasterizer: ready (built now)", flush=True)
    sys.exit(0)
if sys.argv[1:3] == ["-m", "venv"]:
    folder = Path(sys.argv[3])
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(sys.argv[0], folder / "bin" / "python")
    (folder / "pyvenv.cfg").write_text("home = fake\\n")
    sys.exit(0)
requirements = [arg for arg in sys.argv if ">=" in arg]
packages = [requirement.split(">")[0] for requirement in requirements]
if (control / "slow").exists():
    print("Downloading", *packages, flush=True)
    time.sleep(60)
failing = [p for p in packages if (control / f"fail-once-{p}").exists() or (control / f"fail-{p}").exists()]
if failing:
    (control / f"fail-once-{failing[0]}").unlink(missing_ok=True)
    print("ERROR: Could not find a version that satisfies the requirement", failing[0], flush=True)
    sys.exit(1)
folder = Path(sys.argv[0]).resolve().parent.parent
with open(folder / "installed.txt", "a") as installed:
    installed.write(" ".join(requirements) + "\\n")
print("Successfully installed", *packages, flush=True)
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(base python, control folder, environment folder): the fake Python makes fake environments whose pip
    installs by writing installed.txt and fails once per `fail-once-<package>` file in the control folder."""
    if sys.platform == "win32":
        pytest.skip("the fake Python is a POSIX script")
    control = tmp_path / "control"
    control.mkdir()
    monkeypatch.setenv("GTR_FAKE_CONTROL", str(control))
    target = tmp_path / "user" / "backend-env"
    target.mkdir(parents=True)  # Blender's user folder exists, empty, before the first setup
    return fake_program(tmp_path / "base" / "python", FAKE_PYTHON), control, target


CPU = choose_build("linux", "x86_64", None)
CUDA = choose_build("linux", "x86_64", "575.57.08, NVIDIA GeForce RTX 5090, 12.0")


def run_setup(
    target: Path,
    python: Path,
    build=CPU,
    repair: bool = False,
    wheels: Path | None = None,
    rasterizer: Path | None = None,
    notes: list[str] | None = None,
):
    plan = env.plan_setup(target, python, wheels, build, repair=repair, rasterizer=rasterizer)
    run = env.SetupRun(plan, start=False)
    run.run()
    lines = []
    while not run.lines.empty():
        lines.append(run.lines.get())
    if notes is not None:
        notes += run.notes
    return plan, run.result, lines


def calls(control: Path) -> list[str]:
    log = control / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [" ".join(call.split()[1:]) for call in calls]  # "venv <folder>", "pip torch>=2.4", ...


def test_a_failed_setup_is_kept_and_the_next_one_resumes_where_it_stopped(fake):
    python, control, target = fake
    (control / "fail-once-numpy").touch()
    plan, result, lines = run_setup(target, python)
    assert not plan.fresh and plan.why == "new environment"
    assert result.startswith("'") and "Could not find a version that satisfies the requirement numpy" in result
    assert calls(control) == [f"venv {target}", "pip torch>=2.4", "pip tqdm>=4.60"]
    marker = env.read_marker(target)
    assert marker is not None and not marker["complete"] and set(marker["done"]) == {"environment", "torch"}
    assert (target / "installed.txt").read_text() == "torch>=2.4\n"  # the half-made environment is still there

    plan, result, lines = run_setup(target, python)
    assert plan.why == "resuming" and [step.name for step in plan.pending()] == ["requirements"]
    assert result == "" and calls(control) == ["pip tqdm>=4.60"]  # only the step that failed runs again
    assert "GTR setup: torch: already done" in lines
    marker = env.read_marker(target)
    assert (
        marker is not None
        and marker["complete"]
        and marker["identity"]
        == {
            "torch": "cpu",
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        }
    )
    installed = (target / "installed.txt").read_text().splitlines()
    assert installed[0] == "torch>=2.4" and installed[1].split() == list(env.REQUIREMENTS[1:])

    plan, result, _ = run_setup(target, python)  # complete: nothing to do
    assert result == "" and plan.pending() == [] and calls(control) == []
    other = target.parent / "wheels"
    plan, result, _ = run_setup(target, python, wheels=other)  # another source: pip runs again (and skips)
    assert [step.name for step in plan.pending()] == ["torch", "requirements"]


def test_another_build_is_built_apart_and_swapped_in_when_complete(fake):
    python, _, target = fake
    assert run_setup(target, python, CPU)[1] == ""
    (target / "old-file").touch()
    plan, result, lines = run_setup(target, python, CUDA)
    assert plan.fresh and plan.work == target.with_name("backend-env.new")
    assert "PyTorch 'cpu'" in plan.why and "'cu128'" in plan.why and lines[0] == f"GTR setup: {plan.why}"
    assert result == "" and not (target / "old-file").exists()
    assert not plan.work.exists() and not target.with_name("backend-env.old").exists()
    assert env.read_marker(target)["identity"]["torch"] == "cu128"  # type: ignore[index]
    # The swapped-in environment counts as done where it landed: Set Up again has nothing to do.
    assert run_setup(target, python, CUDA)[0].pending() == []


def test_a_failed_repair_leaves_the_old_environment_in_place_and_a_second_one_replaces_it(fake):
    python, control, target = fake
    assert run_setup(target, python)[1] == ""
    (target / "old-file").touch()
    before = env.read_marker(target)
    calls(control)
    (control / "fail-once-torch").touch()
    plan, result, _ = run_setup(target, python, repair=True)
    assert plan.fresh and plan.why == "repair: a fresh environment" and "torch" in result
    assert (target / "old-file").exists() and env.read_marker(target) == before and (target / "bin/python").exists()
    assert not plan.work.exists()  # the half-made new environment is removed
    assert calls(control) == [f"venv {plan.work}", "pip torch>=2.4"]
    plan, result, _ = run_setup(target, python, repair=True)
    assert result == "" and not (target / "old-file").exists() and env.read_marker(target)["complete"]  # type: ignore[index]
    assert len(calls(control)) == 3  # a repair reinstalls everything


def test_an_environment_without_a_setup_record_is_replaced_not_patched(fake):
    python, _, target = fake
    (target / "lib").mkdir()  # made by hand, or by an older version of the add-on
    plan, result, _ = run_setup(target, python)
    assert plan.fresh and "no setup record" in plan.why and result == "" and not (target / "lib").exists()


def test_cancelling_stops_the_running_command_and_keeps_what_was_done(fake):
    python, control, target = fake
    (control / "slow").touch()
    run = env.SetupRun(env.plan_setup(target, python, None, CPU))
    deadline = time.monotonic() + 60
    while not any("Downloading" in line for line in list(run.lines.queue)) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop()
    run.thread.join(30)
    assert run.result == "cancelled"
    assert env.read_marker(target)["done"].keys() == {"environment"}  # type: ignore[index]


def test_a_real_virtual_environment_works_after_it_is_swapped_into_place(tmp_path):
    new, target = tmp_path / "env.new", tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(new)], check=True, timeout=120)
    target.mkdir()
    (target / "old").touch()
    env.swap_in(new, target)
    prefix = subprocess.run(
        [str(env.python_in(target)), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert Path(prefix.stdout.strip()).resolve() == target.resolve()
    assert not (target / "old").exists() and not new.exists() and not (tmp_path / "env.old").exists()
    with pytest.raises(OSError):
        env.swap_in(tmp_path / "missing", target)  # nothing to swap in: the environment stays as it was
    assert env.python_in(target).exists()


def test_the_setup_modules_import_neither_bpy_nor_torch():
    code = f"""
    import importlib, sys, types
    package = types.ModuleType("setup_only")
    package.__path__ = [{str(ROOT / "blender_addon" / "backend")!r}]
    sys.modules["setup_only"] = package
    importlib.import_module("setup_only.environment")
    print(sorted(m for m in ("bpy", "torch", "numpy") if m in sys.modules))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the backend's mps device -----------------------------------------------------------------------------------


def test_mps_is_used_where_pytorch_offers_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps") and resolve_device("auto") == torch.device("mps")
    with pytest.raises(GTRError, match="there is no mps:1.*use mps"):
        resolve_device("mps:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")  # CUDA first
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(GTRError, match=r"^Apple's MPS \(Metal\) was requested, but this PyTorch .*; use --device cpu$"):
        resolve_device("mps")
    with pytest.raises(GTRError, match="use auto, cpu, cuda, cuda:N or mps"):
        resolve_device("xpu")


def test_on_mps_the_pytorch_rasterizer_and_marching_cubes_run(monkeypatch):
    from gtr_backend.mesh import extract
    from gtr_backend.render import raster

    # Even with nvdiffrast and diso "installed", only CUDA uses them.
    monkeypatch.setattr(raster, "nvdiffrast_available", lambda: True)
    assert isinstance(raster.get_rasterizer("mps"), raster.TorchRasterizer)
    with pytest.raises(GTRError, match="needs a CUDA GPU"):
        raster.get_rasterizer("mps", "nvdiffrast")
    monkeypatch.setattr(extract, "diso_available", lambda: True)
    monkeypatch.setattr(extract, "_diso_marching_cubes", lambda sdf: pytest.fail("diso used off CUDA"))
    axis = torch.linspace(-1, 1, 16)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
    sdf = grid.norm(dim=-1) - 0.5  # a tensor that is not on CUDA, as on mps
    mesh = extract.level_set_mesh(sdf)
    assert mesh.faces.shape[0] > 100


def test_every_device_the_add_on_offers_is_one_the_backend_accepts():
    from gtr_backend.contract import DEVICES

    # The add-on's menu is built from the contract's one definition.
    assert "contract.DEVICES.items()" in (ROOT / "blender_addon" / "preferences.py").read_text()
    assert list(DEVICES) == ["auto", "cuda", "mps", "cpu"]
    for name in DEVICES:
        try:
            resolve_device(name)
        except GTRError as error:  # only "this machine lacks it", never "unknown"
            assert "not supported" not in str(error) and "unknown" not in str(error)


def test_the_marker_is_plain_json_a_person_can_read(fake):
    python, _, target = fake
    run_setup(target, python)
    marker = json.loads((target / env.MARKER).read_text())
    assert marker["done"]["torch"].endswith("--index-url https://download.pytorch.org/whl/cpu torch>=2.4")


def test_the_fast_gpu_rasterizer_is_built_when_asked_on_a_cuda_build_and_its_failure_is_a_note(fake, tmp_path):
    """Set Up Backend's opt-in: install nvdiffrast and ninja, then `gtr build-rasterizer` in the backend's Python,
    run in the backend's source folder (so `-m gtr_backend.cli` is found). Only on a CUDA build; a build that
    cannot run is a note (the PyTorch rasterizer is used), not a failed setup, and is tried again next time."""
    python, control, target = fake
    source = tmp_path / "source"
    source.mkdir()
    assert [step.name for step in env.setup_steps(target, python, None, CPU, source)] == [
        "environment",
        "torch",
        "requirements",
    ]  # no NVIDIA GPU: nothing to build
    assert len(env.setup_steps(target, python, None, CUDA)) == 3  # not asked for
    steps = env.setup_steps(target, python, None, CUDA, source)
    extras, build = steps[3], steps[4]
    assert extras.optional and build.optional and build.cwd == str(source)
    assert extras.command[-2:] == list(env.RASTERIZER_REQUIREMENTS) and "--only-binary=:all:" in extras.command
    assert build.command == [str(env.python_in(target)), "-m", "gtr_backend.cli", "build-rasterizer"]

    (control / "no-nvcc").touch()
    notes: list[str] = []
    plan, result, lines = run_setup(target, python, CUDA, rasterizer=source, notes=notes)
    assert result == "" and env.read_marker(target)["complete"]  # type: ignore[index]
    assert notes == ["the fast GPU rasterizer (nvdiffrast) cannot be built: nvcc was not found"]
    assert any(line.startswith("rasterizer: building") for line in lines)
    assert calls(control)[-2:] == ["pip ninja>=1.11", "gtr_backend.cli build-rasterizer"]  # pip: its last argument
    assert "diffrp-nvdiffrast>=0.3.3 ninja>=1.11" in (target / "installed.txt").read_text()
    assert (control / "build-cwd").read_text() == str(source)
    assert "rasterizer" not in env.read_marker(target)["done"]  # type: ignore[index]

    (control / "no-nvcc").unlink()  # the CUDA toolkit installed: Set Up again builds it, nothing else
    notes.clear()
    plan, result, lines = run_setup(target, python, CUDA, rasterizer=source, notes=notes)
    assert result == "" and notes == [] and [step.name for step in plan.pending()] == ["rasterizer"]
    assert "rasterizer: ready (built now)" in lines
