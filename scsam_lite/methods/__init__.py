"""Training methods (``--method``): each one a :class:`Method` in its own module, found through ``METHODS``."""

from __future__ import annotations

from ..registry import Registry
from .base import Method
from .entropy_min import EntropyMin
from .mean_teacher import MeanTeacher
from .supervised import Supervised

METHODS: Registry[type[Method]] = Registry("method")
METHODS.register("unet", Supervised)  # labeled images only: the lower bound
METHODS.register("mean-teacher", MeanTeacher)
METHODS.register("entropy-min", EntropyMin)

__all__ = ["METHODS", "EntropyMin", "MeanTeacher", "Method", "Supervised"]
