"""Weights on disk: the project's safetensors + JSON format, and the released GTR checkpoint.

- Project format: ``NAME.safetensors`` (tensors under this package's own parameter names) beside
  ``NAME.json`` ({"format": "gtr-weights/1", "config": GTRConfig fields, ...}). Read without any pickle.
- Released GTR checkpoint ``ckpt.pth``: a torch pickle holding {"pipeline": {"generator": state dict,
  "field": state dict}, "scalers": ...}; read with ``torch.load(weights_only=True)`` only, mapped to this
  package's names by `RENAMES`, and converted once to the project format by `convert_released_checkpoint`.

Every load checks the whole file (keys, shapes, finite values) before a single parameter is set, so a bad
file raises `WeightsError` and leaves nothing half-loaded.
"""

from __future__ import annotations

import json
import pickle
import re
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from .devices import synchronize
from .errors import ConfigError, WeightsError
from .files import atomic_write, check_output, input_problem
from .model import GTR, GTRConfig, preset

WEIGHTS_FORMAT = "gtr-weights/1"
BUNDLED_WEIGHTS = Path(__file__).parent / "assets" / "gtr-small-starter.safetensors"
RELEASED_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")

# This package's parameter names <-> the released checkpoint's flattened names; {i} is a block index.
RENAMES: tuple[tuple[str, str], ...] = (
    ("encoder.proj.", "pipeline.generator.conv_proj."),
    ("encoder.norm.", "pipeline.generator.norm1."),
    ("transformer.plane_tokens", "pipeline.generator.planes"),
    ("transformer.norm_out.", "pipeline.generator.norm2."),
    ("transformer.blocks.{i}.norm_attn.", "pipeline.generator.attn_layers.{i}.norm1."),
    ("transformer.blocks.{i}.norm_ff.", "pipeline.generator.attn_layers.{i}.norm2."),
    ("transformer.blocks.{i}.attn.q.", "pipeline.generator.attn_layers.{i}.self_attn.to_q."),
    ("transformer.blocks.{i}.attn.k.", "pipeline.generator.attn_layers.{i}.self_attn.to_k."),
    ("transformer.blocks.{i}.attn.v.", "pipeline.generator.attn_layers.{i}.self_attn.to_v."),
    ("transformer.blocks.{i}.attn.out.", "pipeline.generator.attn_layers.{i}.self_attn.to_out.0."),
    ("transformer.blocks.{i}.ff.proj.", "pipeline.generator.attn_layers.{i}.ff.net.0.proj."),
    ("transformer.blocks.{i}.ff.out.", "pipeline.generator.attn_layers.{i}.ff.net.2."),
    ("upsampler.proj.", "pipeline.generator.out.proj."),
    ("field.density_mlp.", "pipeline.field.decoder.field.mlp_sigma."),
    ("field.color_mlp.", "pipeline.field.decoder.field.mlp_color."),
)


def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix).replace(r"\{i\}", r"(?P<i>\d+)"))


def _rename(name: str, to_released: bool) -> str | None:
    for ours, released in RENAMES:
        source, target = (ours, released) if to_released else (released, ours)
        match = _prefix_pattern(source).match(name)
        if match:
            head = target.replace("{i}", match.group("i")) if "{i}" in target else target
            return head + name[match.end() :]
    return None


def to_released_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """This package's state dict -> the released checkpoint's flattened names (``pipeline.generator.*``, ...)."""
    out = {}
    for name, tensor in state.items():
        released = _rename(name, to_released=True)
        if released is None:
            raise WeightsError(
                f"parameter {name!r} has no counterpart in the released GTR layout (only the "
                "PixelShuffle upsampler with separate density and colour MLPs was released)"
            )
        out[released] = tensor
    return out


