"""A training campaign: stage 1 (NeRF), then stage 2 (meshes), in chunks that each fit one GPU job with a
wall-time limit (a cluster queue's job, a cloud machine rented by the hour, a preemptible instance that may be
stopped): each chunk's length is the job's to choose (`run_chunk`'s `minutes`, `gtr campaign --minutes`).

A campaign lives in one folder that the jobs share (a shared file system) or that is copied to each job and back:
- `campaign.json`: the plan (`CampaignPlan`: preset, budget per stage in minutes or steps, the data, each
  stage's options) and the progress (the stage, its steps and minutes so far, the model's configuration, one
  record per chunk and stage). It is written last, so a chunk killed midway leaves the campaign as it was;
- the model so far: `state-cNNN-K.safetensors` shards of at most the plan's `shard_mib` (for jobs whose
  files are copied back under a size limit), float32 when the whole model fits in `float32_mib`, else bfloat16
  (then every chunk rounds the weights to bfloat16, small next to a chunk's updates);
- `log.jsonl`: the logged training steps (`stage_step` counts over the whole stage) and every chunk's
  validation;
- when the last stage ends: `weights.safetensors` + `weights.json`, in bfloat16 as the add-on ships them
  (`Campaign.export`, also from the shards alone: the job need not bring these back).

`run_chunk(folder, device, minutes)` goes on from where the last chunk stopped and trains the current stage,
then the next, until the budget or the chunk's minutes run out. It validates each stage's part before and after
training (NeRF renders of held-out procedural objects, `training.run.VALIDATION_SEEDS`, never trained on).
AdamW's moments are not kept (they would triple what the folder holds): each chunk starts the optimizer afresh,
with the stage's full warm-up when the stage starts and `rewarm` steps after that, then holds the learning rate
that a cosine over the stage's budget (from the peak to `min_lr_fraction` of it) gives at the chunk's middle.

`probe(...)` measures, for several presets, objects per second and validation PSNR after a few minutes of stage
1 on the plan's data, so the campaign can train the preset that learns most in the time it has.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from gtr_backend.devices import device_label
from gtr_backend.errors import GTRError
from gtr_backend.files import atomic_write
from gtr_backend.model import GTR, PRESETS, GTRConfig, preset
from gtr_backend.weights import load_project_weights, save_weights

from .dataset import RenderedPool, StreamingPool, ViewSampling, at_least, from_json_fields
from .run import VALIDATION_SEEDS, Pool, TrainingRun, validate, validation_views
from .stage1 import Stage1Options
from .stage2 import Stage2Options
from .train import train

CAMPAIGN_JSON = "campaign.json"
LOG = "log.jsonl"
WEIGHTS = "weights.safetensors"
MIB = 2**20
SHIPPED_MB = 60.0  # the bundled weights file stays under this many MB
VALIDATION_SAMPLES = 48
# Loop options the campaign sets itself for every chunk; the plan sets budgets and warm-ups instead.
MANAGED = {
    "steps": "stage1_steps / stage2_steps",
    "max_minutes": "stage1_minutes / stage2_minutes",
    "checkpoint_every": "nothing (a chunk saves at its end)",
    "validate_every": "nothing (a chunk validates before and after)",
    "decay": "min_lr_fraction (the cosine over the stage's budget)",
}

# The data users feed: every input rig, half the assets' input views lit (see `training.dataset`).
USER_LIKE = ViewSampling(input_rigs=("orbit", "lens", "zero123pp"), input_light=0.5)

Log = Callable[[str], None]


def _stage1_defaults() -> Stage1Options:
    return Stage1Options(batch=16, patch=64, rays=16384, log_every=50, checkpoint_every=0, validate_every=0)


def _stage2_defaults() -> Stage2Options:
    return Stage2Options(batch=8, grid=128, log_every=20, checkpoint_every=0, validate_every=0)


@dataclass(frozen=True)
class CampaignPlan:
    """What a campaign trains, on what, for how long. A stage ends when its minutes or its steps (if given)
    run out; a stage with 0 minutes is skipped."""

    preset: str = "gtr-small"
    init: str | None = None  # stage 1 continues from these weights (.safetensors) instead of a new model
    stage1_minutes: float = 12.0
    stage2_minutes: float = 8.0
    stage1_steps: int | None = None
    stage2_steps: int | None = None
    objects: int = 200_000  # procedural seeds 0 .. objects - 1
    # Each chunk renders this many of them once, on the training device (the next slice of seeds each chunk), and
    # trains on that pool: building an object takes about 50 ms of CPU, too slow to do for every batch on a GPU.
    # 0: render every batch afresh (StreamingPool).
    pool_objects: int = 1024
    rewarm: int = 20  # steps of learning-rate warm-up at the start of each chunk (a fresh optimizer)
    min_lr_fraction: float = 0.1  # the cosine over a stage's budget ends at this share of its peak
    # The model's files in the folder: shards of at most this many MiB (a job whose files are copied back under a
    # size limit: set it below the limit), float32 while the model takes at most `float32_mib`, else bfloat16, and
    # a preset whose model takes more than `carry_mib` in bfloat16 is refused.
    shard_mib: float = 15.0
    float32_mib: float = 30.0
    carry_mib: float = 32.0
    sampling: ViewSampling = USER_LIKE
    stage1: Stage1Options = field(default_factory=_stage1_defaults)
    stage2: Stage2Options = field(default_factory=_stage2_defaults)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise GTRError(f"unknown preset {self.preset!r}; known: {', '.join(sorted(PRESETS))}")
        if not 1 <= self.objects <= min(VALIDATION_SEEDS):
            raise GTRError(f"objects must be 1 to {min(VALIDATION_SEEDS)} (the held-out validation seeds follow)")
        at_least(self, stage1_minutes=0, stage2_minutes=0, rewarm=0, min_lr_fraction=0, pool_objects=0)
        at_least(self, shard_mib=0, float32_mib=0, carry_mib=0)
        for name in ("stage1_steps", "stage2_steps"):
            if getattr(self, name) is not None:
                at_least(self, **{name: 0})  # 0, like 0 minutes, skips the stage
        if self.min_lr_fraction > 1:
            raise GTRError(f"min_lr_fraction is a share of the peak, 0 to 1; got {self.min_lr_fraction}")
        if self.skips(1) and self.skips(2):
            raise GTRError("both stages have no budget: give stage1_minutes or stage2_minutes some time")
        if self.skips(1) and not self.init:
            raise GTRError("stage 2 alone needs stage-1 weights to start from: set init=WEIGHTS.safetensors")
        if self.stage1.patch > self.sampling.size:
            raise GTRError(f"stage1.patch {self.stage1.patch} is larger than the views ({self.sampling.size} px)")
        image_size = preset(self.preset).image_size
        if self.sampling.size != image_size:
            raise GTRError(
                f"sampling.size is {self.sampling.size}, but {self.preset} sees {image_size}-pixel views; "
                f"set sampling.size={image_size} (or leave it out: a changed preset brings its own)"
            )
        if not travels(preset(self.preset), self.carry_mib):
            size = bfloat16_bytes(preset(self.preset))
            raise GTRError(
                f"{self.preset} takes {size / MIB:.0f} MiB in bfloat16: more than the campaign's carry_mib "
                f"({self.carry_mib:g} MiB) or the add-on ships ({SHIPPED_MB:g} MB); choose a smaller preset"
            )

    def skips(self, stage: int) -> bool:
        """Whether the plan gives a stage no budget (0 minutes or 0 steps)."""
        minutes, steps = self.budget(stage)
        return minutes == 0 or steps == 0

    def budget(self, stage: int) -> tuple[float, int | None]:
        """(minutes, steps or None) of a stage."""
        return (self.stage1_minutes, self.stage1_steps) if stage == 1 else (self.stage2_minutes, self.stage2_steps)

    def options(self, stage: int) -> Stage1Options | Stage2Options:
        return self.stage1 if stage == 1 else self.stage2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignPlan:
        """Inverse of `to_dict` (JSON lists back to tuples); unknown fields are an error."""
        values = dict(data)
        if "sampling" in values:
            values["sampling"] = ViewSampling.from_dict(values["sampling"])
        for name, kind in (("stage1", Stage1Options), ("stage2", Stage2Options)):
            if name in values:
                values[name] = from_json_fields(kind, values[name], f"campaign {name}")
        return from_json_fields(cls, values, "campaign plan")

    def changed(self, settings: list[str]) -> CampaignPlan:
        """A copy with `name=value` settings applied: `preset=gtr-base`, `stage1_minutes=20`,
        `stage1.batch=4`, `sampling.size=64`; each value is read as its field's declared type."""
        data = self.to_dict()
        for setting in settings:
            name, sep, text = setting.partition("=")
            if not sep:
                raise GTRError(f"--set {setting!r}: write NAME=VALUE, e.g. stage1.batch=8")
            *path, key = name.strip().split(".")
            target, owner = data, self
            for part in path:
                if not isinstance(target.get(part), dict):
                    raise GTRError(f"--set {name}: {part!r} is not a group of the plan (sampling, stage1, stage2)")
                target, owner = target[part], getattr(owner, part)
            types = {f.name: str(f.type) for f in dataclasses.fields(owner)}
            if key not in types:
                raise GTRError(f"--set {name}: no such setting; known: {', '.join(sorted(types))}")
            if isinstance(target[key], dict):
                raise GTRError(f"--set {name}: {key} is a group of settings; set {key}.NAME=VALUE")
            if path and path[0] in ("stage1", "stage2") and key in MANAGED:
                raise GTRError(f"--set {name}: the campaign sets this for each chunk; set {MANAGED[key]} instead")
            target[key] = _parse(text.strip(), types[key], name)
        named = {setting.partition("=")[0].strip() for setting in settings}
        if "preset" in named and "sampling.size" not in named and data["preset"] in PRESETS:
            data["sampling"]["size"] = preset(data["preset"]).image_size  # the views the model sees
        return CampaignPlan.from_dict(data)


