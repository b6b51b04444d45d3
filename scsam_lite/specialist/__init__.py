"""The specialist: a small segmentation network trained on few labels (a U-Net by default).

``build_specialist(name)`` is the one way to get one; the registry lists the backbones of the paper's ablation.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..registry import Registry
from .resunet import ResUNet
from .swin_unet import SwinUNet
from .unet import UNet
from .unet_plus_plus import UNetPlusPlus

SPECIALISTS: Registry[Callable[..., nn.Module]] = Registry("specialist")
SPECIALISTS.register("unet", UNet)  # the reference's U-Net (SSL4MIS shape)
SPECIALISTS.register("unet++", UNetPlusPlus)
SPECIALISTS.register("resunet", ResUNet)
SPECIALISTS.register("swin", SwinUNet)


def build_specialist(name: str = "unet", in_channels: int = 3, num_classes: int = 2, **kwargs) -> nn.Module:
    """A freshly initialised specialist that maps ``(B, in_channels, H, W)`` images to class logits."""
    return SPECIALISTS.get(name)(in_channels=in_channels, num_classes=num_classes, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(in_channels: int = 3) -> dict[str, int]:
    """Parameter count of every registered specialist (printed by ``scsam-lite config --list``)."""
    return {name: count_parameters(build_specialist(name, in_channels)) for name in SPECIALISTS.names()}


__all__ = [
    "SPECIALISTS",
    "ResUNet",
    "SwinUNet",
    "UNet",
    "UNetPlusPlus",
    "build_specialist",
    "count_parameters",
    "parameter_table",
]
