"""Sigmoid ramp-up: how much an unsupervised loss counts at step t.

``w(t) = exp(-scale * (1 - min(t, T) / T) ** 2)``: near 0 at the start (noisy pseudo-labels and predictions
barely count), 1 from step T on. SC-SAM weights SAM's loss on the U-Net's pseudo-labels with it (T = 10,000,
scale 5 in the reference code); mean teacher weights its consistency loss with it (Laine & Aila 2017). A summary
of the paper writes the formula without the 5 (``scale=1``), which starts at 0.37 instead of 0.007.
"""

from __future__ import annotations

import math


def sigmoid_rampup(step: float, length: float, scale: float = 5.0) -> float:
    """The ramp-up weight in [0, 1]; ``length <= 0`` means no ramp-up (always 1)."""
    if length <= 0:
        return 1.0
    phase = 1.0 - min(max(step, 0.0), length) / length
    return float(math.exp(-scale * phase * phase))
