"""What every training stage shares around its step: processes, checkpoints, logs, validation.

- Distributed: under `torchrun` (WORLD_SIZE > 1) each process joins the group (NCCL on CUDA, Gloo on the CPU),
  uses the GPU of its LOCAL_RANK, draws its own batches, and gradients are averaged by DistributedDataParallel.
  Rank 0 alone writes checkpoints, logs and samples.
- Checkpoints in the run folder: `last.safetensors` + `last.json` (the model, loadable like any weights file)
  and `last.state.pt` (optimizer, schedule, step, random state; read back with `weights_only=True`).
  `resume=True` continues from them; the final model is written the same way.
- Logs: `log.jsonl` (one JSON object per logged step or validation) and TensorBoard event files when the
  `tensorboard` package is installed. A tqdm progress bar shows loss, PSNR and objects per second.
- Validation: every `validate_every` steps, NeRF renders of held-out procedural objects (seeds from 1,000,000,
  never trained on) from their supervision cameras: mean PSNR, and a PNG of the first object's renders next to
  the ground truth in `samples/`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from gtr_backend.metrics import psnr_from_mse
from gtr_backend.model import GTR, autocast
from gtr_backend.pixels import to_uint8
from gtr_backend.render.volume import VolumeOptions, render_triplane
from gtr_backend.views.rays import input_maps
from gtr_backend.views.viewset import ViewSet
from gtr_backend.weights import load_project_weights, save_weights

from .dataset import RenderedPool, StreamingPool, ViewSampling, at_least, render_procedural

Pool = RenderedPool | StreamingPool  # the training objects' views, rendered once or on the fly

VALIDATION_SEEDS = range(1_000_000, 1_000_004)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_environment(device: torch.device) -> tuple[Distributed, torch.device]:
        """Join the torchrun group if there is one; returns it and this process's device."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return Distributed(), device
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return Distributed(torch.distributed.get_rank(), world, local), device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if self.world <= 1:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, value: float, device: torch.device) -> float:
        if self.world <= 1:
            return value
        t = torch.tensor([value], device=device)
        torch.distributed.all_reduce(t)
        return float(t) / self.world


@dataclass
class RunFolder:
    """Checkpoints, logs and samples of one training run (written by rank 0 only)."""

    path: Path
    writer: Any = None
    log_file: Any = None
    records: list[dict[str, float]] = field(default_factory=list)

    def open(self) -> RunFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.path / "log.jsonl", "a")  # noqa: SIM115  # closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.path / "tensorboard"))
        except ImportError:  # tensorboard is optional: log.jsonl always has everything
            self.writer = None
        return self

    def log(self, entry: dict[str, float], prefix: str = "train") -> None:
        self.records.append({"kind": prefix, **entry})  # type: ignore[dict-item]
        if self.log_file is not None:
            self.log_file.write(json.dumps({"kind": prefix, **entry}) + "\n")
            self.log_file.flush()
        if self.writer is not None:
            for key, value in entry.items():
                if key != "step":
                    self.writer.add_scalar(f"{prefix}/{key}", value, int(entry["step"]))

    @property
    def checkpoint(self) -> Path:
        return self.path / "last.safetensors"

    def save(
        self, model: GTR, optimizer: torch.optim.Optimizer, scheduler: Any, step: int, info: dict[str, Any]
    ) -> None:
        save_weights(model, self.checkpoint, info={"step": step, **info})
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
        }
        temporary = self.path / "last.state.pt.tmp"
        torch.save(state, temporary)
        temporary.replace(self.path / "last.state.pt")  # never a half-written state

    def resume(self, model: GTR, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device) -> int:
        """Load the last checkpoint into model, optimizer and schedule; returns the step to continue from (0 if
        there is none)."""
        state_path = self.path / "last.state.pt"
        if not (self.checkpoint.is_file() and state_path.is_file()):
            return 0
        model.load_state_dict(load_project_weights(self.checkpoint, device).state_dict())
        state = torch.load(state_path, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        return int(state["step"])

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
        if self.writer is not None:
            self.writer.close()


def use_checkpointing(model: GTR, device: torch.device, setting: bool | None) -> None:
    """Gradient checkpointing of the transformer blocks: on CUDA by default (memory for batch), off on the CPU."""
    model.transformer.gradient_checkpointing = device.type == "cuda" if setting is None else setting


def cosine_schedule(warmup: int, steps: int) -> Any:
    """Linear warm-up to 1, then cosine decay to 0 at `steps` (a LambdaLR factor); `steps` 0: no decay."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if steps <= 0:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return factor


def validation_views(sampling: ViewSampling, device: torch.device) -> list[ViewSet]:
    from gtr_backend.render.raster import get_rasterizer

    rasterizer = get_rasterizer(device)
    return [render_procedural(seed, sampling, device, rasterizer) for seed in VALIDATION_SEEDS]


@torch.no_grad()
def validate(model: GTR, views: list[ViewSet], inputs_count: int, samples: int, size: int) -> tuple[float, Tensor]:
    """Mean PSNR of NeRF renders (at `size`) of the held-out objects' supervision views, and an image
    (3, 2 * size, V * size) of the first object's renders above their ground truth."""
    from gtr_backend.reconstruction import predict_triplane

    model.eval()
    scores, sheet = [], None
    for index, object_views in enumerate(views):
        triplane = predict_triplane(model, object_views.select(list(range(inputs_count))))
        target = object_views.select(list(range(inputs_count, object_views.num_views))).resized(size)
        render = render_triplane(
            model.field, triplane, target.intrinsics, target.c2w, size, size, VolumeOptions(num_samples=samples)
        )
        truth = target.on_white()
        scores.append(psnr_from_mse(float((render.rgb.clamp(0, 1) - truth).square().mean())))
        if index == 0:
            sheet = torch.cat([torch.cat(list(render.rgb.clamp(0, 1)), -1), torch.cat(list(truth), -1)], -2)
    model.train()
    assert sheet is not None
    return sum(scores) / len(scores), sheet.cpu()


def save_sample(image: Tensor, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image.permute(1, 2, 0)).numpy()).save(path)


