"""Med-SA style adapters for SAM's ViT and LiteMedSAM's TinyViT encoders.

Med-SA (Wu et al., "Medical SAM Adapter") fine-tunes SAM by adding two small bottleneck MLPs to each
transformer block and training only those (plus, usually, the prompt encoder and mask decoder):

- a *space* adapter on the attention output, ``y = attn(x); y + adapter(y)``;
- an *MLP* adapter in parallel with the block's MLP, ``mlp(x) + scale * adapter(x)``, with ``x`` what the MLP gets.

Both are done here by wrapping ``block.attn`` and ``block.mlp`` (:class:`AdaptedAttention`,
:class:`ParallelAdapter`), so segment-anything's ``Block`` and TinyViT's ``TinyViTBlock`` run unchanged. With
``zero_init`` the adapters' up-projections start at zero: the adapted encoder then gives exactly the pretrained
output until the first optimiser step.

Wrapping moves the wrapped weights one level down in the state dict (``blocks.0.attn.qkv.weight`` becomes
``blocks.0.attn.attn.qkv.weight``). The wrappers read the stock keys too, so a pretrained checkpoint still loads
into an adapted encoder (``strict=False``: only the new adapter weights are missing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError


class Adapter(nn.Module):
    """A bottleneck MLP ``dim -> hidden -> dim`` (Linear, GELU, Linear) whose output is added by its wrapper.

    ``zero_init`` zeroes the up-projection's weight and bias, so the adapter outputs exactly 0 at step 0 while
    its down-projection is random (gradients reach the up-projection at once, and through it the rest).
    """

    def __init__(self, dim: int, hidden: int, zero_init: bool = True) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        if zero_init:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class Wrapper(nn.Module):
    """Base of the wrappers here: holds a module as ``self.<inner_name>`` and still loads its unwrapped keys.

    A pretrained state dict names ``blocks.0.attn.qkv.weight``; once ``attn`` is wrapped the model names it
    ``blocks.0.attn.attn.qkv.weight``. Loading renames the first form to the second (the caller's dict is left
    alone: ``load_state_dict`` hands modules a copy), so checkpoints load before or after adding adapters / LoRA.
    """

    inner_name = "inner"

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # A key of the unwrapped model (``prefix + "qkv.weight"``) belongs to the wrapped module: rename it.
        own = set(self._modules) | set(self._parameters) | set(self._buffers)
        for key in [k for k in state_dict if k.startswith(prefix)]:
            rest = key[len(prefix) :]
            if rest.split(".", 1)[0] not in own:
                new_key = f"{prefix}{self.inner_name}.{rest}"
                if new_key not in state_dict:
                    state_dict[new_key] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


class AdaptedAttention(Wrapper):
    """``y = attn(x); y + adapter(y)``: Med-SA's space adapter on a block's attention output."""

    inner_name = "attn"

    def __init__(self, attn: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.attn = attn
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(x)
        return y + self.adapter(y)


class ParallelAdapter(Wrapper):
    """``mlp(x) + scale * adapter(x)``: Med-SA's MLP adapter beside a block's MLP, fed what the MLP is fed.

    In SAM's ViT block that input is ``norm2(x)``. TinyViT's ``Mlp`` normalises inside itself, so there the
    adapter sees the un-normalised block input.
    """

    inner_name = "mlp"

    def __init__(self, mlp: nn.Module, adapter: Adapter, scale: float = 0.5) -> None:
        super().__init__()
        self.mlp = mlp
        self.adapter = adapter
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.scale * self.adapter(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a SAM ViT or TinyViT image encoder, in forward order.

    ViT: ``encoder.blocks``. TinyViT: the blocks of ``encoder.layers[1:]`` (``layers[0]`` is convolutional).
    A block is anything with ``attn`` and ``mlp`` submodules.
    """
    if isinstance(getattr(encoder, "blocks", None), nn.ModuleList):
        blocks = list(encoder.blocks)
    elif isinstance(getattr(encoder, "layers", None), nn.ModuleList) and len(encoder.layers) > 1:
        blocks = [blk for layer in encoder.layers[1:] for blk in getattr(layer, "blocks", [])]
    else:
        blocks = []
    if not blocks or not all(_is_block(b) for b in blocks):
        raise ConfigError(
            f"{type(encoder).__name__} is not an image encoder adapters or LoRA can be added to "
            "(expected SAM's ImageEncoderViT or LiteMedSAM's TinyViT, with blocks that have .attn and .mlp)",
            "pass the model's image encoder (model.image_encoder), not the whole model or another part",
        )
    return blocks