def check_init(plan: CampaignPlan) -> None:
    """The plan's starting weights exist and are the plan's preset (a `GTRError` saying what to do otherwise)."""
    from gtr_backend.weights import read_weights_config

    assert plan.init is not None
    path = Path(plan.init)
    if not path.is_file():
        raise GTRError(f"init: {path} does not exist; give the path of a .safetensors weights file")
    config, _ = read_weights_config(path)
    if config.name != plan.preset:
        raise GTRError(f"init: {path} holds {config.name} weights, not {plan.preset}; add preset={config.name}")


def _check_progress(progress: dict[str, Any]) -> None:
    """A ValueError unless campaign.json's progress fields have their shapes."""
    if not isinstance(progress["stage"], int) or not 1 <= progress["stage"] <= 3:
        raise ValueError(f"stage {progress['stage']!r} is not 1, 2 or 3")
    for name in ("steps", "minutes"):
        if not isinstance(progress[name], dict) or set(progress[name]) != {"1", "2"}:
            raise ValueError(f'{name} must map stages "1" and "2"')
    for name in ("steps", "minutes"):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in progress[name].values()):
            raise ValueError(f"{name} must hold numbers")
    for name in ("shards", "chunks"):
        if not isinstance(progress[name], list):
            raise ValueError(f"{name} must be a list")
    if not all(isinstance(name, str) and "/" not in name for name in progress["shards"]):
        raise ValueError("shards must be file names in the folder")
    if not all(isinstance(r, dict) and isinstance(r.get("chunk"), int) for r in progress["chunks"]):
        raise ValueError("every chunk record must be an object with its chunk number")
    if progress["config"] is not None and not isinstance(progress["config"], dict):
        raise ValueError("config must be an object")