@dataclass(frozen=True)
class LoopOptions:
    """The options both training stages take (`Stage1Options` and `Stage2Options` add their own): the loop,
    its schedule, logging, checkpoints and validation."""

    steps: int = 10000
    batch: int = 8
    lr: float = 4e-4
    warmup: int = 200  # steps of linear learning-rate warm-up
    decay: bool = True  # cosine decay to 0 at `steps` after the warm-up (False: constant, as a campaign's chunk)
    weight_decay: float = 0.05
    max_minutes: float | None = None
    seed: int = 0
    gradient_checkpointing: bool | None = None  # None: on for CUDA, off on the CPU
    log_every: int = 50  # steps between log entries (log.jsonl and TensorBoard with a run folder, the terminal)
    checkpoint_every: int = 500  # steps between checkpoints (with a run folder)
    validate_every: int = 500  # steps between validations (with a run folder; 0: never)
    validation_size: int = 64  # validation renders are this many pixels square

    def __post_init__(self) -> None:
        at_least(self, steps=1, batch=1, lr=0, warmup=0, weight_decay=0, log_every=1, validation_size=8)
        at_least(self, checkpoint_every=0, validate_every=0)
        if self.max_minutes is not None:
            at_least(self, max_minutes=0)


LogFn = Callable[[dict[str, float]], None]


@dataclass
class TrainingRun:
    """Where a training stage writes and whom it tells, apart from what it learns (`LoopOptions`)."""

    output: Path | None = None  # the final weights (.safetensors)
    run_dir: Path | None = None  # checkpoints, log.jsonl, TensorBoard logs, validation samples (`RunFolder`)
    resume: bool = False  # continue from the last checkpoint in `run_dir`
    progress: bool = False  # a progress bar on stderr
    log: LogFn | None = None  # called with every step's log entry (on the main process)


def model_inputs_batch(rgba: Tensor, intrinsics: Tensor, c2w: Tensor) -> Tensor:
    """rgba (B, V, 4, S, S) in [0, 1] with cameras -> model inputs (B, V, 10, S, S) (see views.rays)."""
    b, v = rgba.shape[:2]
    flat = rgba.flatten(0, 1)
    maps = input_maps(flat[:, :3], flat[:, 3:], intrinsics.reshape(-1, 4), c2w.reshape(-1, 4, 4))
    return maps.reshape(b, v, *maps.shape[1:])


