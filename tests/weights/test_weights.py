import json
import math
from pathlib import Path

import pytest
import torch

from gtr_backend.cli import main
from gtr_backend.errors import WeightsError
from gtr_backend.model import GTR, preset
from gtr_backend.weights import (
    convert_released_checkpoint,
    load_model,
    load_project_weights,
    load_released_checkpoint,
    save_weights,
    to_released_names,
)

TINY = preset("gtr-tiny")


def released_checkpoint(model: GTR) -> dict:
    """The nested layout of the released ckpt.pth, filled with `model`'s tensors."""
    flat = to_released_names(model.state_dict())
    pipeline: dict[str, dict[str, torch.Tensor]] = {"generator": {}, "field": {}}
    for name, tensor in flat.items():
        _, group, rest = name.split(".", 2)
        pipeline[group][rest] = tensor.clone()
    return {"pipeline": pipeline, "scalers": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 17}}


def outputs(model: GTR, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    triplane = model.triplane(inputs, precision="fp32")
    density, rgb = model.field.query(triplane, torch.rand(1, 64, 3, generator=torch.Generator().manual_seed(5)))
    return triplane, density, rgb


@pytest.fixture
def source_model() -> GTR:
    model = GTR(TINY).eval()
    with torch.no_grad():  # make every tensor non-trivial (LayerNorms start at 1 and 0)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture
def released_file(tmp_path: Path, source_model: GTR) -> Path:
    path = tmp_path / "ckpt.pth"
    torch.save(released_checkpoint(source_model), path)
    return path


def test_released_checkpoint_loads_to_identical_outputs(source_model, released_file):
    inputs = torch.rand(1, 4, 10, 64, 64)
    loaded = load_released_checkpoint(released_file, TINY)
    for a, b in zip(outputs(source_model, inputs), outputs(loaded, inputs), strict=True):
        assert torch.equal(a, b)


def test_conversion_to_safetensors_round_trips(tmp_path, source_model, released_file):
    target = tmp_path / "converted.safetensors"
    json_path = convert_released_checkpoint(released_file, target, TINY)
    meta = json.loads(json_path.read_text())
    assert meta["config"]["name"] == "gtr-tiny" and meta["format"] == "gtr-weights/1"
    assert meta["parameters"] == source_model.num_parameters()
    inputs = torch.rand(1, 4, 10, 64, 64)
    for a, b in zip(outputs(source_model, inputs), outputs(load_model(target), inputs), strict=True):
        assert torch.equal(a, b)
    # bfloat16 storage halves the file and stays close.
    half = tmp_path / "half.safetensors"
    convert_released_checkpoint(released_file, half, TINY, dtype=torch.bfloat16)
    assert half.stat().st_size < 0.6 * target.stat().st_size
    t_full, t_half = outputs(source_model, inputs)[0], outputs(load_project_weights(half), inputs)[0]
    assert (t_full - t_half).norm() / t_full.norm() < 2e-2


def test_convert_weights_command(tmp_path, released_file, capsys):
    target = tmp_path / "out.safetensors"
    assert main(["convert-weights", str(released_file), str(target), "--preset", "gtr-tiny"]) == 0
    assert target.is_file() and target.with_suffix(".json").is_file()
    assert main(["convert-weights", str(tmp_path / "nope.pth"), str(target)]) == 2
    err = capsys.readouterr().err
    assert "nope.pth: checkpoint file not found" in err and "Traceback" not in err


def test_corrupt_and_truncated_checkpoints(tmp_path, released_file):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(WeightsError, match="garbage.pth: cannot read this checkpoint"):
        load_released_checkpoint(garbage, TINY)
    data = released_file.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated.pth: cannot read this checkpoint"):
        load_released_checkpoint(truncated, TINY)


def test_wrong_shapes_names_and_architecture(tmp_path, source_model):
    ckpt = released_checkpoint(source_model)
    ckpt["pipeline"]["generator"]["planes"] = torch.zeros(1, 3, 64, 4, 4)
    torch.save(ckpt, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"wrong tensor shapes: transformer.plane_tokens is \(1, 3, 64, 4, 4\)"):
        load_released_checkpoint(tmp_path / "shape.pth", TINY)

    ckpt = released_checkpoint(source_model)
    del ckpt["pipeline"]["field"]["decoder.field.mlp_color.layers.3.bias"]
    torch.save(ckpt, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="missing tensors field.color_mlp.layers.3.bias"):
        load_released_checkpoint(tmp_path / "missing.pth", TINY)

    ckpt = released_checkpoint(source_model)
    ckpt["pipeline"]["generator"]["pos_embed"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match="not a GTR checkpoint of the released architecture.*pos_embed"):
        load_released_checkpoint(tmp_path / "extra.pth", TINY)

    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not a released GTR checkpoint"):
        load_released_checkpoint(tmp_path / "other.pth", TINY)

    # A checkpoint of the tiny architecture loaded as gtr-small: another architecture.
    torch.save(released_checkpoint(source_model), tmp_path / "tiny.pth")
    with pytest.raises(WeightsError, match="made for another architecture than 'gtr-small'"):
        load_released_checkpoint(tmp_path / "tiny.pth", preset("gtr-small"))

    ckpt = released_checkpoint(source_model)
    ckpt["pipeline"]["generator"]["norm2.weight"][3] = math.nan
    torch.save(ckpt, tmp_path / "nan.pth")
    with pytest.raises(WeightsError, match="transformer.norm_out.weight contains NaN or Inf"):
        load_released_checkpoint(tmp_path / "nan.pth", TINY)


class Payload:
    """An object whose unpickling would run code (it would create a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoints_are_never_unpickled_unrestricted(tmp_path, source_model):
    marker = tmp_path / "pwned"
    ckpt = released_checkpoint(source_model)
    ckpt["scalers"] = Payload(marker)
    torch.save(ckpt, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="evil.pth: refused: this checkpoint holds Python objects") as refused:
        load_released_checkpoint(tmp_path / "evil.pth", TINY)
    assert "weights_only" not in str(refused.value)  # never a nudge towards the unsafe path
    assert not marker.exists()
    (tmp_path / "noise.pth").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(WeightsError, match="noise.pth: cannot read this checkpoint: it is not a torch") as noise:
        load_released_checkpoint(tmp_path / "noise.pth", TINY)
    assert "mmap" not in str(noise.value)


def test_project_weights_errors(tmp_path, source_model):
    path = tmp_path / "model.safetensors"
    save_weights(source_model, path)
    assert torch.equal(
        load_project_weights(path).field.color_mlp.layers[0].weight, source_model.field.color_mlp.layers[0].weight
    )

    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 100])
    (tmp_path / "cut.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(WeightsError, match="cut.safetensors: cannot read this safetensors file"):
        load_project_weights(tmp_path / "cut.safetensors")

    (tmp_path / "alone.safetensors").write_bytes(data)
    with pytest.raises(WeightsError, match="alone.json is missing"):
        load_project_weights(tmp_path / "alone.safetensors")

    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config"]["depth"] = 3
    (tmp_path / "deeper.safetensors").write_bytes(data)
    (tmp_path / "deeper.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="missing tensors transformer.blocks.2"):
        load_project_weights(tmp_path / "deeper.safetensors")

    meta["config"]["colour"] = 1
    (tmp_path / "deeper.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="unknown GTR configuration fields: colour"):
        load_project_weights(tmp_path / "deeper.safetensors")

    del meta["config"]["colour"]
    for value in (0, -16, "16", None):
        meta["config"]["patch_size"] = value
        (tmp_path / "deeper.json").write_text(json.dumps(meta))
        with pytest.raises(WeightsError, match="deeper.json: .*patch_size"):
            load_project_weights(tmp_path / "deeper.safetensors")

    with pytest.raises(WeightsError, match="unknown weights file type"):
        load_model(tmp_path / "model.onnx")


def test_loading_times_each_step_and_refuses_inf_in_bfloat16(source_model, tmp_path):
    """Where "load weights" goes (the backend's warm-up and `gtr bench` report it); the values are checked on the
    device the model goes to, in one pass, also for bfloat16 files."""
    path = tmp_path / "half.safetensors"
    save_weights(source_model, path, dtype=torch.bfloat16)
    timings: dict[str, float] = {}
    model = load_model(path, "cpu", timings=timings)
    assert set(timings) == {"read", "construct", "check", "to device", "check values"}
    assert all(seconds >= 0 for seconds in timings.values())
    assert next(model.parameters()).dtype == torch.float32
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["field.color_mlp.layers.0.weight"][1, 2] = -math.inf
    save_file(state, str(path), metadata={"format": "gtr-weights/1"})
    with pytest.raises(WeightsError, match=r"field\.color_mlp\.layers\.0\.weight contains NaN or Inf"):
        load_project_weights(path)
