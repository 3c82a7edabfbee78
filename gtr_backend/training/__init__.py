"""Training: procedural data, rendered view pools, the stage-1 (NeRF) loop."""

from .dataset import RenderedPool, ViewSampling
from .procedural import random_object
from .stage1 import Stage1Options, train_stage1

__all__ = ["RenderedPool", "Stage1Options", "ViewSampling", "random_object", "train_stage1"]
