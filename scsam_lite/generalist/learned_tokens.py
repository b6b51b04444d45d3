"""Learned prompt tokens predicted from the image embedding (off by default).

The reference SC-SAM code also feeds SAM's mask decoder a few extra sparse tokens computed by a small network from
the image embedding (inherited from KnowSAM, where they stand for a "box"; the SC-SAM paper does not describe them).
They are an option here (``--set cotrain.learned_tokens=true``) so the ablation can show what they add on top of
the U-Net's point prompts.
"""

from __future__ import annotations

import torch
from torch import nn


class LearnedTokens(nn.Module):
    """``n_tokens`` prompt tokens ``(B, n_tokens, D)`` from an image embedding ``(B, D, h, w)``.

    A 3x3 convolution, global average pooling and a linear layer. The last layer starts at zero, so the tokens
    start as zero vectors: they carry no image information until training gives them some.
    """

    def __init__(self, embed_dim: int, n_tokens: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.n_tokens, self.embed_dim = n_tokens, embed_dim
        self.conv = nn.Conv2d(embed_dim, hidden, kernel_size=3, padding=1)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Linear(hidden, n_tokens * embed_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv(embeddings))).flatten(1)
        return self.out(x).view(-1, self.n_tokens, self.embed_dim)
