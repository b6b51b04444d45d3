"""Training methods (``--method``): each one a :class:`Method` in its own module, found through ``METHODS``."""

from __future__ import annotations

from ..registry import Registry
from .base import Method
from .entropy_min import EntropyMin
from .mean_teacher import MeanTeacher
from .peft_sam import PEFTSAM
from .sc_sam import SCSAM
from .supervised import Supervised

METHODS: Registry[type[Method]] = Registry("method")
METHODS.register("unet", Supervised)  # labeled images only: the lower bound
METHODS.register("mean-teacher", MeanTeacher)
METHODS.register("entropy-min", EntropyMin)
METHODS.register("peft-sam", PEFTSAM)  # the generalist alone, ground-truth prompts
METHODS.register("sc-sam", SCSAM)  # the co-training: U-Net <-> SAM

__all__ = ["METHODS", "PEFTSAM", "SCSAM", "EntropyMin", "MeanTeacher", "Method", "Supervised"]
