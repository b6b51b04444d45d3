"""The specialist's default backbone: the 2D U-Net used by SC-SAM's reference code.

Same shape as the SSL4MIS U-Net (channels 16-32-64-128-256, dropout rising from 0.05 to 0.5 in the encoder,
BatchNorm + LeakyReLU, transposed-convolution upsampling), written out so a student can read one forward pass.
It returns logits for ``num_classes`` classes (2 for foreground/background, softmax over classes).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    """Two 3x3 convolutions with BatchNorm and LeakyReLU; dropout between them."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(),
        nn.Dropout(dropout),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(),
    )


class UNet(nn.Module):
    """A 4-level U-Net; input sides must be divisible by 16."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        channels: tuple[int, ...] = (16, 32, 64, 128, 256),
        dropout: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5),
    ) -> None:
        super().__init__()
        if len(channels) != 5 or len(dropout) != 5:
            raise ValueError("UNet takes 5 channel widths and 5 dropout rates")
        c = channels
        self.enc = nn.ModuleList([conv_block(in_channels, c[0], dropout[0])])
        self.enc.extend(conv_block(c[i - 1], c[i], dropout[i]) for i in range(1, 5))
        self.pool = nn.MaxPool2d(2)
        # decoder: upsample the deeper map to the skip's width, concatenate, convolve
        self.up = nn.ModuleList(nn.ConvTranspose2d(c[i], c[i - 1], 2, stride=2) for i in range(4, 0, -1))
        self.dec = nn.ModuleList(conv_block(2 * c[i - 1], c[i - 1], 0.0) for i in range(4, 0, -1))
        self.head = nn.Conv2d(c[0], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError(f"UNet input sides must be divisible by 16, got {tuple(x.shape[-2:])}")
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()  # the bottleneck
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)
