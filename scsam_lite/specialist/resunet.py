"""``resunet``: a residual U-Net from MONAI, for the paper's backbone ablation.

MONAI's UNet with two residual units per level and the U-Net's widths (16-256). The paper compares ResUNet++
(Jha et al. 2019), which adds squeeze-and-excitation, ASPP and attention blocks to the residual U-Net; this is the
plain residual U-Net without them, so its numbers are not ResUNet++'s.
"""

from __future__ import annotations

import torch
from monai.networks.nets import UNet as MonaiUNet
from torch import nn


class ResUNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.net = MonaiUNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=num_classes,
            channels=(16, 32, 64, 128, 256),
            strides=(2, 2, 2, 2),
            num_res_units=2,
            norm="batch",
            dropout=0.1,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
