"""Every reconstruction option has one definition (`contract.RECONSTRUCT_OPTIONS`): the command line (both
`gtr reconstruct` and `gtr eval`), the Python API and the server's request parsing give the same defaults.
(The add-on's preferences are compared in tests/blender, in a real Blender.)"""

from __future__ import annotations

import dataclasses

import pytest

from gtr_backend.cli import build_parser, options_from_arguments
from gtr_backend.contract import RECONSTRUCT_OPTIONS
from gtr_backend.reconstruction import ReconstructOptions
from gtr_backend.server import request_options


def defined() -> dict[str, object]:
    return {name: option.default for name, option in RECONSTRUCT_OPTIONS.items()}


def values(options: ReconstructOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in RECONSTRUCT_OPTIONS}


@pytest.mark.parametrize("command", [["reconstruct", "views", "-o", "out.glb"], ["eval", "assets", "-o", "out"]])
def test_the_command_line_defaults_are_the_definitions(command):
    assert values(options_from_arguments(build_parser().parse_args(command))) == defined()


def test_the_api_and_the_server_defaults_are_the_definitions():
    assert values(ReconstructOptions()) == defined()
    assert values(request_options({})) == defined()
    assert {f.name for f in dataclasses.fields(ReconstructOptions)} >= set(RECONSTRUCT_OPTIONS)


def test_a_changed_definition_reaches_every_interface(monkeypatch):
    """Not a copy anywhere: the command line and the server read the definition when they run."""
    changed = dataclasses.replace(RECONSTRUCT_OPTIONS["target_faces"], default=12345)
    monkeypatch.setitem(RECONSTRUCT_OPTIONS, "target_faces", changed)
    args = build_parser().parse_args(["reconstruct", "views", "-o", "out.glb"])
    assert options_from_arguments(args).target_faces == 12345
    assert request_options({}).target_faces == 12345


@pytest.mark.parametrize("stage", [1, 2])
def test_the_train_command_defaults_are_each_stages_own(stage):
    """`gtr train` keeps no copies of the training options: with no flags, each stage gets its dataclass's
    defaults (stage 2's smaller batch and gentler warm-up included); a flag changes only its own field."""
    from gtr_lab.cli.train import stage_options
    from gtr_lab.training import Stage1Options, Stage2Options

    expected = Stage1Options() if stage == 1 else Stage2Options()
    parse = build_parser().parse_args
    assert stage_options(parse(["train", "-o", "w.safetensors", "--stage", str(stage)])) == expected
    changed = stage_options(parse(["train", "-o", "w.safetensors", "--stage", str(stage), "--warmup", "7"]))
    assert changed == dataclasses.replace(expected, warmup=7)


def test_a_flag_of_the_other_stage_is_refused_by_name(capsys):
    from gtr_backend.cli import main

    assert main(["train", "-o", "w.safetensors", "--stage", "2", "--init", "x.safetensors", "--rays", "64"]) == 2
    err = capsys.readouterr().err
    assert "--rays" in err and "stage 2" in err and "Traceback" not in err


def test_the_train_command_checks_its_output_before_training(tmp_path, capsys):
    from gtr_backend.cli import main

    out = tmp_path / "missing" / "w.safetensors"
    assert main(["train", "-o", str(out), "--preset", "gtr-tiny", "--device", "cpu", "--objects", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
