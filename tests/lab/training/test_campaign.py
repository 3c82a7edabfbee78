"""The training campaign on the CPU with the tiny preset: chunks that resume from the carried folder, stage 1
then stage 2, validation in every chunk, the weights with their config JSON and a log at the end, and a chunk
that fails leaves the campaign as it was."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from gtr_backend.cli import main
from gtr_backend.weights import load_project_weights
from gtr_lab.training import campaign as campaign_module
from gtr_lab.training.campaign import Campaign, CampaignPlan, run_chunk

TINY = [
    "preset=gtr-tiny",
    "objects=64",
    "pool_objects=8",
    "sampling.size=64",
    "sampling.supervision_views=2",
    "stage1.batch=2",
    "stage1.patch=0",
    "stage1.rays=128",
    "stage1.samples=16",
    "stage1.log_every=1",
    "stage2.batch=1",
    "stage2.grid=24",
    "stage2.samples=8",
    "stage2.opacity_rays=64",
    "stage2.log_every=1",
    "stage1.warmup=4",
    "stage2.warmup=1",
    "rewarm=2",
]
CPU = torch.device("cpu")


def records(folder, kind):
    lines = (folder / "log.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["kind"] == kind]


def test_a_campaign_runs_in_chunks_that_resume_from_the_carried_folder(tmp_path):
    first = tmp_path / "here"
    Campaign.create(first, CampaignPlan().changed([*TINY, "stage1_steps=600", "stage2_steps=2"]))
    # A chunk with (almost) no time trains for its minimum, 3 seconds: part of stage 1.
    campaign = run_chunk(first, CPU, minutes=0.0)
    done_first = campaign.steps["1"]
    assert campaign.stage == 1 and 0 < done_first < 600
    assert not (first / "weights.safetensors").exists()
    assert [r["chunk"] for r in records(first, "validation")] == [1]
    # The folder is copied (a GPU job's files come back into another checkout), and the next chunk goes on.
    carried = tmp_path / "there"
    shutil.copytree(first, carried)
    campaign = run_chunk(carried, CPU, minutes=10.0)
    assert campaign.done and campaign.steps == {"1": 600, "2": 2}
    validations = records(carried, "validation")
    assert [(r["chunk"], r["stage"]) for r in validations] == [(1, 1), (2, 1), (2, 2)]
    # Chunk 2 started from chunk 1's model (float32 shards): the same held-out score before as after chunk 1.
    assert validations[1]["validation_psnr_before"] == pytest.approx(validations[0]["validation_psnr"], abs=1e-3)
    assert validations[1]["lr"] < validations[0]["lr"]  # the cosine over the stage's budget goes on
    assert sorted(p.name for p in carried.glob("state-*")) == campaign.shards  # chunk 1's shards are gone
    assert all(name.startswith("state-c002-") for name in campaign.shards)
    trained = [r for r in records(carried, "train") if r["stage"] == 1]
    assert [r["stage_step"] for r in trained] == list(range(1, 601))  # the stage's count goes on across chunks
    assert trained[done_first]["step"] == 1 and trained[done_first]["chunk"] == 2
    weights = load_project_weights(carried / "weights.safetensors")
    assert weights.config.name == "gtr-tiny"
    info = json.loads((carried / "weights.json").read_text())
    assert info["dtype"] == "bfloat16" and "stage 1: 600 steps" in info["note"] and len(info["campaign"]) == 3
    # A finished campaign does nothing more.
    assert run_chunk(carried, CPU, minutes=10.0).chunks == campaign.chunks


def test_status_tidies_a_folder_the_device_files_were_copied_into(tmp_path, capsys):
    """After a GPU job, the returned files are copied beside the old ones: --status deletes the shards of earlier
    chunks (so the folder stays small enough to travel) and writes the shipped weights when the campaign is done
    (the call brings back only the shards)."""
    folder = tmp_path / "c"
    plan = CampaignPlan().changed([*TINY, "stage1_steps=2", "stage2_minutes=0", "pool_objects=0"])  # streamed
    Campaign.create(folder, plan)
    campaign = run_chunk(folder, CPU, minutes=5.0)
    assert campaign.done
    trained = load_project_weights(folder / "weights.safetensors").state_dict()
    (folder / "weights.safetensors").unlink()
    (folder / "weights.json").unlink()
    stale = folder / "state-c000-0.safetensors"
    shutil.copy(folder / campaign.shards[0], stale)
    assert main(["campaign", str(folder), "--status"]) == 0
    assert not stale.exists() and "deleted state-c000-0" in capsys.readouterr().err
    again = load_project_weights(folder / "weights.safetensors").state_dict()
    assert all(torch.equal(trained[name], again[name]) for name in trained)


def test_a_failing_chunk_leaves_the_campaign_as_it_was(tmp_path, monkeypatch):
    folder = tmp_path / "c"
    Campaign.create(folder, CampaignPlan().changed([*TINY, "stage1_steps=2", "stage2_minutes=0"]))
    before = (folder / "campaign.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: the device fell off the bus")

    monkeypatch.setattr(campaign_module, "train", broken)
    with pytest.raises(RuntimeError):
        run_chunk(folder, CPU, minutes=1.0)
    assert (folder / "campaign.json").read_bytes() == before
    assert not list(folder.glob("state-*"))


def test_the_model_is_kept_in_shards_of_the_plans_size(tmp_path):
    campaign = Campaign.create(tmp_path / "c", CampaignPlan().changed([*TINY, "shard_mib=0.1953125"]))  # 200 KiB
    model = campaign.model(CPU)
    names = campaign.save_model(model, chunk=1)
    campaign.shards = names
    assert len(names) > 2
    sizes = [(tmp_path / "c" / name).stat().st_size for name in names]
    assert max(sizes) <= 200 * 1024 + 16 * 1024  # a shard holds up to shard_mib of tensors, plus its header
    again = campaign.model(CPU)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_the_command_starts_probes_and_explains(tmp_path, capsys):
    folder = tmp_path / "campaign"
    assert main(["campaign", str(folder)]) == 2
    assert "no campaign.json" in capsys.readouterr().err
    assert main(["campaign", str(folder), "--new", "--set", "stage1.bach=4"]) == 2
    err = capsys.readouterr().err
    assert "stage1.bach" in err and "batch" in err and "Traceback" not in err
    assert not folder.exists() or not (folder / "campaign.json").exists()
    probe = ["campaign", str(folder), "--probe", "gtr-tiny", "--probe-minutes", "0.02", "--device", "cpu"]
    assert main([*probe, "--set", *TINY]) == 0
    measured = json.loads((folder / "probe.json").read_text())
    assert measured[0]["preset"] == "gtr-tiny" and measured[0]["objects_per_second"] > 0
    assert measured[0]["steps"] > 0 and measured[0]["shipped_mb"] < 1
    assert Campaign.open(folder).plan.preset == "gtr-tiny"  # the probe started the campaign with the best preset
    assert main(["campaign", str(folder), "--new"]) == 2
    assert "holds a campaign already" in capsys.readouterr().err
    assert main(["campaign", str(tmp_path / "big"), "--new", "--set", "preset=gtr-paper"]) == 2
    assert "more than the campaign's carry_mib (32 MiB)" in capsys.readouterr().err
    assert main(["campaign", str(tmp_path / "steps"), "--new", "--set", "stage1.steps=5"]) == 2
    assert "set stage1_steps" in capsys.readouterr().err
    assert main(["campaign", str(tmp_path / "size"), "--new", "--set", "sampling.size=128"]) == 2
    assert "gtr-small sees 256-pixel views" in capsys.readouterr().err
    # A changed preset brings the size of the views it sees.
    assert main(["campaign", str(tmp_path / "tiny"), "--new", "--set", "preset=gtr-tiny"]) == 0
    assert Campaign.open(tmp_path / "tiny").plan.sampling.size == 64


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("stage1.batch=0", "batch must be a number of at least 1"),
        ("sampling=", "sampling is a group"),
        ("stage1_minutes=nan", "stage1_minutes must be a number"),
        ("min_lr_fraction=5", "0 to 1"),
        ("sampling.input_elevation_deg=5", "two numbers"),
        ("stage1.patch=1000", "larger than the views"),
        ("init=missing.safetensors", "does not exist"),
        ("stage1_steps=0", "stage 2 alone needs stage-1 weights"),
    ],
)
def test_a_bad_plan_is_refused_in_one_line_before_any_work(tmp_path, capsys, setting, words):
    folder = tmp_path / "c"
    assert main(["campaign", str(folder), "--new", "--set", *TINY, setting]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (folder / "campaign.json").exists()


def test_a_damaged_shard_is_named_and_the_campaign_left_as_it_was(tmp_path, capsys):
    folder = tmp_path / "c"
    Campaign.create(folder, CampaignPlan().changed([*TINY, "stage1_steps=1", "stage2_minutes=0"]))
    shard = folder / run_chunk(folder, CPU, minutes=1.0).shards[0]
    before = (folder / "campaign.json").read_bytes()
    shard.write_bytes(shard.read_bytes()[:100])  # a copy cut short on its way back
    for command in (["--status"], ["--minutes", "1", "--device", "cpu"]):
        assert main(["campaign", str(folder), *command]) == 2
        err = capsys.readouterr().err
        assert shard.name in err and "damaged" in err and "Traceback" not in err
    assert (folder / "campaign.json").read_bytes() == before


def test_each_chunk_renders_the_next_slice_of_objects():
    from gtr_lab.training.campaign import training_pool

    plan = CampaignPlan().changed([*TINY, "objects=20", "pool_objects=8"])
    small = dataclasses.replace(plan.sampling, supervision_views=1, size=32)
    first, second, third = (training_pool(plan, small, chunk, CPU, depth=False) for chunk in (1, 2, 3))
    assert len(first) == len(second) == 8
    assert not torch.equal(first.rgba, second.rgba)  # other objects
    again = training_pool(plan, small, 1, CPU, depth=True)
    assert torch.equal(first.rgba, again.rgba)  # the same chunk, the same objects
    assert first.depth is None and again.depth is not None  # depth only when stage 2 is to come
    assert len(third) == 8  # seeds 16..19 then 0..3: the slices wrap around
    assert len(training_pool(plan, small, 1, CPU, depth=False, most=3)) == 3  # the probe's smaller pool
    assert CampaignPlan().changed([*TINY, "stage2_steps=0"]).skips(2)  # 0 steps skips a stage, as 0 minutes
