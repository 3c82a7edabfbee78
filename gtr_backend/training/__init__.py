"""Training: procedural data, rendered view pools and dataset folders, the stage-1 (NeRF) loop."""

from .dataset import RenderedPool, StreamingPool, ViewSampling, read_depth, write_dataset
from .procedural import random_object
from .stage1 import Stage1Options, train_stage1

__all__ = [
    "RenderedPool",
    "Stage1Options",
    "StreamingPool",
    "ViewSampling",
    "random_object",
    "read_depth",
    "train_stage1",
    "write_dataset",
]
