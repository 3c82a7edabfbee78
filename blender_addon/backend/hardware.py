"""Which PyTorch build Set Up Backend installs on this machine (no bpy, no torch: runs before either exists).

`choose_build` is the whole decision, a pure function of the platform and of what `nvidia-smi` printed, so it is
tested with faked outputs; `detect` runs `nvidia-smi` and calls it; `cached_detection` does that once, in a
thread, for the preferences to show.
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, Literal

PYTORCH_INDEX = "https://download.pytorch.org/whl"

# PyTorch's CUDA builds, newest first, with the oldest NVIDIA driver each one runs on: the "GA" rows of NVIDIA's
# "CUDA Toolkit and Corresponding Driver Versions" table (CUDA Toolkit release notes, Table 3), as
# (variant, CUDA version, minimum Linux driver, minimum Windows driver). A driver older than the last row gets the
# CPU build. Keep this the only place these numbers live.
CUDA_BUILDS: tuple[tuple[str, str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("cu128", "12.8", (570, 26), (570, 65)),
    ("cu126", "12.6", (560, 28, 3), (560, 76)),
    ("cu124", "12.4", (550, 54, 14), (551, 61)),
    ("cu121", "12.1", (530, 30, 2), (531, 14)),
    ("cu118", "11.8", (520, 61, 5), (520, 6)),
)
# Blackwell GPUs (compute capability 10.x and 12.x: RTX 50-series, B200) have kernels only from CUDA 12.8 on.
BLACKWELL = (10, 0)
# PyTorch's CUDA 12.8 builds no longer carry kernels for Maxwell, Pascal and Volta (compute capability < 7.5:
# GTX 900/1000-series, TITAN V, V100); its CUDA 12.6 builds are the newest that still do.
NEWEST_FOR_OLD_GPUS = "cu126"
OLD_GPU_BELOW = (7, 5)

NVIDIA_SMI_QUERY = ("--query-gpu=driver_version,name,compute_cap", "--format=csv,noheader")
# Drivers older than 510 lack the compute_cap field; the same query without it still tells the driver's age.
NVIDIA_SMI_QUERY_OLD = ("--query-gpu=driver_version,name", "--format=csv,noheader")


@dataclass(frozen=True)
class Gpu:
    """One line of `nvidia-smi`'s answer."""

    name: str
    driver: str
    compute_capability: tuple[int, int] | None  # None: an nvidia-smi too old to say


@dataclass(frozen=True)
class TorchBuild:
    """The PyTorch build chosen for this machine, and why, in words for the preferences."""

    accelerator: Literal["cuda", "mps", "cpu"]
    variant: str  # the PyTorch index's name for the build ("cu128", "cpu"), or "pypi" for PyPI's own wheels
    label: str  # "CUDA 12.8", "Apple Metal (MPS)", "CPU"
    reason: str
    gpu: Gpu | None = None
    supported: bool = True  # False: no PyTorch build fits (Intel Macs); `reason` says what to do instead

    @property
    def index_url(self) -> str | None:
        """Where pip finds this build's torch wheel; None: the normal package index (PyPI)."""
        return None if self.variant == "pypi" else f"{PYTORCH_INDEX}/{self.variant}"

    def summary(self) -> str:
        """One line for the preferences, e.g. "Detected: NVIDIA GeForce RTX 4090, driver 560.35 -> PyTorch CUDA
        12.6 build"."""
        if not self.supported:
            return f"Detected: {self.reason}"
        found = f"NVIDIA {self.gpu.name.removeprefix('NVIDIA ')}, driver {self.gpu.driver}" if self.gpu else ""
        if self.accelerator == "mps":
            found = "Apple Silicon Mac"
        return f"Detected: {found or 'no NVIDIA GPU'} -> PyTorch {self.label} build"


