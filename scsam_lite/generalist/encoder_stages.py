"""SAM's image encoder as a chain of stages: where a partly trained encoder can be cut.

With adapters or LoRA in the encoder's last blocks only, everything before the first adapted block is a fixed
function of the image, exactly as the whole encoder is with ``peft=none``. The embedding cache
(``embedding_cache.py``) can then store the activations at that cut instead of the finished embeddings, and a
training step runs only the stages after it: the last encoder stage adapts to the domain from labeled and
unlabeled images while the costly early stages are never run again. On a CPU this is what lets "SAM adapts its
encoder" exist at all (LiteMedSAM's last TinyViT stage costs a fraction of the whole encoder).

A stage is one step of the encoder's own ``forward``, unchanged: for SAM's ``ImageEncoderViT`` the patch embedding
(with the position embedding), each transformer block, then the neck; for LiteMedSAM's ``TinyViT`` the patch
embedding, the convolutional first layer, each block and each patch merging of the later layers, then the neck.
Running all stages in order is the encoder's forward (``tests/test_encoder_stages.py`` checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class Stage:
    """One step of an encoder's forward: ``run(x)``, with the parameters and buffers it uses (``modules`` and
    ``tensors``), so that whether it trains and what its output depends on can be read off it."""

    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    modules: tuple[nn.Module, ...] = ()
    tensors: tuple[torch.Tensor, ...] = field(default=())

    def parameters(self) -> list[torch.Tensor]:
        params = [p for m in self.modules for p in m.parameters()]
        return params + [t for t in self.tensors if isinstance(t, nn.Parameter)]

    def trains(self) -> bool:
        return any(p.requires_grad for p in self.parameters())


def encoder_stages(encoder: nn.Module) -> list[Stage]:
    """The stages of SAM's ``ImageEncoderViT`` or LiteMedSAM's ``TinyViT``, in forward order.

    Raises:
        ConfigError: another kind of encoder (its forward cannot be cut without knowing it).
    """
    if hasattr(encoder, "blocks") and hasattr(encoder, "patch_embed") and hasattr(encoder, "neck"):
        return _vit_stages(encoder)
    if hasattr(encoder, "layers") and hasattr(encoder, "patch_embed") and hasattr(encoder, "neck"):
        return _tinyvit_stages(encoder)
    raise ConfigError(
        f"{type(encoder).__name__} is not an encoder whose activations can be stored part-way (expected SAM's "
        "ImageEncoderViT or LiteMedSAM's TinyViT)",
        "use generalist.peft=none with the embedding cache, or turn generalist.embedding_cache off",
    )


def _vit_stages(enc: nn.Module) -> list[Stage]:
    pos = enc.pos_embed

    def embed(x: torch.Tensor) -> torch.Tensor:
        x = enc.patch_embed(x)
        return x if pos is None else x + pos

    stages = [Stage("patch_embed", embed, (enc.patch_embed,), () if pos is None else (pos,))]
    stages += [Stage(f"blocks.{i}", blk, (blk,)) for i, blk in enumerate(enc.blocks)]
    stages.append(Stage("neck", lambda x: enc.neck(x.permute(0, 3, 1, 2)), (enc.neck,)))
    return stages


def _tinyvit_stages(enc: nn.Module) -> list[Stage]:
    stages = [
        Stage("patch_embed", enc.patch_embed, (enc.patch_embed,)),
        Stage("layers.0", enc.layers[0], (enc.layers[0],)),
    ]
    for i, layer in enumerate(enc.layers[1:], start=1):
        stages += [Stage(f"layers.{i}.blocks.{j}", blk, (blk,)) for j, blk in enumerate(layer.blocks)]
        if layer.downsample is not None:
            stages.append(Stage(f"layers.{i}.downsample", layer.downsample, (layer.downsample,)))

    def neck(x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape  # tokens of a square grid (TinyViT's own forward hard-codes 64 x 64)
        side = math.isqrt(n)
        return enc.neck(x.view(b, side, side, c).permute(0, 3, 1, 2))

    stages.append(Stage("neck", neck, (enc.neck,)))
    return stages


def frozen_prefix(encoder: nn.Module) -> int:
    """How many stages from the input train nothing: the cut where activations can be stored.

    ``len(encoder_stages(encoder))`` when the whole encoder is frozen (the stored activations are the embeddings).
    """
    stages = encoder_stages(encoder)
    return next((i for i, s in enumerate(stages) if s.trains()), len(stages))


def run_stages(stages: list[Stage], x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """``x`` through ``stages[start:stop]``."""
    for stage in stages[start:stop]:
        x = stage.run(x)
    return x


def state_bytes(stages: list[Stage]) -> list[tuple[str, bytes]]:
    """Every parameter and buffer the stages use, named and as raw bytes: what their output depends on."""
    out = []
    for stage in stages:
        for m_i, module in enumerate(stage.modules):
            for name, t in sorted(module.state_dict().items()):
                out.append((f"{stage.name}.{m_i}.{name}", raw_bytes(t)))
        out += [(f"{stage.name}.t{k}", raw_bytes(t)) for k, t in enumerate(stage.tensors)]
    return out


def raw_bytes(t: torch.Tensor) -> bytes:
    """A tensor's bytes as stored (any dtype), for hashing."""
    return t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
