"""Training: procedural data, rendered view pools and dataset folders, the two stages and their loop."""

from .dataset import RenderedPool, StreamingPool, ViewSampling, read_depth, write_dataset
from .procedural import random_object
from .run import TrainingRun
from .stage1 import Stage1Options
from .stage2 import Stage2Options
from .train import train

__all__ = [
    "RenderedPool",
    "Stage1Options",
    "Stage2Options",
    "StreamingPool",
    "TrainingRun",
    "ViewSampling",
    "random_object",
    "read_depth",
    "train",
    "write_dataset",
]
