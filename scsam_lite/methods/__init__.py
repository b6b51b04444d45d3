"""Training methods (``--method``): each one a :class:`Method` in its own module, found through ``METHODS``."""

from __future__ import annotations

from ..registry import Registry
from .base import Method
from .supervised import Supervised

METHODS: Registry[type[Method]] = Registry("method")
METHODS.register("unet", Supervised)

__all__ = ["METHODS", "Method", "Supervised"]
