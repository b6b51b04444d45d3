"""``swin``: a Swin-transformer U-Net from MONAI, for the paper's backbone ablation.

MONAI's SwinUNETR in 2D (a Swin encoder with a convolutional decoder). The paper's SwinUNet (Cao et al. 2021) has a
transformer decoder as well; both use shifted-window attention in the encoder. Input sides must be divisible by 32.
"""

from __future__ import annotations

import torch
from monai.networks.nets import SwinUNETR
from torch import nn


class SwinUNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 2, feature_size: int = 24) -> None:
        super().__init__()
        self.net = SwinUNETR(
            spatial_dims=2, in_channels=in_channels, out_channels=num_classes, feature_size=feature_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"the swin specialist needs sides divisible by 32, got {tuple(x.shape[-2:])}")
        return self.net(x)
