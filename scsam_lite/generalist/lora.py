"""LoRA (Hu et al., 2021) on the attention projections of SAM's ViT and LiteMedSAM's TinyViT encoders.

A frozen ``nn.Linear`` ``W`` becomes ``W x + (alpha / rank) * B(A(x))`` with a rank-``rank`` pair ``A``, ``B``.
``B`` starts at zero, so the model is exactly the pretrained one until the first optimiser step. The attention
modules call ``self.qkv(x)`` and ``self.proj(x)``, so replacing those attributes works with the stock and the fast
(:mod:`~scsam_lite.generalist.attention`) classes alike, and survives switching between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .adapters import Wrapper, attention_of, encoder_blocks, parse_blocks


class LoRALinear(Wrapper):
    """``base(x) + (alpha / rank) * B(A(x))``: a low-rank update beside a linear layer kept as ``base``.

    ``A`` is Kaiming-uniform initialised and ``B`` zero, as in the LoRA paper's reference code. ``base`` is not
    frozen here (:func:`~scsam_lite.generalist.peft.freeze_for_peft` does that). The stock keys of ``base``
    (``...qkv.weight``) still load, as ``...qkv.base.weight``.
    """

    inner_name = "base"

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 4.0) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        self.A = nn.Linear(base.in_features, rank, bias=False)
        self.B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.B.weight)

    # the attributes code may read off the nn.Linear it replaced
    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * self.B(self.A(x))

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}"


def add_lora(
    encoder: nn.Module,
    rank: int = 4,
    alpha: float = 4.0,
    blocks: str | Sequence[int] = "all",
    targets: Sequence[str] = ("qkv",),
) -> list[int]:
    """Wrap the ``targets`` linear layers of each chosen block's attention in :class:`LoRALinear`.

    ``targets`` are attribute names on the attention module: ``"qkv"`` (the fused query/key/value projection)
    and/or ``"proj"`` (the output projection). Works before or after :func:`add_adapters`. Returns the indices.

    Raises:
        ConfigError: a bad rank, alpha, target or blocks spec, or a layer that already has LoRA.
    """
    all_blocks = encoder_blocks(encoder)
    chosen = parse_blocks(blocks, len(all_blocks))
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"LoRA rank must be a whole number >= 1, not {rank!r}", "use e.g. rank=4")
    if not alpha > 0:
        raise ConfigError(f"LoRA alpha must be > 0, not {alpha!r}", "use e.g. alpha=rank (a scaling of 1)")
    if isinstance(targets, str):
        targets = (targets,)
    if not targets:
        raise ConfigError("no LoRA targets given", "use targets=('qkv',) or ('qkv', 'proj')")
    for i in chosen:  # check everything before changing anything
        attn = attention_of(all_blocks[i])
        for name in targets:
            layer = getattr(attn, name, None)
            if isinstance(layer, LoRALinear):
                raise ConfigError(
                    f"block {i}'s attention.{name} already has LoRA; adding it twice would stack two updates",
                    "call add_lora once per model (rebuild the model to change rank or targets)",
                )
            if not isinstance(layer, nn.Linear):
                linears = sorted(
                    n for n, m in attn.named_children() if isinstance(m, (nn.Linear, LoRALinear))
                )
                raise ConfigError(
                    f"LoRA target {name!r} is not a linear layer of {type(attn).__name__}",
                    f"use targets among {linears}",
                )
    for i in chosen:
        attn = attention_of(all_blocks[i])
        for name in targets:
            base = getattr(attn, name)
            lora = LoRALinear(base, rank, alpha).to(device=base.weight.device, dtype=base.weight.dtype)
            setattr(attn, name, lora)
    return chosen
