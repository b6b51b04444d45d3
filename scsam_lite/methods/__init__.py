"""Training methods (``--method``): each one a :class:`Method` in its own module, found through ``METHODS``."""

from __future__ import annotations

from ..registry import Registry
from .base import Method
from .entropy_min import EntropyMin
from .mean_teacher import MeanTeacher
from .peft_sam import PEFTSAM
from .supervised import Supervised

METHODS: Registry[type[Method]] = Registry("method")
METHODS.register("unet", Supervised)  # labeled images only: the lower bound
METHODS.register("mean-teacher", MeanTeacher)
METHODS.register("entropy-min", EntropyMin)
METHODS.register("peft-sam", PEFTSAM)  # the generalist alone, ground-truth prompts

__all__ = ["METHODS", "PEFTSAM", "EntropyMin", "MeanTeacher", "Method", "Supervised"]
