"""gtr_backend.devices: device names, out-of-memory errors and the CPU's labels, once for every caller."""

import pytest
import torch

from gtr_backend import devices
from gtr_backend.errors import GTRError


def test_resolve_device_names_what_to_use_instead():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(GTRError, match="unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps"):
        devices.resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(GTRError, match="CUDA was requested.*use --device cpu"):
            devices.resolve_device("cuda")


def test_out_of_memory_knows_cuda_and_mps_errors():
    assert devices.out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert devices.out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not devices.out_of_memory(RuntimeError("shape mismatch"))


def test_cpu_labels_and_peak_memory():
    assert devices.device_label("cpu").endswith(f"CPU, {torch.get_num_threads()} threads")
    devices.reset_peak_memory("cpu")  # nothing to reset on the CPU
    devices.synchronize("cpu")
    assert devices.peak_memory_mb("cpu") > 10  # this process's resident set: torch alone is larger
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert devices.display_name() == "CPU"