def from_released_names(state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """The released checkpoint's flattened names -> this package's names."""
    out, unknown = {}, []
    for name, tensor in state.items():
        ours = _rename(name, to_released=False)
        if ours is None:
            unknown.append(name)
        else:
            out[ours] = tensor
    if unknown:
        raise WeightsError(
            f"{source}: not a GTR checkpoint of the released architecture; unexpected tensors {_few(unknown)}"
        )
    return out


def _few(names: list[str], count: int = 5) -> str:
    shown = ", ".join(sorted(names)[:count])
    return shown + (f" and {len(names) - count} more" if len(names) > count else "")


def check_state(model: GTR, state: Mapping[str, Tensor], source: str) -> None:
    """Raise `WeightsError` unless `state` has exactly the model's names and shapes, all values finite."""
    check_layout(model, state, source)
    check_finite(state, source)


def check_layout(model: GTR, state: Mapping[str, Tensor], source: str) -> None:
    """Raise `WeightsError` unless `state` has exactly the model's names and shapes, in floating point."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = [n for n in expected if n not in state]
    unexpected = [n for n in state if n not in expected]
    hint = (
        f"; it was made for another architecture than {model.config.name!r} "
        "(check the preset or the config JSON beside the weights)"
    )
    if missing:
        raise WeightsError(f"{source}: missing tensors {_few(missing)}{hint}")
    if unexpected:
        raise WeightsError(f"{source}: unexpected tensors {_few(unexpected)}{hint}")
    wrong = [
        f"{n} is {tuple(state[n].shape)}, expected {shape}"
        for n, shape in expected.items()
        if tuple(state[n].shape) != shape
    ]
    if wrong:
        raise WeightsError(f"{source}: wrong tensor shapes: {'; '.join(wrong[:3])}{hint}")
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise WeightsError(f"{source}: tensor {name} has dtype {tensor.dtype}, expected floating point")


def check_finite(state: Mapping[str, Tensor], source: str) -> None:
    """Raise `WeightsError` if a tensor holds NaN or Inf: each tensor's smallest and largest value (NaN spreads
    to both) without a copy of it, all tensors at once (one synchronisation on a GPU)."""
    tensors = {n: t.reshape(-1) for n, t in state.items() if t.numel()}
    if not tensors:
        return
    extremes = torch.stack([torch.stack(torch.aminmax(t)).float() for t in tensors.values()])
    finite = torch.isfinite(extremes).all(dim=1).tolist()
    bad = [name for name, ok in zip(tensors, finite, strict=True) if not ok]
    if bad:
        raise WeightsError(f"{source}: tensor {bad[0]} contains NaN or Inf; the file is damaged")


@contextmanager
def _step(timings: dict[str, float] | None, name: str, device: torch.device | str = "cpu") -> Iterator[None]:
    """Adds the seconds the block took to `timings[name]` (device work finished), when `timings` is given."""
    if timings is None:
        yield
        return
    start = time.perf_counter()
    yield
    synchronize(device)
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def model_from_state(
    config: GTRConfig,
    state: Mapping[str, Tensor],
    source: str,
    device: torch.device | str = "cpu",
    timings: dict[str, float] | None = None,
) -> GTR:
    """A new model holding `state` (checked first: nothing is set from a bad file); the model is float32, in
    eval mode, on `device`. `timings`, when given, receives the seconds of each step: "construct" (the model's
    structure, without memory), "check" (names, shapes, types), "to device" (the tensors as float32 on
    `device`) and "check values" (all finite, checked there)."""
    with _step(timings, "construct"), torch.device("meta"):
        model = GTR(config)
    with _step(timings, "check"):
        check_layout(model, state, source)
    with _step(timings, "to device", device):
        moved = {n: t.to(device=device, dtype=torch.float32) for n, t in state.items()}
    with _step(timings, "check values", device):
        check_finite(moved, source)
    model.load_state_dict(moved, strict=True, assign=True)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# Project format.


def config_path_for(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_weights(
    model: GTR, path: Path | str, dtype: torch.dtype = torch.float32, info: Mapping[str, Any] | None = None
) -> Path:
    """Write ``path`` (.safetensors) and its config JSON beside it; returns the JSON's path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: the project's weights files end in .safetensors")
    state = {n: t.detach().to("cpu", dtype).contiguous() for n, t in model.state_dict().items()}
    atomic_write(path, lambda temporary: save_file(state, str(temporary), metadata={"format": WEIGHTS_FORMAT}))
    meta = {
        "format": WEIGHTS_FORMAT,
        "config": model.config.to_dict(),
        "dtype": str(dtype).removeprefix("torch."),
        "parameters": model.num_parameters(),
        **(info or {}),
    }
    json_path = config_path_for(path)
    atomic_write(json_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return json_path


def read_weights_config(path: Path) -> tuple[GTRConfig, dict[str, Any]]:
    """The config JSON beside a .safetensors file -> (GTRConfig, the whole JSON object)."""
    json_path = config_path_for(path)
    if not json_path.is_file():
        raise WeightsError(
            f"{path}: its configuration file {json_path.name} is missing; keep the .json that was "
            "written with the weights beside them"
        )
    try:
        meta = json.loads(json_path.read_text())
        if meta.get("format") != WEIGHTS_FORMAT:
            raise WeightsError(f"{json_path}: format is {meta.get('format')!r}, expected {WEIGHTS_FORMAT!r}")
        return GTRConfig.from_dict(meta["config"]), meta
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise WeightsError(f"{json_path}: not a valid weights configuration ({error!r})") from None
    except ConfigError as error:
        raise WeightsError(f"{json_path}: {error}") from None


def load_project_weights(
    path: Path | str, device: torch.device | str = "cpu", timings: dict[str, float] | None = None
) -> GTR:
    """A project weights file (.safetensors + .json) -> model in eval mode on `device`; `timings` as for
    `model_from_state`, plus "read" (the JSON and the tensors from disk)."""
    path = Path(path)
    problem = input_problem(path, "weights file")
    if problem:
        raise WeightsError(problem)
    with _step(timings, "read"):
        config, _ = read_weights_config(path)
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(
                f"{path}: cannot read this safetensors file, it is corrupt or truncated ({error})"
            ) from None
    return model_from_state(config, state, str(path), device, timings)


# ---------------------------------------------------------------------------------------------------------------
# Released checkpoint.


def read_released_checkpoint(path: Path | str) -> dict[str, Tensor]:
    """``ckpt.pth`` -> flattened released names (``pipeline.generator.planes``, ...) -> tensors, on the CPU."""
    path = Path(path)
    problem = input_problem(path, "checkpoint file")
    if problem:
        raise WeightsError(problem)
    try:
        # Only tensors and plain containers are unpickled (weights_only); mmap needs the zip format.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # PyTorch's refusal: the file names code to run
            raise WeightsError(
                f"{path}: refused: this checkpoint holds Python objects besides tensors, which could run code "
                "when opened, so it is not loaded; use the released GTR ckpt.pth or a project .safetensors file "
                "from a source you trust"
            ) from None
        raise WeightsError(f"{path}: cannot read this checkpoint: it is not a torch checkpoint") from None
    except Exception as error:
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise WeightsError(
            f"{path}: cannot read this checkpoint: it is corrupt, truncated or not a torch checkpoint ({reason})"
        ) from None
    pipeline = checkpoint.get("pipeline") if isinstance(checkpoint, dict) else None
    if not isinstance(pipeline, dict) or not all(isinstance(pipeline.get(k), dict) for k in ("generator", "field")):
        raise WeightsError(
            f"{path}: not a released GTR checkpoint: expected a dict with "
            "'pipeline': {'generator': ..., 'field': ...}"
        )
    flat = {}
    for group in ("generator", "field"):
        for name, tensor in pipeline[group].items():
            if not isinstance(tensor, Tensor):
                raise WeightsError(f"{path}: pipeline.{group}.{name} is not a tensor")
            flat[f"pipeline.{group}.{name}"] = tensor
    return flat


def load_released_checkpoint(
    path: Path | str,
    config: GTRConfig | None = None,
    device: torch.device | str = "cpu",
    timings: dict[str, float] | None = None,
) -> GTR:
    """The released ``ckpt.pth`` -> model of `config` (default: the ``gtr-paper`` preset), strictly checked;
    `timings` as for `load_project_weights`."""
    config = config or preset("gtr-paper")
    with _step(timings, "read"):
        state = from_released_names(read_released_checkpoint(path), str(path))
    return model_from_state(config, state, str(path), device, timings)


def convert_released_checkpoint(
    source: Path | str, target: Path | str, config: GTRConfig | None = None, dtype: torch.dtype = torch.float32
) -> Path:
    """Convert ``ckpt.pth`` once to ``target`` (.safetensors + .json); returns the JSON's path. Where the
    output goes is checked before the checkpoint is read."""
    check_output(target, (".safetensors",), "weights")
    model = load_released_checkpoint(source, config)
    return save_weights(
        model, target, dtype, info={"source": Path(source).name, "licence": "GTR release: non-commercial use only"}
    )


def load_model(
    path: Path | str,
    device: torch.device | str = "cpu",
    config: GTRConfig | None = None,
    timings: dict[str, float] | None = None,
) -> GTR:
    """Any supported weights file -> model: project .safetensors, or a released checkpoint (.pth, ...);
    `timings`, when given, receives the seconds of each step (`load_project_weights`)."""
    path = Path(path)
    if path.suffix in RELEASED_SUFFIXES:
        return load_released_checkpoint(path, config, device, timings)
    if path.suffix == ".safetensors":
        return load_project_weights(path, device, timings)
    raise WeightsError(
        f"{path}: unknown weights file type; expected .safetensors (with its .json) or a "
        f"released GTR checkpoint ({', '.join(RELEASED_SUFFIXES)})"
    )


def find_default_weights() -> Path | None:
    """The weights bundled with the package, if this copy has them."""
    return BUNDLED_WEIGHTS if BUNDLED_WEIGHTS.is_file() else None


def describe_weights(path: Path) -> str:
    """One line about a weights file: its preset and the note recorded with it (how it was trained)."""
    if path.suffix == ".safetensors" and config_path_for(path).is_file():
        config, meta = read_weights_config(path)
        note = meta.get("note", "")
        return f"{path.name} ({config.name}{'; ' + note if note else ''})"
    return f"{path.name} (released GTR checkpoint, non-commercial licence)"