class TrainingLoop:
    """Everything around a stage's training step: the process group and its generator, the (DDP-wrapped)
    network, AdamW with warm-up + cosine schedule, resume, and after each step the log, progress bar,
    validation, checkpoints and the time limit. A stage supplies only its losses."""

    def __init__(
        self,
        model: GTR,
        sampling: ViewSampling,
        options: LoopOptions,
        device: torch.device | str,
        info: dict[str, Any],
        run: TrainingRun,
    ) -> None:
        self.options, self.info, self.run = options, info, run
        self.dist, self.device = Distributed.from_environment(torch.device(device))
        torch.manual_seed(options.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(options.seed + 7919 * self.dist.rank)
        self.model = model.to(self.device).train()
        use_checkpointing(self.model, self.device, options.gradient_checkpointing)
        self.network = self.dist.wrap(self.model, self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=options.lr, betas=(0.9, 0.95), weight_decay=options.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, cosine_schedule(options.warmup, options.steps if options.decay else 0)
        )
        self.folder = RunFolder(run.run_dir).open() if run.run_dir is not None and self.dist.main else None
        self.first = 0
        if run.run_dir is not None and run.resume:
            self.first = RunFolder(run.run_dir).resume(self.model, self.optimizer, self.scheduler, self.device)
        self.held_out = validation_views(sampling, self.device) if self.folder and options.validate_every else []
        self.inputs_count = sampling.input_views
        shown = run.progress and self.dist.main
        self.bar = tqdm(total=options.steps, initial=self.first, unit="step", disable=not shown)
        self.start = time.perf_counter()
        self.done = self.first

    def steps(self) -> range:
        return range(self.first, self.options.steps)

    def triplanes(self, rgba: Tensor, intrinsics: Tensor, c2w: Tensor) -> Tensor:
        """The (DDP-wrapped) network's triplanes (B, 3, C, R, R) in float32 from input views rgba (B, V, 4, S, S)
        with intrinsics (B, V, 4) and c2w (B, V, 4, 4); bf16 autocast on CUDA."""
        inputs = model_inputs_batch(rgba, intrinsics, c2w)
        with autocast(self.device, "auto"):
            return self.network(inputs).float()

    def draw(self, count: int) -> Tensor:
        """`batch` random indices into a pool of `count` assets, from this process's generator."""
        return torch.randint(0, count, (self.options.batch,), device=self.device, generator=self.generator)

    def optimize(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()

    def common_entry(self, step: int, loss: Tensor) -> dict[str, float]:
        """The log fields every stage has: step, loss (averaged over processes), lr, seconds, objects/s."""
        elapsed = time.perf_counter() - self.start
        return {
            "step": step + 1,
            "loss": self.dist.mean(float(loss.detach()), self.device),
            "lr": float(self.scheduler.get_last_lr()[0]),
            "seconds": elapsed,
            "objects_per_second": (step + 1 - self.first) * self.options.batch * self.dist.world / max(elapsed, 1e-9),
        }

    def after_step(self, entry: dict[str, float]) -> bool:
        """Log, progress, validation and checkpoints after a step; True when the time limit says stop."""
        o, step = self.options, int(entry["step"])
        self.done = step
        if self.run.log and self.dist.main:
            self.run.log(entry)
        self.bar.update(1)
        self.bar.set_postfix(
            loss=f"{entry['loss']:.4f}", psnr=f"{entry['psnr']:.2f}", objects_s=f"{entry['objects_per_second']:.1f}"
        )
        if self.folder is not None:
            if step % o.log_every == 0:
                self.folder.log(entry)
            if o.validate_every and step % o.validate_every == 0:
                score, sheet = validate(self.model, self.held_out, self.inputs_count, 32, o.validation_size)
                self.folder.log({"step": step, "psnr": score}, "validation")
                save_sample(sheet, self.folder.path / "samples" / f"step_{step:07d}.png")
            if o.checkpoint_every and step % o.checkpoint_every == 0:
                self.folder.save(self.model, self.optimizer, self.scheduler, step, self.info)
        return o.max_minutes is not None and entry["seconds"] > o.max_minutes * 60

    def finish(self) -> GTR:
        """Final checkpoint and weights file; the model in eval mode."""
        self.bar.close()
        self.model.eval()
        if self.folder is not None:
            self.folder.save(self.model, self.optimizer, self.scheduler, self.done, self.info)
            self.folder.close()
        if self.run.output is not None and self.dist.main:
            save_weights(self.model, self.run.output)
        return self.model