def _version(text: str) -> tuple[int, ...] | None:
    return tuple(int(part) for part in text.split(".")) if re.fullmatch(r"\d+(\.\d+)*", text) else None


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """The GPUs in the answer to NVIDIA_SMI_QUERY (or NVIDIA_SMI_QUERY_OLD); lines that are not such an answer
    (errors, warnings, garbage) are left out."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) not in (2, 3) or _version(fields[0]) is None or not fields[1]:
            continue
        capability = _version(fields[2]) if len(fields) == 3 else None
        pair = (capability[0], capability[1] if len(capability) > 1 else 0) if capability else None
        gpus.append(Gpu(fields[1], fields[0], pair))
    return gpus


def _is_blackwell(gpu: Gpu) -> bool:
    if gpu.compute_capability is not None:
        return gpu.compute_capability >= BLACKWELL
    return re.search(r"RTX (PRO )?50\d\d|Blackwell|\bB[12]\d\d\b", gpu.name) is not None


def _cuda_build(gpus: list[Gpu], windows: bool) -> TorchBuild:
    gpu = max(gpus, key=lambda g: (g.compute_capability or (0, 0), _is_blackwell(g)))  # CUDA's device 0
    others = f" (and {len(gpus) - 1} more GPU{'s' if len(gpus) > 2 else ''})" if len(gpus) > 1 else ""
    driver = _version(gpu.driver) or (0,)
    old_gpu = gpu.compute_capability is not None and gpu.compute_capability < OLD_GPU_BELOW
    builds = CUDA_BUILDS
    if old_gpu:
        builds = builds[[b[0] for b in builds].index(NEWEST_FOR_OLD_GPUS) :]
    fits = [build for build in builds if driver >= (build[3] if windows else build[2])]
    newest, oldest = CUDA_BUILDS[0], CUDA_BUILDS[-1]

    def cpu_instead(why: str) -> TorchBuild:
        advice = "installing the CPU build; update the driver and press Repair Backend"
        return TorchBuild("cpu", "cpu", "CPU", f"{why}: {advice}", gpu)

    def needs(build: tuple[Any, ...]) -> str:
        return ".".join(map(str, build[3] if windows else build[2]))

    if _is_blackwell(gpu) and (not fits or fits[0] is not newest):
        return cpu_instead(
            f"the {gpu.name} needs PyTorch's CUDA {newest[1]} build, which needs NVIDIA driver {needs(newest)} or "
            f"newer (this one is {gpu.driver})"
        )
    if not fits:
        return cpu_instead(
            f"NVIDIA driver {gpu.driver} of the {gpu.name} is older than any PyTorch CUDA build supports "
            f"(CUDA {oldest[1]} needs {needs(oldest)})"
        )
    variant, cuda, _, _ = fits[0]
    why = f"driver {gpu.driver} runs CUDA {cuda}"
    if old_gpu:
        why += f"; PyTorch's newer CUDA builds lack kernels for this GPU (compute capability {gpu.compute_capability})"
    return TorchBuild("cuda", variant, f"CUDA {cuda}", f"{gpu.name}{others}: {why}", gpu)


def choose_build(system: str, machine: str, nvidia_smi: str | None) -> TorchBuild:
    """The PyTorch build for a machine: `system` is sys.platform ("linux", "win32", "darwin"), `machine` is
    platform.machine() ("x86_64", "AMD64", "arm64", "aarch64"), `nvidia_smi` what NVIDIA_SMI_QUERY printed, or None
    when nvidia-smi is missing, failed or timed out."""
    if system == "darwin":
        if machine.lower() in ("arm64", "aarch64"):
            return TorchBuild("mps", "pypi", "Apple Metal (MPS)", "Apple Silicon: PyTorch's Mac build runs on Metal")
        return TorchBuild(
            "cpu",
            "cpu",
            "CPU",
            "an Intel Mac (or Blender running under Rosetta): PyTorch 2.4 and newer publish no wheels for it; "
            "use the Apple Silicon build of Blender on an Apple Silicon Mac, or a Linux or Windows machine",
            supported=False,
        )
    if nvidia_smi is None:
        return TorchBuild("cpu", "cpu", "CPU", "no NVIDIA GPU found (nvidia-smi is missing or failed)")
    gpus = parse_nvidia_smi(nvidia_smi)
    if not gpus:
        said = " ".join(nvidia_smi.split())[:80] or "nothing"
        return TorchBuild("cpu", "cpu", "CPU", f"nvidia-smi's answer could not be read ({said}): no NVIDIA GPU used")
    return _cuda_build(gpus, windows=system == "win32")


def run_nvidia_smi(executable: str = "nvidia-smi", timeout: float = 5.0) -> str | None:
    """What `nvidia-smi` answers to NVIDIA_SMI_QUERY (NVIDIA_SMI_QUERY_OLD on drivers that lack compute_cap);
    None when it is missing, fails or takes longer than `timeout` seconds: no usable NVIDIA GPU."""
    for query in (NVIDIA_SMI_QUERY, NVIDIA_SMI_QUERY_OLD):
        try:
            done = subprocess.run(
                [executable, *query],
                capture_output=True,
                text=True,
                timeout=timeout,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console window flashing on Windows
            )
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        if done.returncode == 0:
            return done.stdout
    return None


def detect(executable: str = "nvidia-smi", timeout: float = 5.0) -> TorchBuild:
    """The build for the machine this runs on."""
    smi = None if sys.platform == "darwin" else run_nvidia_smi(executable, timeout)
    return choose_build(sys.platform, platform.machine(), smi)


_detected: list[TorchBuild] = []
_detecting = threading.Lock()


def cached_detection() -> TorchBuild | None:
    """This machine's build, detected once in a thread (drawing the preferences must not wait on nvidia-smi);
    None until that is done."""
    if not _detected and _detecting.acquire(blocking=False):
        threading.Thread(target=lambda: _detected.append(detect()), daemon=True).start()
    return _detected[0] if _detected else None