def bfloat16_bytes(config: GTRConfig) -> int:
    """The size of a model's weights in bfloat16, counted without allocating them (on the meta device)."""
    with torch.device("meta"):
        return GTR(config).num_parameters() * 2


def travels(config: GTRConfig, carry_mib: float = CampaignPlan.carry_mib) -> bool:
    """Whether a campaign can train this model: in bfloat16 it fits in `carry_mib` (the plan's) and what the
    add-on ships."""
    size = bfloat16_bytes(config)
    return size <= carry_mib * MIB and size / 1e6 < SHIPPED_MB


def _parse(text: str, declared: str, name: str) -> Any:
    """`text` as a value of the declared type (the annotation's text: "int", "float | None", "tuple[str, ...]")."""
    if "None" in declared and text.lower() == "none":
        return None
    try:
        if declared.startswith("bool"):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if declared.startswith("tuple"):
            kind = float if "float" in declared else str
            return [kind(item.strip()) for item in text.split(",") if item.strip()]
        if declared.startswith("int"):
            return int(text)
        if declared.startswith("float"):
            return float(text)
        return text
    except ValueError:
        raise GTRError(f"--set {name}={text}: expected {declared}") from None


@dataclass
class Campaign:
    """A campaign folder: its plan and progress (`campaign.json`), the model so far and the log."""

    folder: Path
    plan: CampaignPlan
    stage: int = 1  # the stage to train next; 3 when the campaign is done
    steps: dict[str, int] = field(default_factory=lambda: {"1": 0, "2": 0})
    minutes: dict[str, float] = field(default_factory=lambda: {"1": 0.0, "2": 0.0})
    shards: list[str] = field(default_factory=list)  # the files of the model so far
    config: dict[str, Any] | None = None  # the model's configuration (with `shards`)
    chunks: list[dict[str, Any]] = field(default_factory=list)  # one record per chunk and stage

    @classmethod
    def create(cls, folder: Path, plan: CampaignPlan) -> Campaign:
        """A new campaign in `folder` (an error if one is there already)."""
        if (folder / CAMPAIGN_JSON).is_file():
            raise GTRError(f"{folder}: holds a campaign already; run it on, or choose another folder")
        if folder.exists() and not folder.is_dir():
            raise GTRError(f"{folder}: is a file; a campaign needs a folder of its own")
        if plan.init:
            check_init(plan)
        folder.mkdir(parents=True, exist_ok=True)
        campaign = cls(folder, plan)
        campaign.stage = campaign.next_stage(1)
        campaign.write()
        return campaign

    @classmethod
    def open(cls, folder: Path) -> Campaign:
        path = folder / CAMPAIGN_JSON
        if not path.is_file():
            raise GTRError(f"{folder}: no {CAMPAIGN_JSON}; start a campaign there with `gtr campaign {folder} --new`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != "gtr-campaign/1":
                raise ValueError(f"format {data.get('format')!r}, not gtr-campaign/1")
            plan = CampaignPlan.from_dict(data["plan"])
            progress = {k: data[k] for k in ("stage", "steps", "minutes", "shards", "config", "chunks")}
            _check_progress(progress)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise GTRError(f"{path}: not a campaign file ({error}); start again in a new folder") from None
        except GTRError as error:
            raise GTRError(f"{path}: {error}") from None
        if progress["shards"] and not progress["config"]:
            raise GTRError(f"{path}: lists the model's files but not its configuration; start again in a new folder")
        missing = [name for name in progress["shards"] if not (folder / name).is_file()]
        if missing:
            raise GTRError(f"{folder}: the model's files {', '.join(missing)} are missing; copy the whole folder back")
        for name in progress["shards"]:
            try:
                with safe_open(str(folder / name), "pt"):
                    pass  # the header reads: the file is whole as far as its index goes
            except (SafetensorError, OSError) as error:
                raise GTRError(f"{folder / name}: damaged ({error}); copy the folder back again") from None
        return cls(folder, plan, **progress)

    @property
    def done(self) -> bool:
        return self.stage > 2

    @property
    def next_chunk(self) -> int:
        """The number of the chunk that runs next (from 1)."""
        return len({record["chunk"] for record in self.chunks}) + 1

    def prune(self) -> list[str]:
        """Delete model shards the progress no longer lists (an earlier chunk's, copied back beside the new ones);
        their names."""
        stale = sorted(p.name for p in self.folder.glob("state-*.safetensors") if p.name not in self.shards)
        for name in stale:
            (self.folder / name).unlink()
        return stale

    def export(self) -> Path:
        """The finished campaign's weights as shipped: `weights.safetensors` (bfloat16) + `weights.json` with how
        they were trained."""
        if not self.done:
            raise GTRError(f"{self.folder}: the campaign is at stage {self.stage}; its weights come when it is done")
        path = self.folder / WEIGHTS
        info = {"note": self.summary(), "campaign": self.chunks}
        save_weights(self.model(torch.device("cpu")), path, torch.bfloat16, info=info)
        return path

    def write(self) -> None:
        data = {
            "format": "gtr-campaign/1",
            "plan": self.plan.to_dict(),
            "stage": self.stage,
            "steps": self.steps,
            "minutes": self.minutes,
            "shards": self.shards,
            "config": self.config,
            "chunks": self.chunks,
        }
        atomic_write(self.folder / CAMPAIGN_JSON, json.dumps(data, indent=2) + "\n")

    def next_stage(self, stage: int) -> int:
        """The first stage from `stage` on with budget left (3: none)."""
        while stage <= 2:
            minutes, steps = self.plan.budget(stage)
            spent = self.minutes[str(stage)] >= minutes or (steps is not None and self.steps[str(stage)] >= steps)
            if not spent:
                return stage
            stage += 1
        return stage

    def model(self, device: torch.device) -> GTR:
        """The model so far: the carried shards, else the plan's starting weights, else a new model."""
        if self.shards:
            state: dict[str, torch.Tensor] = {}
            for name in self.shards:
                try:
                    state.update(load_file(str(self.folder / name)))
                except (SafetensorError, OSError) as error:
                    raise GTRError(f"{self.folder / name}: damaged ({error}); copy the folder back again") from None
            try:
                model = GTR(GTRConfig.from_dict(self.config or {}))
                model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
            except (RuntimeError, TypeError, ValueError):
                message = "the shards and configuration do not make this campaign's model; copy the folder back"
                raise GTRError(f"{self.folder}: {message}") from None
            return model.to(device)
        if self.plan.init:
            check_init(self.plan)
            return load_project_weights(self.plan.init, device)
        return GTR(preset(self.plan.preset)).to(device)

    def save_model(self, model: GTR, chunk: int) -> list[str]:
        """The model as shards of at most the plan's `shard_mib`, named for this chunk (float32 when it fits the
        plan's `float32_mib`); their names."""
        shard_bytes = int(self.plan.shard_mib * MIB)
        self.config = model.config.to_dict()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        total = sum(t.numel() * 4 for t in state.values())
        dtype = torch.float32 if total <= self.plan.float32_mib * MIB else torch.bfloat16
        groups: list[dict[str, torch.Tensor]] = [{}]
        size = 0
        for name, tensor in state.items():
            tensor = tensor.to(dtype) if tensor.is_floating_point() else tensor
            nbytes = tensor.numel() * tensor.element_size()
            if nbytes > shard_bytes:
                raise GTRError(
                    f"{name}: {nbytes / MIB:.1f} MiB, more than one shard holds (shard_mib {self.plan.shard_mib:g}); "
                    "set a larger shard_mib"
                )
            if size + nbytes > shard_bytes and groups[-1]:
                groups.append({})
                size = 0
            groups[-1][name] = tensor
            size += nbytes
        names = []
        for index, group in enumerate(groups):
            name = f"state-c{chunk:03d}-{index}.safetensors"
            atomic_write(self.folder / name, functools.partial(_save_shard, group))
            names.append(name)
        return names

    def log(self, entry: dict[str, Any]) -> None:
        with open(self.folder / LOG, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def finish_chunk(self, model: GTR, records: list[dict[str, Any]]) -> None:
        """Write the model, then the progress (last), then drop the previous chunk's shards; at the end of the
        campaign also the weights as shipped."""
        chunk = self.next_chunk
        self.shards = self.save_model(model, chunk)
        for record in records:
            record["chunk"] = chunk
        self.chunks += records
        self.write()
        self.prune()
        if self.done:
            self.export()

    def summary(self) -> str:
        parts = [f"{self.plan.preset}"]
        for stage in ("1", "2"):
            if self.steps[stage]:
                parts.append(f"stage {stage}: {self.steps[stage]} steps, {self.minutes[stage]:.1f} min")
        hardware = {r.get("hardware", "") for r in self.chunks} - {""}
        return "; ".join(parts) + (f" on {', '.join(sorted(hardware))}" if hardware else "")


def _save_shard(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, str(path), metadata={"format": "gtr-campaign-shard/1"})


def chunk_lr(plan: CampaignPlan, stage: int, fraction: float) -> float:
    """The learning rate `fraction` of the way through a stage's budget: a cosine from the stage's peak down to
    `min_lr_fraction` of it."""
    peak = plan.options(stage).lr
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
    return peak * (plan.min_lr_fraction + (1 - plan.min_lr_fraction) * cosine)


def run_chunk(
    folder: Path, device: torch.device, minutes: float, reserve_minutes: float = 0.75, say: Log | None = None
) -> Campaign:
    """Train the campaign in `folder` on for at most `minutes` of wall time in all (keeping `reserve_minutes`
    for validation and writing), stage after stage while its budget lasts; returns the campaign as written.
    A finished campaign only tidies its folder (`prune`) and writes its weights if they are missing."""
    start = time.perf_counter()
    campaign = Campaign.open(folder)
    campaign.prune()
    if campaign.done:
        if not (folder / WEIGHTS).is_file():
            campaign.export()
        return campaign
    say = say or (lambda text: None)
    model = campaign.model(device)
    held_out = validation_views(campaign.plan.sampling, device)
    records: list[dict[str, Any]] = []

    def left() -> float:
        return minutes - reserve_minutes - (time.perf_counter() - start) / 60

    # One pool for the whole chunk, with depth when stage 2 is to come: both stages train on the same objects.
    depth = not campaign.plan.skips(2)
    pool = training_pool(campaign.plan, campaign.plan.sampling, campaign.next_chunk, device, depth)
    while not campaign.done:
        if records and left() < 1.0:
            break  # too little time for the next stage: the next chunk starts it
        records.append(_train_stage(campaign, model, pool, held_out, device, max(left(), 0.05), say))
    campaign.finish_chunk(model, records)
    return campaign


def training_pool(
    plan: CampaignPlan, sampling: ViewSampling, chunk: int, device: torch.device, depth: bool, most: int | None = None
) -> Pool:
    """The objects a chunk trains on: `plan.pool_objects` (at most `most`) of them rendered once, with depth
    for stage 2 if `depth` (chunk N takes the N-th slice of the seeds, wrapping around), or all of them rendered
    afresh for every batch when `pool_objects` is 0."""
    if plan.pool_objects == 0:
        return StreamingPool(range(plan.objects), sampling, device)
    size = min(plan.pool_objects, plan.objects, most or plan.objects)
    first = ((chunk - 1) * size) % plan.objects
    seeds = [(first + i) % plan.objects for i in range(size)]
    return RenderedPool(seeds, sampling, device, with_depth=depth)


def _chunk_options(campaign: Campaign, minutes: float) -> Stage1Options | Stage2Options:
    """The current stage's options for a chunk of up to `minutes`: what is left of its budget, a fresh warm-up
    (the stage's own at its start, else `rewarm`), the learning rate at the chunk's middle, held constant."""
    plan, stage = campaign.plan, campaign.stage
    key, base = str(stage), plan.options(stage)
    budget_minutes, budget_steps = plan.budget(stage)
    steps_left = budget_steps - campaign.steps[key] if budget_steps is not None else 10**9
    max_minutes = min(minutes, budget_minutes - campaign.minutes[key])
    by_time = (campaign.minutes[key] + max_minutes / 2) / budget_minutes
    by_steps = (campaign.steps[key] + steps_left / 2) / budget_steps if budget_steps else 0.0
    return dataclasses.replace(
        base,
        steps=steps_left,
        max_minutes=max_minutes,
        lr=chunk_lr(plan, stage, max(by_time, by_steps)),
        warmup=min(base.warmup if campaign.steps[key] == 0 else plan.rewarm, steps_left),
        decay=False,
        seed=base.seed + 1000 * campaign.next_chunk + stage,  # new batches in every chunk
        checkpoint_every=0,
        validate_every=0,
    )


def _measured_training(
    model: GTR,
    pool: Pool,
    options: Stage1Options | Stage2Options,
    device: torch.device,
    held_out: list[Any],
    log: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train with `options`, validating on `held_out` before and after: the record's measured fields."""
    inputs, size = pool.sampling.input_views, options.validation_size
    before, _ = validate(model, held_out, inputs, VALIDATION_SAMPLES, size)
    last: dict[str, float] = {}

    def remember(entry: dict[str, float]) -> None:
        last.update(entry)
        if log is not None:
            log(entry)

    started = time.perf_counter()
    train(model, pool, options, device, TrainingRun(log=remember))
    minutes = (time.perf_counter() - started) / 60
    after, _ = validate(model, held_out, inputs, VALIDATION_SAMPLES, size)
    return {
        "steps": int(last.get("step", 0)),
        "minutes": round(minutes, 3),
        "lr": options.lr,
        "loss": last.get("loss"),
        "objects_per_second": last.get("objects_per_second"),
        "validation_psnr_before": round(before, 3),
        "validation_psnr": round(after, 3),
        "hardware": device_label(device),
    }


def _describe(what: str, record: dict[str, Any]) -> str:
    return (
        f"{what}: {record['steps']} steps in {record['minutes']:.1f} min, {record['objects_per_second'] or 0:.1f} "
        f"objects/s, validation PSNR {record['validation_psnr_before']:.2f} -> {record['validation_psnr']:.2f} dB"
    )


def _train_stage(
    campaign: Campaign,
    model: GTR,
    pool: Pool,
    held_out: list[Any],
    device: torch.device,
    minutes: float,
    say: Log,
) -> dict[str, Any]:
    """Train the current stage for up to `minutes` (and its budget); the chunk's record for it."""
    stage, chunk = campaign.stage, campaign.next_chunk
    key = str(stage)
    options = _chunk_options(campaign, minutes)
    done_before = campaign.steps[key]

    def log(entry: dict[str, float]) -> None:
        if entry["step"] % options.log_every == 0:
            step = {"stage_step": done_before + entry["step"]}
            campaign.log({"kind": "train", "stage": stage, "chunk": chunk, **step, **entry})

    record = {"chunk": chunk, "stage": stage, **_measured_training(model, pool, options, device, held_out, log)}
    campaign.steps[key] += record["steps"]
    campaign.minutes[key] += record["minutes"]
    campaign.log({"kind": "validation", **record})
    say(_describe(f"chunk {chunk}, stage {stage}", record))
    campaign.stage = campaign.next_stage(stage)
    return record


def probe(
    plan: CampaignPlan, presets: list[str], device: torch.device, minutes: float, say: Log | None = None
) -> list[dict[str, Any]]:
    """For each preset: stage 1 from a new model for `minutes` on the plan's data (with the stage's warm-up);
    objects per second, validation PSNR before and after, its gain per minute, parameters and the size shipped
    (bfloat16). Best (highest PSNR after) first."""
    say = say or (lambda text: None)
    options = dataclasses.replace(plan.stage1, steps=10**9, max_minutes=minutes, decay=False, validate_every=0)
    results = []
    pools: dict[int, tuple[list[Any], Pool]] = {}
    for name in presets:
        torch.manual_seed(0)
        model = GTR(preset(name)).to(device)
        size = model.config.image_size  # the views it sees; presets of one size share their objects
        if size not in pools:
            sampling = dataclasses.replace(plan.sampling, size=size)
            pools[size] = validation_views(sampling, device), training_pool(plan, sampling, 1, device, False, 512)
        held_out, pool = pools[size]
        record = {"preset": name, **_measured_training(model, pool, options, device, held_out)}
        record["parameters"] = model.num_parameters()
        record["shipped_mb"] = round(model.num_parameters() * 2 / 1e6, 1)
        gain = record["validation_psnr"] - record["validation_psnr_before"]
        record["psnr_gain_per_minute"] = round(gain / max(record["minutes"], 1e-6), 4)
        say(_describe(name, record))
        results.append(record)
    return sorted(results, key=lambda r: -r["validation_psnr"])
