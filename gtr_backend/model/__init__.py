"""The GTR network: configuration and presets, encoder, transformer, upsampler, fields."""

from .config import PRESETS, GTRConfig, preset
from .fields import TriplaneField, sample_triplane
from .gtr import GTR, Precision, autocast

__all__ = ["GTR", "PRESETS", "GTRConfig", "Precision", "TriplaneField", "autocast", "preset", "sample_triplane"]