def _is_block(module: nn.Module) -> bool:
    return isinstance(getattr(module, "attn", None), nn.Module) and isinstance(
        getattr(module, "mlp", None), nn.Module
    )


def parse_blocks(spec: str | Sequence[int], num_blocks: int) -> list[int]:
    """Block indices (sorted, unique) from a spec: ``"all"``, ``"none"``, ``"lastN"``, ``"0,3,5"`` or ints.

    Raises:
        ConfigError: an unreadable spec or an index outside ``0..num_blocks-1`` (the message names the range).
    """
    valid = f"valid block indices are 0..{num_blocks - 1} (this encoder has {num_blocks} blocks)"
    fix = f"use 'all', 'none', 'lastN' with 1 <= N <= {num_blocks}, or indices such as '0,{num_blocks - 1}'"
    if isinstance(spec, str):
        text = spec.strip().lower().replace(" ", "")
        if text == "all":
            return list(range(num_blocks))
        if text in ("none", ""):
            return []
        last = re.fullmatch(r"last(\d+)", text)
        if last:
            n = int(last.group(1))
            if not 1 <= n <= num_blocks:
                raise ConfigError(f"blocks {spec!r} asks for {n} blocks; {valid}", fix)
            return list(range(num_blocks - n, num_blocks))
        if not re.fullmatch(r"-?\d+(,-?\d+)*,?", text):
            raise ConfigError(f"blocks {spec!r} is not a block spec", fix)
        indices = [int(tok) for tok in text.split(",") if tok]
    elif isinstance(spec, Sequence) and all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
        indices = list(spec)
    else:
        raise ConfigError(f"blocks {spec!r} is not a block spec (a string or a list of ints)", fix)
    bad = [i for i in indices if not 0 <= i < num_blocks]
    if bad:
        raise ConfigError(f"block index {bad[0]} is out of range: {valid}", fix)
    return sorted(set(indices))


def attention_of(block: nn.Module) -> nn.Module:
    """A block's attention module itself, under an :class:`AdaptedAttention` if there is one."""
    attn = block.attn
    return attn.attn if isinstance(attn, AdaptedAttention) else attn


def block_dim(block: nn.Module) -> int:
    """The token width of a block (the input width of its attention's ``qkv`` projection)."""
    return int(attention_of(block).qkv.in_features)


def add_adapters(
    encoder: nn.Module,
    blocks: str | Sequence[int] = "all",
    ratio: float = 0.25,
    scale: float = 0.5,
    zero_init: bool = True,
) -> list[int]:
    """Add Med-SA's space and MLP adapters to the chosen blocks of ``encoder``; returns the indices adapted.

    Each adapter has ``max(1, round(dim * ratio))`` hidden units and is created on the block's device and dtype.
    Add adapters after loading pretrained weights; freeze the rest with :func:`~scsam_lite.generalist.peft.freeze_for_peft`.

    Raises:
        ConfigError: an encoder without blocks, a bad blocks spec or ratio, or a block that already has adapters.
    """
    all_blocks = encoder_blocks(encoder)
    chosen = parse_blocks(blocks, len(all_blocks))
    if not ratio > 0:
        raise ConfigError(f"adapter ratio must be > 0, not {ratio}", "use e.g. ratio=0.25 (Med-SA's)")
    done = [
        i
        for i in chosen
        if isinstance(all_blocks[i].attn, AdaptedAttention) or isinstance(all_blocks[i].mlp, ParallelAdapter)
    ]
    if done:
        raise ConfigError(
            f"block {done[0]} already has adapters; adding them twice would stack two sets",
            "call add_adapters once per model (rebuild the model to change the adapter settings)",
        )
    for i in chosen:
        block = all_blocks[i]
        dim = block_dim(block)
        hidden = max(1, round(dim * ratio))
        ref = next(block.parameters())
        space = Adapter(dim, hidden, zero_init).to(device=ref.device, dtype=ref.dtype)
        mlp = Adapter(dim, hidden, zero_init).to(device=ref.device, dtype=ref.dtype)
        block.attn = AdaptedAttention(block.attn, space)
        block.mlp = ParallelAdapter(block.mlp, mlp, scale)
    return chosen
