"""scsam-lite: SC-SAM for teaching.

A small U-Net (the *specialist*) and a parameter-efficiently fine-tuned SAM (the *generalist*) co-trained on few
labels. Where each idea of the paper lives:

- datasets, splits, augmentation: :mod:`scsam_lite.data`
- the specialist (U-Net family): :mod:`scsam_lite.specialist`
- metrics (Dice, IoU, HD95, ASD): :mod:`scsam_lite.metrics`
- training methods and the trainer: :mod:`scsam_lite.methods`, :mod:`scsam_lite.trainer`
- run directories and the results registry: :mod:`scsam_lite.runs`
- configs and presets: :mod:`scsam_lite.config`
- downloads: :mod:`scsam_lite.download`
"""

from __future__ import annotations

from .errors import ScsamError
from .runtime import Runtime, setup

__version__ = "0.1.0"

#: The project's home; badges and install cells are built from it (see :mod:`scsam_lite.hosted`).
REPO_URL = "https://github.com/scsam-lite/scsam-lite"

__all__ = ["REPO_URL", "Runtime", "ScsamError", "__version__", "setup"]
