"""The reference code's positional encoding of prompt coordinates, reproduced as an option (not a recommendation).

SAM encodes a point (or a box corner) by dividing its coordinates by the input size, so that they lie in [0, 1]
like the image grid's, and then projecting them on random Fourier features. The reference SC-SAM code comments
the division out (``forward_with_coords`` in its ``prompt_encoder.py``): with coordinates up to 256 the features
then spin through hundreds of periods between neighbouring pixels, so a position's code becomes effectively a hash
of it, unrelated to the image grid's codes. Its SAM is then steered by the image, the tokens and how many points are
valid more than by where the points lie. ``generalist.point_encoding=reference`` switches this on, for the
``fidelity`` grid's "the reference's whole step"; the default ``sam`` keeps SAM's own encoding.

The switch changes the class of the prompt encoder's ``pe_layer`` in place (as the fast attention does): no
parameter or state-dict key changes, so checkpoints load either way.
"""

from __future__ import annotations

import torch
from torch import nn

_SWAPPED: dict[type, type] = {}


def _reference_forward_with_coords(
    self, coords_input: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """The reference's ``forward_with_coords``: the coordinates are encoded as they come, not divided by the size."""
    return self._pe_encoding(coords_input.clone().to(torch.float))


def use_reference_point_encoding(prompt_encoder: nn.Module, enabled: bool = True) -> None:
    """Encode prompt coordinates as the reference code does (``enabled``) or as SAM does, in place."""
    pe = prompt_encoder.pe_layer
    stock = next((k for k, v in _SWAPPED.items() if v is type(pe)), type(pe))
    if not enabled:
        pe.__class__ = stock
        return
    if stock not in _SWAPPED:
        _SWAPPED[stock] = type(
            f"Reference{stock.__name__}", (stock,), {"forward_with_coords": _reference_forward_with_coords}
        )
    pe.__class__ = _SWAPPED[stock]


def uses_reference_point_encoding(prompt_encoder: nn.Module) -> bool:
    return type(prompt_encoder.pe_layer) in _SWAPPED.values()
