"""Device handling, once: which device a name means, whether an error is a device out of memory, giving
cached memory back, waiting for queued kernels, peak memory, and a device's name for people.

- `resolve_device(name)`: "auto", "cpu", "cuda", "cuda:N" or "mps" (`contract.DEVICES`) -> torch.device, or a
  `GTRError` saying what to use instead.
- `out_of_memory(error)`: whether an exception is a device running out of memory.
- `release_device_memory(device)` / `release_all()`: the memory PyTorch caches for freed tensors, given back (one
  device / every device this process may have used); loaded models stay.
- `synchronize(device)`: wait for the device's queued kernels (a no-op on the CPU), before reading a clock.
- `reset_peak_memory(device)`, `peak_memory_mb(device)`: CUDA's peak allocation since the reset; on the CPU,
  this process's peak resident set.
- `device_label(device)`: the GPU's name, or the CPU's architecture and threads; `display_name()`: what the
  handshake shows (the GPU's name, "Apple GPU (MPS)" or "CPU").
"""

from __future__ import annotations

import gc
import platform
import resource

import torch

from .errors import GTRError


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" -> CUDA when PyTorch sees an NVIDIA GPU, else Apple's MPS (Metal) when it sees that, else the CPU;
    "cpu", "cuda", "cuda:N" or "mps" as asked. Anything else, or a device this machine lacks, is a GTRError that
    says what to use instead. (On MPS the PyTorch rasterizer and marching cubes run: the CUDA ones need CUDA.)"""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise GTRError(f"unknown device {str(device)!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise GTRError(f"device {str(device)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "mps":
        if not torch.backends.mps.is_available():
            why = "is not built with it" if not torch.backends.mps.is_built() else "sees no Apple GPU (macOS 12.3+)"
            raise GTRError(
                f"Apple's MPS (Metal) was requested, but this PyTorch ({torch.__version__}) {why}; use --device cpu"
            )
        if resolved.index not in (None, 0):
            raise GTRError(f"there is no {resolved}: a Mac has one GPU; use mps")
        return resolved
    if resolved.type == "cuda" and not torch.cuda.is_available():
        build = (
            "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}, but no GPU is visible"
        )
        raise GTRError(f"CUDA was requested, but this PyTorch ({torch.__version__}) is built {build}; use --device cpu")
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise GTRError(f"there is no {resolved}: this machine has {torch.cuda.device_count()} GPU(s); use cuda:0")
    return resolved


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is a device running out of memory (CUDA's own error type, or MPS's RuntimeError)."""
    kind = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(error, kind | torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def release_device_memory(device: torch.device) -> None:
    """Give the memory PyTorch caches for freed tensors back to the device (the loaded model stays)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def release_all() -> None:
    """`release_device_memory` on every device this process may have used (after a job)."""
    release_device_memory(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if torch.backends.mps.is_available():
        release_device_memory(torch.device("mps"))


def synchronize(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device | str) -> float:
    """CUDA: peak allocated by torch since the last reset; CPU: this process's peak resident set."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_label(device: torch.device | str) -> str:
    """The GPU's name, or the CPU's architecture and the threads torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def display_name() -> str:
    """The device "auto" picks, for people: the GPU's name, "Apple GPU (MPS)" or "CPU"."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return "Apple GPU (MPS)" if torch.backends.mps.is_available() else "CPU"
