"""Learned prompt tokens predicted from the image embedding (off by default).

The reference SC-SAM code also feeds SAM's mask decoder a few extra sparse tokens computed by a small network from
the image embedding (inherited from KnowSAM, where they stand for a "box"; the SC-SAM paper does not describe them).
Two forms (``cotrain.learned_tokens``): ``true``, one zero-initialised set appended to every decode (this
package's first form: with the reference's two passes it gives both passes the same tokens), and ``per-class``,
the reference's ``Super_Prompt``: one token network per class, each trained, non-zero initialised, and given to its
own pass (the background's or the foreground's) where a box would go. With identical point prompts, per-class
tokens are what lets the two passes differ at all.

The network is smaller than the reference's (there: two convolution blocks with downsampling, global pooling and a
feed-forward layer of width 1,024 with dropout, per class; here: one 3x3 convolution, pooling and a linear layer).
"""

from __future__ import annotations

import torch
from torch import nn


class LearnedTokens(nn.Module):
    """``n_tokens`` prompt tokens ``(B, n_tokens, D)`` from an image embedding ``(B, D, h, w)``.

    A 3x3 convolution, global average pooling and a linear layer. The last layer starts at zero, so the tokens
    start as zero vectors: they carry no image information until training gives them some.
    """

    def __init__(self, embed_dim: int, n_tokens: int = 2, hidden: int = 64, zero_init: bool = True) -> None:
        super().__init__()
        self.n_tokens, self.embed_dim = n_tokens, embed_dim
        self.conv = nn.Conv2d(embed_dim, hidden, kernel_size=3, padding=1)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Linear(hidden, n_tokens * embed_dim)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv(embeddings))).flatten(1)
        return self.out(x).view(-1, self.n_tokens, self.embed_dim)


class PerClassTokens(nn.Module):
    """The reference's per-class tokens: one :class:`LearnedTokens` network per class (0: background, 1:
    foreground), non-zero initialised, each giving the tokens of its own pass.

    ``forward(embeddings, classes)``: ``classes`` ``(B,)`` says which pass each image's decode is; None means the
    foreground (a one-pass decode).
    """

    def __init__(self, embed_dim: int, n_classes: int = 2, n_tokens: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.per_class = nn.ModuleList(
            LearnedTokens(embed_dim, n_tokens, hidden, zero_init=False) for _ in range(n_classes)
        )

    def forward(self, embeddings: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        if classes is None:
            return self.per_class[-1](embeddings)
        out = None
        for c, net in enumerate(self.per_class):
            rows = (classes == c).nonzero(as_tuple=True)[0]
            if len(rows) == 0:
                continue
            tokens = net(embeddings[rows])
            if out is None:
                out = tokens.new_zeros(len(embeddings), *tokens.shape[1:])
            out = out.index_copy(0, rows, tokens)
        assert out is not None, "no image to make tokens for"
        return out


def make_learned_tokens(kind: bool | str, embed_dim: int) -> nn.Module | None:
    """The token module ``cotrain.learned_tokens`` asks for: None (False), shared (True) or per-class."""
    if kind == "per-class":
        return PerClassTokens(embed_dim)
    return LearnedTokens(embed_dim) if kind else None
