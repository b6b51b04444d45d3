"""``unet++``: nested U-Net (Zhou et al. 2018) from MONAI, for the paper's backbone ablation."""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNetPlusPlus
from torch import nn


class UNetPlusPlus(nn.Module):
    """MONAI's BasicUNetPlusPlus in 2D with the U-Net's widths; returns the final (not deep-supervised) logits."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.net = BasicUNetPlusPlus(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=num_classes,
            features=(16, 32, 64, 128, 256, 16),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[-1]
